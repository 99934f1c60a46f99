// A queue whose entries may wait only so long: one timer for the whole queue,
// set for the oldest entry's limit, hands the entries that waited too long to
// `expire`. The batched writer's and the lanes' queues.

export interface Queued {
  /** performance.now() when it was queued. */
  readonly since: number;
}

export class DeadlineQueue<T extends Queued> {
  private entries: T[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly maxWaitMs: number,
    private readonly expire: (expired: T[]) => void,
  ) {}

  get length(): number {
    return this.entries.length;
  }

  push(entry: T): void {
    this.entries.push(entry);
    if (this.entries.length === 1) this.arm();
  }

  shift(): T | undefined {
    const entry = this.entries.shift();
    this.arm();
    return entry;
  }

  /** Removes and returns the entries `which` picks, keeping the others in order. */
  remove(which: (entry: T) => boolean): T[] {
    const removed: T[] = [];
    const kept: T[] = [];
    for (const entry of this.entries) (which(entry) ? removed : kept).push(entry);
    if (removed.length > 0) {
      this.entries = kept;
      this.arm();
    }
    return removed;
  }

  private arm(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.entries.length === 0) return;
    this.timer = setTimeout(this.fire, Math.max(0, this.entries[0].since + this.maxWaitMs - performance.now()));
    this.timer.unref();
  }

  private readonly fire = (): void => {
    this.timer = null;
    const limit = performance.now() - this.maxWaitMs;
    const expired = this.remove((entry) => entry.since <= limit);
    this.arm();
    if (expired.length > 0) this.expire(expired);
  };
}
