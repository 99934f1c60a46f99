// Smart batching: while batches are being written, calls that arrive wait in
// one queue, and the next batch takes every call waiting (up to a maximum).
// A call that finds a free slot goes out in the same turn of the event loop:
// no timer, so no added wait at low load, and batches grow only when the
// database is the bottleneck. Calls with the same key (the same job) go out
// in arrival order and never in two batches at once: a later call waits for
// the batch that holds an earlier one, rather than racing it to the row lock
// on another connection.

import { DeadlineQueue } from "./deadline-queue.js";

/** A call's answer, or why it has none. */
export type Settled<R> = { readonly ok: true; readonly value: R } | { readonly ok: false; readonly error: unknown };

/** Writes one batch and settles each of its calls, in order; throws if the batch as a whole failed. */
export type WriteBatch<C, R> = (calls: readonly C[]) => Promise<readonly Settled<R>[]>;

export interface BatchReport {
  readonly calls: number;
  readonly ms: number;
  readonly outcome: "committed" | "failed";
  /** A retry of one call of a batch that failed as a whole. */
  readonly alone: boolean;
  readonly error?: unknown;
}

export interface BatcherOptions<C> {
  /** The most calls one batch takes; 1 writes each call on its own. */
  readonly maxCalls: number;
  /** How many batches may be in flight at once. */
  readonly maxInFlight: number;
  /** The longest a call may wait in the queue before it fails with `queueTimeout()`. */
  readonly maxQueueMs: number;
  readonly queueTimeout: () => Error;
  /** A batch failed as a whole: whether to retry its calls each on its own (one poisoned call then fails alone). */
  readonly retryAlone: (error: unknown) => boolean;
  /** A batch failed as a whole: whether the calls still waiting fail with it (they would only wait for the same). */
  readonly failsWaiting: (error: unknown) => boolean;
  readonly onBatch?: (report: BatchReport) => void;
  /** Calls with the same key keep their arrival order across batches; null: no order to keep. */
  readonly keyOf?: (call: C) => string | null;
}

interface Waiting<C, R> {
  readonly call: C;
  readonly key: string | null;
  readonly since: number;
  readonly resolve: (value: R) => void;
  readonly reject: (error: unknown) => void;
}

export class Batcher<C, R> {
  private readonly queue: DeadlineQueue<Waiting<C, R>>;
  private inFlight = 0;
  /** Keys of the calls in the batches being written, with how many of those calls each. */
  private readonly busy = new Map<string, number>();
  private dispatchScheduled = false;

  constructor(
    private readonly write: WriteBatch<C, R>,
    private readonly options: BatcherOptions<C>,
  ) {
    this.queue = new DeadlineQueue<Waiting<C, R>>(options.maxQueueMs, (expired) => {
      const error = options.queueTimeout();
      for (const waiting of expired) waiting.reject(error);
    });
  }

  submit(call: C): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ call, key: this.options.keyOf?.(call) ?? null, since: performance.now(), resolve, reject });
      this.scheduleDispatch();
    });
  }

  /** Calls waiting for a batch (for metrics and tests). */
  get waiting(): number {
    return this.queue.length;
  }

  /** Batches being written. */
  get writing(): number {
    return this.inFlight;
  }

  // Dispatching at the end of this turn of the event loop lets calls that
  // arrived on the same turn (several connections' reads) share a batch.
  private scheduleDispatch(): void {
    if (this.dispatchScheduled || this.inFlight >= this.options.maxInFlight) return;
    this.dispatchScheduled = true;
    setImmediate(this.dispatch);
  }

  private readonly dispatch = (): void => {
    this.dispatchScheduled = false;
    while (this.inFlight < this.options.maxInFlight && this.queue.length > 0) {
      const taken = this.take();
      if (taken.length === 0) break;
      void this.run(taken);
    }
  };

  /** The next batch: waiting calls in arrival order, but none behind a call with its key that must wait. */
  private take(): Waiting<C, R>[] {
    let taken = 0;
    const held = new Set<string>();
    const batch = this.queue.remove(({ key }) => {
      const free = key === null || (!this.busy.has(key) && !held.has(key));
      if (free && taken < this.options.maxCalls) {
        taken++;
        return true;
      }
      if (key !== null) held.add(key);
      return false;
    });
    for (const { key } of batch) if (key !== null) this.busy.set(key, (this.busy.get(key) ?? 0) + 1);
    return batch;
  }

  private release(batch: readonly Waiting<C, R>[]): void {
    for (const { key } of batch) {
      if (key === null) continue;
      const left = (this.busy.get(key) ?? 1) - 1;
      if (left === 0) this.busy.delete(key);
      else this.busy.set(key, left);
    }
  }

  private async run(batch: Waiting<C, R>[]): Promise<void> {
    this.inFlight++;
    try {
      const error = await this.attempt(batch, false);
      if (error === undefined) return;
      if (batch.length > 1 && this.options.retryAlone(error)) {
        // Each on its own, in arrival order, so a job's calls keep their order.
        for (const waiting of batch) {
          const alone = await this.attempt([waiting], true);
          if (alone !== undefined) waiting.reject(alone);
        }
        return;
      }
      for (const waiting of batch) waiting.reject(error);
      if (this.options.failsWaiting(error)) for (const waiting of this.queue.remove(() => true)) waiting.reject(error);
    } finally {
      this.inFlight--;
      this.release(batch);
      if (this.queue.length > 0) this.scheduleDispatch();
    }
  }

  /** Writes `batch` and settles its calls; returns the error if the batch failed as a whole. */
  private async attempt(batch: Waiting<C, R>[], alone: boolean): Promise<unknown> {
    const started = performance.now();
    const report = (outcome: BatchReport["outcome"], error?: unknown) =>
      this.options.onBatch?.({ calls: batch.length, ms: performance.now() - started, outcome, alone, error });
    let settled: readonly Settled<R>[];
    try {
      settled = await this.write(batch.map((waiting) => waiting.call));
    } catch (error) {
      report("failed", error);
      return error ?? new Error("batch failed");
    }
    report("committed");
    for (let i = 0; i < batch.length; i++) {
      const answer = settled[i];
      if (answer.ok) batch[i].resolve(answer.value);
      else batch[i].reject(answer.error);
    }
    return undefined;
  }
}
