// Runs work for one key at a time, in arrival order, without holding
// anything but a promise while waiting.
//
// Calls on one job are serialized by its row lock anyway; queueing them here
// first means only one of them per process holds a pooled connection while it
// waits for that lock. Without it, a burst of calls on one busy job could take
// every connection in the pool and starve calls on other jobs. Correctness
// still comes from the row lock: replicas do not share this queue.

export class KeyedQueue {
  private readonly tails = new Map<string, Promise<void>>();

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(work);
    const tail = result.then(
      () => {},
      () => {},
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /** Keys with work queued or running (for tests). */
  get size(): number {
    return this.tails.size;
  }
}
