// The measured phases of a run: each loads one or more subjects (the
// ceiling, the service, the service with batching off, the watch probe) in
// alternating windows and turns the readings into a PhaseResult.

import { createCeilingLoad } from "./ceiling.js";
import type { BenchDatabase } from "./database.js";
import { type Measured, type Meters, measure, type Subject } from "./load.js";
import type { Plan } from "./plans.js";
import type { ServerProcess } from "./server.js";
import { createServiceLoad, Probe, type Target, WatchPool, type WatchProblems } from "./service.js";
import { type LatencySummary, progress, Recorder, round, sleep } from "./stats.js";
import { EVENTS_PER_LIFECYCLE } from "./workload.js";

export interface PhaseResult {
  readonly phase: string;
  readonly kind: "ceiling" | "service" | "watch";
  /** For service phases: whether the server batched its writes (WRITE_BATCH_MAX_CALLS default) or wrote a call per transaction (1). */
  readonly batching?: "on" | "off";
  readonly concurrency: number;
  readonly watchers?: number;
  readonly seconds: number;
  readonly events: number;
  readonly eventsPerSecond: number;
  readonly lifecyclesPerSecond: number;
  /** Events/s of each measurement window: the spread within the phase. */
  readonly windowEventsPerSecond: number[];
  readonly errors: number;
  readonly latency: Record<string, LatencySummary>;
  readonly cpu: {
    /** CPU microseconds per event written. */
    readonly serverUsPerEvent: number | null;
    /** The part of serverUsPerEvent spent in the kernel (syscalls: socket I/O). */
    readonly serverSystemUsPerEvent: number | null;
    readonly postgresUsPerEvent: number | null;
    readonly loadGeneratorUsPerEvent: number | null;
    readonly loadGeneratorSystemUsPerEvent: number | null;
    /** Average cores busy during the windows. */
    readonly serverCores: number;
    readonly postgresCores: number | null;
    readonly loadGeneratorCores: number;
    /** Cores busy with anything else on the machine (other jobs): the noise in these windows. */
    readonly otherCores: number | null;
  };
  /** The server's write transactions during the windows (service phases), from its /metrics. */
  readonly writeBatches?: { readonly transactions: number; readonly calls: number; readonly meanCalls: number | null };
  readonly delivery?: {
    readonly samples: number;
    readonly fromReply: LatencySummary;
    readonly fromRequest: LatencySummary;
    readonly openStreams: number;
    readonly connections: number;
    readonly problems: number;
  };
  /** CLOCK_MONOTONIC microseconds of the windows (to cut a server CPU profile to them). */
  readonly windows: { fromMicros: number; toMicros: number }[];
}

/** A server under load, and how to reach it. */
export interface Served {
  readonly server: ServerProcess;
  readonly target: Target;
}

export class Bench {
  readonly phases: PhaseResult[] = [];
  /** Every event the benchmark caused, for the final check against job_events. */
  expectedEvents = 0;
  readonly errorMessages = new Map<string, number>();
  readonly meters: Meters;

  constructor(
    readonly plan: Plan,
    readonly db: BenchDatabase,
    /** The server in its default configuration (batching on): the watch phases and the profile load it. */
    readonly main: Served,
  ) {
    this.meters = { serverPid: main.server.pid, postmasterPid: db.postmasterPid };
  }

  /** Adds a phase's error messages (and how often each came) to the run's. */
  private countErrors(messages: ReadonlyMap<string, number>, prefix = ""): void {
    for (const [msg, n] of messages) this.errorMessages.set(prefix + msg, (this.errorMessages.get(prefix + msg) ?? 0) + n);
  }

  private result(m: Measured, recorder: Recorder, kind: PhaseResult["kind"], concurrency: number, extra: Partial<PhaseResult> = {}): PhaseResult {
    this.expectedEvents += recorder.allEvents;
    this.countErrors(recorder.errorMessages);
    const perEvent = (us: number | null) => (us === null || m.events === 0 ? null : Math.round(us / m.events));
    const cores = (us: number) => round(us / 1e6 / m.seconds, 2);
    const latency: Record<string, LatencySummary> = {};
    for (const [op, samples] of recorder.latency) latency[op] = samples.summary();
    const { transactions, calls } = m.counters;
    const result: PhaseResult = {
      phase: m.name,
      kind,
      concurrency,
      seconds: round(m.seconds, 2),
      events: m.events,
      eventsPerSecond: Math.round(m.events / m.seconds),
      lifecyclesPerSecond: Math.round(m.events / EVENTS_PER_LIFECYCLE / m.seconds),
      windowEventsPerSecond: m.windowRates,
      errors: recorder.errors,
      latency,
      cpu: {
        // The server idles through ceiling windows; its (small) CPU there is not the ceiling's.
        serverUsPerEvent: kind === "ceiling" ? null : perEvent(m.serverUs),
        serverSystemUsPerEvent: kind === "ceiling" ? null : perEvent(m.serverSystemUs),
        postgresUsPerEvent: perEvent(m.postgresUs),
        loadGeneratorUsPerEvent: perEvent(m.clientUs),
        loadGeneratorSystemUsPerEvent: perEvent(m.clientSystemUs),
        serverCores: cores(m.serverUs),
        postgresCores: m.postgresUs === null ? null : cores(m.postgresUs),
        loadGeneratorCores: cores(m.clientUs),
        otherCores: m.postgresUs === null ? null : cores(m.machineBusyUs - m.serverUs - m.postgresUs - m.clientUs),
      },
      ...(transactions === undefined ? {} : { writeBatches: { transactions, calls, meanCalls: transactions > 0 ? round(calls / transactions, 2) : null } }),
      windows: m.windows,
      ...extra,
    };
    this.phases.push(result);
    progress(describePhase(result));
    return result;
  }

  /**
   * Runs the service's load on each server, then (unless `serviceOnly`) the
   * ceiling's, for `ms` each; nothing is measured but the events they write.
   */
  async warmUp(concurrency: number, ms: number, { serviceOnly = false, targets = [this.main.target] } = {}): Promise<void> {
    if (ms <= 0) return;
    progress(`warm-up: ${serviceOnly ? "" : "ceiling and "}${targets.length} server(s) at C=${concurrency}, ${ms / 1000} s each (not measured)`);
    const recorder = new Recorder();
    const loads = [];
    for (const target of targets) loads.push(await createServiceLoad(target, concurrency, recorder));
    if (!serviceOnly) loads.push(await createCeilingLoad(this.db.url, concurrency, recorder));
    try {
      for (const { load } of loads) {
        load.resume();
        await sleep(ms);
        await load.pause();
      }
    } finally {
      for (const load of loads) await load.close();
    }
    this.expectedEvents += recorder.allEvents;
    this.countErrors(recorder.errorMessages, "warm-up: ");
  }

  /**
   * Executors' lifecycles from `concurrency` clients, in alternating windows:
   * the ceiling (unless left out), then each server under its name; every
   * server's write transactions are counted per window.
   */
  async executors(concurrency: number, servers: ReadonlyArray<Served & { name: string; batching?: "on" | "off" }>, withCeiling = true): Promise<void> {
    const parts: { subject: Subject; kind: PhaseResult["kind"]; batching?: "on" | "off"; close(): Promise<void> }[] = [];
    try {
      if (withCeiling) {
        const recorder = new Recorder();
        const ceiling = await createCeilingLoad(this.db.url, concurrency, recorder);
        parts.push({ subject: { name: `ceiling C=${concurrency}`, loads: [ceiling.load], recorder }, kind: "ceiling", close: ceiling.close });
      }
      for (const { server, target, name, batching } of servers) {
        const recorder = new Recorder();
        const service = await createServiceLoad(target, concurrency, recorder);
        parts.push({
          subject: { name: `${name} C=${concurrency}`, loads: [service.load], recorder, serverPid: server.pid, counters: () => server.writeBatches() },
          kind: "service",
          batching,
          close: service.close,
        });
      }
      const measured = await measure(
        parts.map((p) => p.subject),
        this.plan,
        this.meters,
      );
      measured.forEach((m, i) => this.result(m, parts[i].subject.recorder, parts[i].kind, concurrency, parts[i].batching ? { batching: parts[i].batching } : {}));
    } finally {
      for (const part of parts) await part.close();
    }
  }

  /**
   * C=16 lifecycles plus the probe, with N WatchJob streams open, for N = 0
   * (the probe's lifecycles unwatched) and each of `counts`: all measured in
   * alternating windows; the streams are opened before a subject's windows
   * and closed after them (their jobs stay PENDING and are watched again).
   */
  async watch(counts: readonly number[]): Promise<void> {
    const concurrency = this.plan.watchLoadConcurrency;
    const target = this.main.target;
    const subjects: Subject[] = [];
    const parts: { watchers: number; probe: Probe; pool: WatchPool | null; problems: WatchProblems; recorder: Recorder; close(): Promise<void> }[] = [];
    try {
      for (const watchers of [0, ...counts]) {
        const problems: WatchProblems = { count: 0, messages: new Map() };
        const pool = watchers > 0 ? new WatchPool(target, watchers, this.plan.streamsPerConnection) : null;
        const probe = new Probe(target, pool, problems);
        const recorder = new Recorder();
        const service = await createServiceLoad(target, concurrency, recorder);
        const probeLoad = probe.load(this.plan.probeRatePerSecond, recorder);
        parts.push({
          watchers,
          probe,
          pool,
          problems,
          recorder,
          close: async () => {
            await probeLoad.stop();
            await service.close();
            probe.close();
            pool?.close();
          },
        });
        subjects.push({
          name: `watch C=${concurrency} N=${watchers}`,
          loads: [service.load, probeLoad],
          recorder,
          enter: () => probe.open(watchers),
          leave: async () => probe.closeStreams(),
        });
      }
      const measured = await measure(subjects, { ...this.plan, ...this.plan.watchSchedule }, this.meters);
      measured.forEach((m, i) => {
        const { watchers, probe, pool, problems, recorder } = parts[i];
        this.expectedEvents += probe.setupEvents;
        this.countErrors(problems.messages, "watch: ");
        this.result(m, recorder, "watch", concurrency, {
          watchers,
          delivery:
            watchers === 0
              ? undefined
              : {
                  samples: probe.fromReply.count,
                  fromReply: probe.fromReply.summary(),
                  fromRequest: probe.fromRequest.summary(),
                  openStreams: watchers,
                  connections: pool?.connections ?? 0,
                  problems: problems.count,
                },
        });
      });
    } finally {
      for (const p of parts) await p.close();
    }
  }
}

function describePhase(p: PhaseResult): string {
  const lat = ["CreateJob", "RunJob", "CompleteJob", "create", "run", "complete"]
    .filter((op) => p.latency[op])
    .map((op) => `${op} p50 ${p.latency[op].p50Ms} p99 ${p.latency[op].p99Ms} ms`)
    .join(", ");
  const delivery = p.delivery ? `; delivery p50 ${p.delivery.fromReply.p50Ms} p99 ${p.delivery.fromReply.p99Ms} ms` : "";
  const batches = p.writeBatches ? `; ${p.writeBatches.meanCalls ?? "—"} calls per write transaction` : "";
  return `${p.phase}: ${p.eventsPerSecond} events/s [windows ${p.windowEventsPerSecond.join(" ")}] (${p.errors} errors); ${lat}${delivery}${batches}; PostgreSQL ${p.cpu.postgresUsPerEvent} µs/event; others busy ${p.cpu.otherCores} cores`;
}
