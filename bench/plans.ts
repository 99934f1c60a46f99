// What a benchmark run measures, and for how long: the full run (the figures
// in docs/performance.md), a quick smoke run, and the profiling run.

import type { Schedule } from "./load.js";

export interface Plan extends Schedule {
  readonly mode: "full" | "quick" | "profile";
  /**
   * Before the first measured phase, the service and the ceiling each run
   * C=16 lifecycles this long, unmeasured: the server's and the load
   * generators' JIT settle, as they have in any server that has run a while.
   */
  readonly runWarmupMs: number;
  /** Executors (lifecycle clients) per phase: ceiling, service, and the service with batching off, at each. */
  readonly concurrencies: readonly number[];
  readonly watchLoadConcurrency: number;
  readonly watcherCounts: readonly number[];
  /**
   * The watch phases' measured time and windows. Their windows swing more
   * than the others on a shared machine (stream churn, GC), so they get more
   * of them, or the with/without ratio is mostly noise.
   */
  readonly watchSchedule: Pick<Schedule, "measureMs" | "rounds">;
  readonly probeRatePerSecond: number;
  readonly memoryStreams: number;
  /** Streams opened and closed before the memory readings (JIT, pool). */
  readonly memoryWarmStreams: number;
  readonly streamsPerConnection: number;
  readonly settleMs: number;
}

export const PLANS: Record<Plan["mode"], Plan> = {
  full: {
    mode: "full",
    runWarmupMs: 15_000,
    warmupMs: 3_000,
    measureMs: 10_000,
    rounds: 5,
    rampMs: 500,
    concurrencies: [1, 16, 64, 256],
    watchLoadConcurrency: 16,
    watcherCounts: [100, 1000],
    watchSchedule: { measureMs: 20_000, rounds: 10 },
    probeRatePerSecond: 25,
    memoryStreams: 2000,
    memoryWarmStreams: 200,
    streamsPerConnection: 50,
    settleMs: 2_000,
  },
  quick: {
    mode: "quick",
    runWarmupMs: 10_000,
    warmupMs: 800,
    measureMs: 2_000,
    rounds: 2,
    rampMs: 300,
    concurrencies: [1, 16, 64],
    watchLoadConcurrency: 16,
    watcherCounts: [100],
    watchSchedule: { measureMs: 2_000, rounds: 2 },
    probeRatePerSecond: 25,
    memoryStreams: 300,
    memoryWarmStreams: 50,
    streamsPerConnection: 50,
    settleMs: 500,
  },
  profile: {
    mode: "profile",
    runWarmupMs: 15_000,
    warmupMs: 3_000,
    measureMs: 15_000,
    rounds: 1,
    rampMs: 500,
    concurrencies: [16],
    watchLoadConcurrency: 16,
    watcherCounts: [1000],
    watchSchedule: { measureMs: 15_000, rounds: 1 },
    probeRatePerSecond: 25,
    memoryStreams: 0,
    memoryWarmStreams: 0,
    streamsPerConnection: 50,
    settleMs: 1_000,
  },
};
