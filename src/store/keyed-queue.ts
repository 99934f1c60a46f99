// Runs work for one key at a time, in arrival order, without holding
// anything but a promise while waiting.
//
// Calls on one job are serialized by its row lock anyway; queueing them here
// first means only one of them per process holds a pooled connection while it
// waits for that lock. Without it, a burst of calls on one busy job could take
// every connection in the pool and starve calls on other jobs. Correctness
// still comes from the row lock: replicas do not share this queue.

export class KeyedQueue {
  /** Per key, the last work's end: null, or the failure it passes on to the work queued behind it. */
  private readonly tails = new Map<string, Promise<unknown>>();

  /**
   * Runs `work` after the work queued for `key` before it. If that work failed
   * with an error `sharesFailure` accepts, `work` fails with it too, without
   * running: a call queued behind one that could not get a database
   * connection would otherwise start its own wait for one only then, so that
   * the k-th call in line would wait k times DB_ACQUIRE_TIMEOUT_MS.
   */
  run<T>(key: string, work: () => Promise<T>, sharesFailure: (error: unknown) => boolean = () => false): Promise<T> {
    const previous = this.tails.get(key) ?? NO_FAILURE;
    const result = previous.then((failure) => (failure === null ? work() : Promise.reject(failure)));
    const tail = result.then(
      () => null,
      (error: unknown) => (sharesFailure(error) ? error : null),
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

const NO_FAILURE: Promise<unknown> = Promise.resolve(null);
