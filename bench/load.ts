// Loads that can be paused and resumed without dropping their connections,
// and the measurement that alternates them: on a shared, busy machine the
// background load drifts from second to second, so two things compared in
// one run are measured in short interleaved windows (A B B A A B …) rather
// than one after the other, and their ratio sees the same background.

import { machineCpuMicros, processCpuMicros, treeCpuMicros } from "./proc.js";
import type { Recorder } from "./stats.js";
import { sleep } from "./stats.js";

/** `concurrency` workers repeating `iteration` while resumed; parked (connections kept) while paused. */
export class Load {
  private paused = true;
  private stopped = false;
  private active = 0;
  private gate!: Promise<void>;
  private openGate!: () => void;
  private idle: (() => void) | null = null;
  private readonly workers: Promise<void>[] = [];

  constructor(
    concurrency: number,
    private readonly iteration: (worker: number) => Promise<void>,
    private readonly recorder: Recorder,
    private readonly name: string,
  ) {
    this.closeGate();
    for (let i = 0; i < concurrency; i++) this.workers.push(this.work(i));
  }

  private closeGate(): void {
    this.gate = new Promise((resolve) => (this.openGate = resolve));
  }

  private async work(index: number): Promise<void> {
    while (!this.stopped) {
      if (this.paused) {
        await this.gate;
        continue;
      }
      this.active++;
      try {
        await this.iteration(index);
      } catch (error) {
        this.recorder.failed(this.name, error);
        await sleep(10);
      } finally {
        this.active--;
        if (this.paused && this.active === 0) this.idle?.();
      }
    }
  }

  resume(): void {
    this.paused = false;
    this.openGate();
  }

  /** Resolves once every worker has finished its iteration in progress. */
  pause(): Promise<void> {
    if (!this.paused) {
      this.paused = true;
      this.closeGate();
    }
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.idle = () => {
        this.idle = null;
        resolve();
      };
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.paused = true;
    this.openGate();
    await Promise.all(this.workers);
  }
}

/** What is measured together: one or more loads sharing a recorder. */
export interface Subject {
  readonly name: string;
  readonly loads: readonly Load[];
  readonly recorder: Recorder;
  /** Set-up before this subject's windows (not measured), e.g. opening watch streams … */
  readonly enter?: () => Promise<void>;
  /** … and its undoing when another subject's windows follow. */
  readonly leave?: () => Promise<void>;
  /** The server process this subject loads, when not the default one (A/B comparisons). */
  readonly serverPid?: number;
  /** Counters read before and after each window (the server's write batches, say); their growth is summed per subject. */
  readonly counters?: () => Promise<Record<string, number>>;
}

export interface Meters {
  readonly serverPid: number;
  readonly postmasterPid: number | null;
}

interface Reading {
  readonly atMs: number;
  readonly monotonicMicros: number;
  readonly serverUs: number;
  readonly serverSystemUs: number;
  readonly postgresUs: number | null;
  readonly clientUs: number;
  readonly clientSystemUs: number;
  readonly machineBusyUs: number;
  readonly machineTotalUs: number;
}

function read(meters: Meters, serverPid = meters.serverPid): Reading {
  const cpu = process.cpuUsage();
  const machine = machineCpuMicros();
  const server = processCpuMicros(serverPid);
  return {
    atMs: performance.now(),
    monotonicMicros: Number(process.hrtime.bigint() / 1000n),
    serverUs: server.total,
    serverSystemUs: server.system,
    postgresUs: meters.postmasterPid === null ? null : treeCpuMicros(meters.postmasterPid),
    clientUs: cpu.user + cpu.system,
    clientSystemUs: cpu.system,
    machineBusyUs: machine.busy,
    machineTotalUs: machine.total,
  };
}

/** Totals over one subject's windows. */
export interface Measured {
  readonly name: string;
  readonly seconds: number;
  readonly events: number;
  readonly serverUs: number;
  readonly serverSystemUs: number;
  readonly postgresUs: number | null;
  readonly clientUs: number;
  readonly clientSystemUs: number;
  readonly machineBusyUs: number;
  readonly machineTotalUs: number;
  /** Events per second of each window, in order. */
  readonly windowRates: number[];
  /** CLOCK_MONOTONIC microseconds of each window (to cut a CPU profile to them). */
  readonly windows: { fromMicros: number; toMicros: number }[];
  /** How much each of the subject's counters grew over its windows. */
  readonly counters: Record<string, number>;
}

export interface Schedule {
  readonly warmupMs: number;
  /** Measured time per subject, split into `rounds` windows. */
  readonly measureMs: number;
  readonly rounds: number;
  /** Unmeasured time after each switch, while the resumed load ramps up. */
  readonly rampMs: number;
}

/**
 * Warms each subject up, then measures them in alternating windows (order
 * reversed every round: A B, B A, A B …) so that drift in the machine's
 * background load falls on every subject alike. One subject: its windows
 * simply follow each other. `enter`/`leave` run around a subject's run of
 * windows, outside the measurement.
 */
export async function measure(subjects: readonly Subject[], schedule: Schedule, meters: Meters): Promise<Measured[]> {
  const totals = subjects.map((s) => ({
    name: s.name,
    seconds: 0,
    events: 0,
    serverUs: 0,
    serverSystemUs: 0,
    postgresUs: meters.postmasterPid === null ? null : 0,
    clientUs: 0,
    clientSystemUs: 0,
    machineBusyUs: 0,
    machineTotalUs: 0,
    windowRates: [] as number[],
    windows: [] as { fromMicros: number; toMicros: number }[],
    counters: {} as Record<string, number>,
  }));
  let current: Subject | null = null;
  const switchTo = async (s: Subject) => {
    if (current === s) return;
    await current?.leave?.();
    current = s;
    await s.enter?.();
  };
  const run = (s: Subject) => s.loads.forEach((l) => l.resume());
  const park = (s: Subject) => Promise.all(s.loads.map((l) => l.pause()));
  for (const s of subjects) {
    await switchTo(s);
    run(s);
    await sleep(schedule.warmupMs);
    await park(s);
  }
  const windowMs = schedule.measureMs / schedule.rounds;
  for (let round = 0; round < schedule.rounds; round++) {
    // A B C, C B A, A B C …: the same subject on both sides of a round boundary (no switch there).
    const order = round % 2 === 0 ? subjects : [...subjects].reverse();
    for (const s of order) {
      const t = totals[subjects.indexOf(s)];
      await switchTo(s);
      run(s);
      await sleep(schedule.rampMs);
      const countersBefore = await s.counters?.();
      const eventsBefore = s.recorder.events;
      const before = read(meters, s.serverPid);
      s.recorder.recording = true;
      await sleep(windowMs);
      s.recorder.recording = false;
      const after = read(meters, s.serverPid);
      const countersAfter = await s.counters?.();
      await park(s);
      for (const [name, value] of Object.entries(countersAfter ?? {})) {
        t.counters[name] = (t.counters[name] ?? 0) + value - (countersBefore?.[name] ?? 0);
      }
      const seconds = (after.atMs - before.atMs) / 1000;
      const events = s.recorder.events - eventsBefore;
      t.seconds += seconds;
      t.events += events;
      t.serverUs += after.serverUs - before.serverUs;
      t.serverSystemUs += after.serverSystemUs - before.serverSystemUs;
      t.clientSystemUs += after.clientSystemUs - before.clientSystemUs;
      if (t.postgresUs !== null) t.postgresUs += (after.postgresUs as number) - (before.postgresUs as number);
      t.clientUs += after.clientUs - before.clientUs;
      t.machineBusyUs += after.machineBusyUs - before.machineBusyUs;
      t.machineTotalUs += after.machineTotalUs - before.machineTotalUs;
      t.windowRates.push(Math.round(events / seconds));
      t.windows.push({ fromMicros: before.monotonicMicros, toMicros: after.monotonicMicros });
    }
  }
  await (current as Subject | null)?.leave?.();
  return totals;
}
