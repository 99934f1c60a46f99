// The per-stream buffer between the hub and one watch stream. Bounded: a
// client that stops reading fills it, and then the stream is ended (the
// client resumes from its last revision and loses nothing) instead of
// holding memory or slowing anyone else.
//
// Most streams are idle most of the time, and there can be thousands, so an
// idle stream holds as little as possible: one pending promise, no timer of
// its own (IdleClock below), no buffer array until an event arrives, and no
// abort listener per wait (the stream closes its queue when it is aborted).

import type { EventRecord } from "../domain/job.js";
import type { FilteredSink } from "./hub.js";

export type Next =
  | { kind: "event"; event: EventRecord }
  | { kind: "idle" }
  | { kind: "overflow" }
  | { kind: "closed" }
  | { kind: "revoked" }
  | { kind: "unreachable" };

const IDLE: Next = { kind: "idle" };
const OVERFLOW: Next = { kind: "overflow" };
const CLOSED: Next = { kind: "closed" };
const REVOKED: Next = { kind: "revoked" };
const UNREACHABLE: Next = { kind: "unreachable" };
/** The empty buffer, shared: never pushed to (push replaces it first). */
const NONE: EventRecord[] = [];
const everything = () => true;

export class WatchQueue implements FilteredSink {
  /** NONE until an event arrives, and again once drained: an idle stream holds no array. */
  private buffer: EventRecord[] = NONE;
  private overflowed = false;
  private closed = false;
  private revoked = false;
  private unreachable = false;
  /** True while one publish pass is pushing (reset at the next microtask). */
  private inBatch = false;
  /** The pending next(), while there is one, and the clock it waits on. */
  private waiter: ((next: Next) => void) | null = null;
  private clock: IdleClock | null = null;
  /** When the pending next() turns idle (IdleClock's order). */
  idleAt = 0;

  constructor(
    private readonly capacity: number,
    private readonly filter: (event: EventRecord) => boolean = everything,
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
        this.buffer = NONE;
      }
    }
    if (!this.overflowed) {
      if (this.buffer === NONE) this.buffer = [];
      this.buffer.push(event);
    }
    this.wake();
  }

  close(): void {
    this.closed = true;
    this.wake();
  }

  /** Ends the stream because the token it was opened with has been revoked: next() says "revoked", before any event still buffered. */
  revoke(): void {
    this.revoked = true;
    this.buffer = NONE;
    this.close();
  }

  /** Ends the stream because the database stopped answering: next() says "unreachable" once the events it already has are out. */
  databaseUnreachable(): void {
    this.unreachable = true;
    this.close();
  }

  /** As an abort listener (EventTarget calls handleEvent): a stream closes its queue on abort with no closure of its own. */
  handleEvent(): void {
    this.close();
  }

  /** The next event; "idle" once `clock`'s interval passes without one; "closed" after close(); "revoked" after revoke(). */
  next(clock: IdleClock): Promise<Next> {
    const ready = this.take();
    if (ready) return Promise.resolve(ready);
    return new Promise<Next>((resolve) => {
      this.waiter = resolve;
      this.clock = clock;
      clock.wait(this);
    });
  }

  /** Called by the clock when the pending next() has waited its interval. */
  idle(): void {
    this.settle(IDLE);
  }

  private wake(): void {
    if (this.waiter === null) return;
    const next = this.take();
    if (next === null) return;
    this.clock?.cancel(this);
    this.settle(next);
  }

  private take(): Next | null {
    if (this.revoked) return REVOKED;
    if (this.overflowed) return OVERFLOW;
    if (this.buffer.length > 0) {
      const event = this.buffer.shift() as EventRecord;
      if (this.buffer.length === 0) this.buffer = NONE;
      return { kind: "event", event };
    }
    if (this.unreachable) return UNREACHABLE;
    return this.closed ? CLOSED : null;
  }

  private settle(next: Next): void {
    const waiter = this.waiter;
    this.waiter = null;
    this.clock = null;
    waiter?.(next);
  }
}

/**
 * One timer for every waiting queue instead of one per wait: queues wait the
 * same interval, so they turn idle in the order they started waiting, and an
 * insertion-ordered set with one timer for its oldest entry wakes each at its
 * own time (heartbeats stay exact and spread out, not batched on a tick).
 */
export class IdleClock {
  private readonly waiting = new Set<WatchQueue>();
  private timer: NodeJS.Timeout | null = null;

  constructor(readonly idleMs: number) {}

  wait(queue: WatchQueue): void {
    queue.idleAt = performance.now() + this.idleMs;
    this.waiting.add(queue);
    if (this.timer === null) this.arm(queue.idleAt);
  }

  /** The queue was woken (event, close) before its interval passed. */
  cancel(queue: WatchQueue): void {
    this.waiting.delete(queue);
  }

  private arm(at: number): void {
    // Unref'd: every waiting queue belongs to a stream whose socket keeps the process up anyway.
    this.timer = setTimeout(() => this.tick(), Math.max(0, at - performance.now())).unref();
  }

  private tick(): void {
    this.timer = null;
    const now = performance.now();
    for (const queue of this.waiting) {
      // A timer may fire a fraction of a millisecond early: that is on time.
      if (queue.idleAt > now + 1) {
        this.arm(queue.idleAt);
        return;
      }
      this.waiting.delete(queue);
      queue.idle();
    }
  }
}
