// The per-stream buffer between the hub and one watch stream. Bounded: a
// client that stops reading fills it, and then the stream is ended (the
// client resumes from its last revision and loses nothing) instead of
// holding memory or slowing anyone else.

import type { EventRecord } from "../domain/job.js";
import type { FilteredSink } from "./hub.js";

export type Next = { kind: "event"; event: EventRecord } | { kind: "idle" } | { kind: "overflow" } | { kind: "closed" };

export class WatchQueue implements FilteredSink {
  private buffer: EventRecord[] = [];
  private overflowed = false;
  private closed = false;
  /** True while one publish pass is pushing (reset at the next microtask). */
  private inBatch = false;
  private wake: (() => void) | null = null;

  constructor(
    private readonly capacity: number,
    private readonly filter: (event: EventRecord) => boolean = () => true,
  ) {}

  matches(event: EventRecord): boolean {
    return this.filter(event);
  }

  push(event: EventRecord): void {
    if (this.overflowed || this.closed) return;
    // The hub publishes each feed read's events in one synchronous pass. A
    // stream is behind only if what it already had the chance to send fills
    // the buffer when a new batch starts; the batch itself is taken whole.
    // Otherwise a burst larger than the buffer (one big transaction, such as a
    // reaper batch, or a read after a pause) would cut off streams that read
    // perfectly fast.
    if (!this.inBatch) {
      this.inBatch = true;
      queueMicrotask(() => (this.inBatch = false));
      if (this.buffer.length >= this.capacity) {
        this.overflowed = true;
        this.buffer = [];
      }
    }
    if (!this.overflowed) this.buffer.push(event);
    this.signal();
  }

  close(): void {
    this.closed = true;
    this.signal();
  }

  /** The next event; "idle" after `idleMs` without one; "closed" once `signal` aborts. */
  async next(idleMs: number, signal: AbortSignal): Promise<Next> {
    for (;;) {
      if (this.overflowed) return { kind: "overflow" };
      const event = this.buffer.shift();
      if (event) return { kind: "event", event };
      if (this.closed || signal.aborted) return { kind: "closed" };
      const woke = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => finish(false), idleMs);
        const onAbort = () => finish(true);
        const finish = (value: boolean) => {
          clearTimeout(timer);
          signal.removeEventListener("abort", onAbort);
          this.wake = null;
          resolve(value);
        };
        this.wake = () => finish(true);
        signal.addEventListener("abort", onAbort, { once: true });
      });
      if (!woke) return { kind: "idle" };
    }
  }

  private signal(): void {
    this.wake?.();
  }
}
