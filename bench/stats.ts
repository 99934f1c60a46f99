// Counting and percentiles for one measurement window.

/** Latency samples in milliseconds. */
export class Samples {
  private values: number[] = [];

  add(ms: number): void {
    this.values.push(ms);
  }

  get count(): number {
    return this.values.length;
  }

  summary(): LatencySummary {
    const sorted = Float64Array.from(this.values).sort();
    return {
      count: sorted.length,
      p50Ms: round(percentile(sorted, 0.5)),
      p90Ms: round(percentile(sorted, 0.9)),
      p99Ms: round(percentile(sorted, 0.99)),
      maxMs: round(sorted.length ? sorted[sorted.length - 1] : Number.NaN),
      meanMs: round(sorted.length ? sorted.reduce((a, b) => a + b, 0) / sorted.length : Number.NaN),
    };
  }
}

export interface LatencySummary {
  readonly count: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly meanMs: number;
}

/** Nearest-rank percentile of sorted values; NaN when there are none. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil(p * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** Rounds to 3 significant decimals for display (NaN stays NaN). */
export function round(value: number, digits = 3): number {
  if (!Number.isFinite(value)) return value;
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

/**
 * Collects what workers report while a window is open: events written (state
 * changes) and per-operation latency. Outside the window (warm-up, wind-down)
 * reports are dropped, but `allEvents` counts everything for the final
 * cross-check against the database.
 */
export class Recorder {
  recording = false;
  events = 0;
  errors = 0;
  allEvents = 0;
  readonly latency = new Map<string, Samples>();
  readonly errorMessages = new Map<string, number>();

  /** An operation finished: `ms` after it started, writing `events` events. */
  done(op: string, ms: number, events: number): void {
    this.allEvents += events;
    if (!this.recording) return;
    this.events += events;
    let samples = this.latency.get(op);
    if (!samples) {
      samples = new Samples();
      this.latency.set(op, samples);
    }
    samples.add(ms);
  }

  failed(op: string, error: unknown): void {
    const message = `${op}: ${error instanceof Error ? error.message : String(error)}`.slice(0, 200);
    this.errorMessages.set(message, (this.errorMessages.get(message) ?? 0) + 1);
    if (this.recording) this.errors++;
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A progress line on stderr, with the time of day. */
export const progress = (line: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
export const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
export const kib = (bytes: number) => (bytes / 1024).toFixed(1);
