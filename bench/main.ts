// `npm run bench` — how close the service comes to what its database can do.
//
// One run, one freshly started PostgreSQL (embedded, default settings: fsync
// on; or DATABASE_URL), fresh server processes (`jobsctl serve`, LOG_LEVEL
// warn) on loopback, and in that same run:
//   memory     server RSS with 0 and with 2,000 idle WatchJob streams (a server of its own);
//   ceiling    the store's SQL for job lifecycles, straight from `pg`, C connections;
//   service    the same lifecycles over gRPC (@grpc/grpc-js), C clients, C = 1, 16, 64;
//              ceiling and service measured in alternating windows (A B B A …), so
//              that the machine's drifting background load falls on both alike;
//   watch      C=16 lifecycles plus a paced probe whose jobs have WatchJob streams,
//              with N = 0, 100, 1,000 streams open: delivery time, throughput ratio.
// Unit of throughput: events written per second = state changes (CREATED,
// STARTED, COMPLETED: three per lifecycle), counted alike for ceiling and service.
// CPU: utime+stime from /proc for the server process, for PostgreSQL (postmaster
// and all its children) and for this load generator, per event.
//
// Flags: --quick (under a minute: C = 1, 16; 100 watchers; 300 streams; short windows),
// --profile (profiles the server under the C=16 and 1,000-watcher loads and prints
// where its CPU goes: with Linux perf when installed, on-CPU and all threads; else,
// or with --v8, V8's --cpu-prof), --out FILE
// (default bench/results/latest.json; quick.json, profile.json, compare.json for the other modes).
// --compare OTHER/bin/jobsctl.js [--compare-env "K=V …"]: this server against another
// build (or setting) at C=16 in alternating windows on one database (A/B).
// JOBS_BENCH_JOBSCTL=/other/checkout/bin/jobsctl.js measures another build; the
// server inherits the environment, so e.g. DB_POOL_SIZE=40 npm run bench tries a
// setting (the report lists such overrides).

import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import { VARIABLES } from "../src/config.js";
import { createCeilingLoad } from "./ceiling.js";
import { type BenchDatabase, openBenchDatabase } from "./database.js";
import { Inspector } from "./inspector.js";
import { type Measured, type Meters, measure, type Schedule, type Subject } from "./load.js";
import { type MachineFacts, machineFacts, rssBytes } from "./proc.js";
import { formatPerf, injectJit, PERF_NODE_OPTIONS, perfAvailable, recordPerf, summarizePerf } from "./perf.js";
import { type CpuProfile, formatSummary, summarizeProfile } from "./profile.js";
import { createToken, JOBSCTL, type ServerProcess, startServer } from "./server.js";
import { createJobs, createServiceLoad, openWatches, Probe, type Target, WatchPool, type WatchProblems } from "./service.js";
import { type LatencySummary, Recorder, round, sleep } from "./stats.js";
import { EVENTS_PER_LIFECYCLE } from "./workload.js";

const ROOT = join(import.meta.dirname, "..", "..");

interface Plan extends Schedule {
  readonly mode: "full" | "quick" | "profile";
  /**
   * Before the first measured phase, the service and the ceiling each run
   * C=16 lifecycles this long, unmeasured: the server's and the load
   * generators' JIT settle (the C=16 windows still climbed 25 % within the
   * phase without it), as they have in any server that has run a while.
   */
  readonly runWarmupMs: number;
  readonly concurrencies: readonly number[];
  readonly watchLoadConcurrency: number;
  readonly watcherCounts: readonly number[];
  /**
   * The watch phases' measured time and windows. Their windows swing by ±15 % on
   * a shared machine (stream churn, GC), so they get more of them than the
   * ceiling/service phases, or the with/without ratio is mostly noise.
   */
  readonly watchSchedule: Pick<Schedule, "measureMs" | "rounds">;
  readonly probeRatePerSecond: number;
  readonly memoryStreams: number;
  /** Streams opened and closed before the memory readings (JIT, pool). */
  readonly memoryWarmStreams: number;
  readonly streamsPerConnection: number;
  readonly settleMs: number;
}

const PLANS: Record<Plan["mode"], Plan> = {
  full: {
    mode: "full",
    runWarmupMs: 15_000,
    warmupMs: 3_000,
    measureMs: 10_000,
    rounds: 5,
    rampMs: 500,
    concurrencies: [1, 16, 64],
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
    concurrencies: [1, 16],
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

interface PhaseResult {
  readonly phase: string;
  readonly kind: "ceiling" | "service" | "watch";
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

const progress = (line: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
const kib = (bytes: number) => (bytes / 1024).toFixed(1);

class Bench {
  readonly phases: PhaseResult[] = [];
  /** Every event the benchmark caused, for the final check against job_events. */
  expectedEvents = 0;
  readonly errorMessages = new Map<string, number>();
  readonly meters: Meters;

  constructor(
    readonly plan: Plan,
    readonly db: BenchDatabase,
    readonly server: ServerProcess,
    readonly target: Target,
  ) {
    this.meters = { serverPid: server.pid, postmasterPid: db.postmasterPid };
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
      windows: m.windows,
      ...extra,
    };
    this.phases.push(result);
    progress(describePhase(result));
    return result;
  }

  /**
   * Runs the service's load on each target, then (unless `serviceOnly`) the
   * ceiling's, for `ms` each; nothing is measured but the events they write.
   */
  async warmUp(concurrency: number, ms: number, { serviceOnly = false, targets = [this.target] } = {}): Promise<void> {
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

  /** The ceiling and the service at one concurrency, in alternating windows. */
  async ceilingAndService(concurrency: number): Promise<void> {
    const ceilingRecorder = new Recorder();
    const serviceRecorder = new Recorder();
    const ceiling = await createCeilingLoad(this.db.url, concurrency, ceilingRecorder);
    const service = await createServiceLoad(this.target, concurrency, serviceRecorder);
    try {
      const [c, s] = await measure(
        [
          { name: `ceiling C=${concurrency}`, loads: [ceiling.load], recorder: ceilingRecorder },
          { name: `service C=${concurrency}`, loads: [service.load], recorder: serviceRecorder },
        ],
        this.plan,
        this.meters,
      );
      this.result(c, ceilingRecorder, "ceiling", concurrency);
      this.result(s, serviceRecorder, "service", concurrency);
    } finally {
      await ceiling.close();
      await service.close();
    }
  }

  /** This server (A) against another build (B) on the same database, C clients each, in alternating windows. */
  async compare(other: ServerProcess, otherTarget: Target, concurrency: number): Promise<void> {
    const aRecorder = new Recorder();
    const bRecorder = new Recorder();
    const a = await createServiceLoad(this.target, concurrency, aRecorder);
    const b = await createServiceLoad(otherTarget, concurrency, bRecorder);
    try {
      const [ma, mb] = await measure(
        [
          { name: `A service C=${concurrency}`, loads: [a.load], recorder: aRecorder },
          { name: `B service C=${concurrency}`, loads: [b.load], recorder: bRecorder, serverPid: other.pid },
        ],
        this.plan,
        this.meters,
      );
      this.result(ma, aRecorder, "service", concurrency);
      this.result(mb, bRecorder, "service", concurrency);
    } finally {
      await a.close();
      await b.close();
    }
  }

  /** The service alone (profile mode). */
  async service(concurrency: number): Promise<void> {
    const recorder = new Recorder();
    const service = await createServiceLoad(this.target, concurrency, recorder);
    try {
      const [s] = await measure([{ name: `service C=${concurrency}`, loads: [service.load], recorder }], this.plan, this.meters);
      this.result(s, recorder, "service", concurrency);
    } finally {
      await service.close();
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
    const subjects: Subject[] = [];
    const parts: { watchers: number; probe: Probe; pool: WatchPool | null; problems: WatchProblems; recorder: Recorder; close(): Promise<void> }[] = [];
    try {
      for (const watchers of [0, ...counts]) {
        const problems: WatchProblems = { count: 0, messages: new Map() };
        const pool = watchers > 0 ? new WatchPool(this.target, watchers, this.plan.streamsPerConnection) : null;
        const probe = new Probe(this.target, pool, problems);
        const recorder = new Recorder();
        const service = await createServiceLoad(this.target, concurrency, recorder);
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

/**
 * Server memory with idle WatchJob streams, on a server of its own, started
 * with --inspect so that a full GC can be asked for before each reading (the
 * load phases' server runs without it). Three readings: before any watch
 * connection; with the connections open and no stream; with `streams` idle
 * streams, each on its own PENDING job, `perConnection` to a connection.
 */
async function measureMemory(plan: Plan, db: BenchDatabase, token: string, dataDir: string) {
  const streams = plan.memoryStreams;
  const server = await startServer({ databaseUrl: db.url, dataDir, env: { NODE_OPTIONS: "--inspect=127.0.0.1:0" } });
  try {
    if (!server.inspectorUrl) throw new Error("the memory server printed no inspector URL");
    const inspector = await Inspector.connect(server.inspectorUrl);
    const target: Target = { address: server.address, token };
    const warmIds = await createJobs(target, plan.memoryWarmStreams);
    const ids = await createJobs(target, streams);
    const problems: WatchProblems = { count: 0, messages: new Map() };
    // Warm the watch path (JIT, pool connections) with streams that are then closed.
    const warmPool = new WatchPool(target, warmIds.length, plan.streamsPerConnection);
    await warmPool.ready();
    for (const w of await openWatches(warmPool, warmIds, problems)) w.cancel();
    warmPool.close();
    await sleep(plan.settleMs);
    const reading = async () => {
      const heap = await inspector.collectGarbage();
      await sleep(plan.settleMs);
      return { rss: rssBytes(server.pid), heap };
    };
    const base = await reading();
    const pool = new WatchPool(target, streams, plan.streamsPerConnection);
    await pool.ready();
    const connected = await reading();
    const watches = await openWatches(pool, ids, problems);
    const open = await reading();
    for (const w of watches) w.cancel();
    pool.close();
    inspector.close();
    const result = {
      streams,
      connections: pool.connections,
      streamsPerConnection: plan.streamsPerConnection,
      rssBytes: { noWatchConnections: base.rss, connectionsNoStreams: connected.rss, withStreams: open.rss },
      heapUsedBytes: { noWatchConnections: base.heap, connectionsNoStreams: connected.heap, withStreams: open.heap },
      /** RSS growth from no watch connection to `streams` open streams, per stream (the connections' share included). */
      bytesPerStream: Math.round((open.rss - base.rss) / streams),
      /** The same from the connected reading: streams only. */
      bytesPerStreamExcludingConnections: Math.round((open.rss - connected.rss) / streams),
      bytesPerConnection: Math.round((connected.rss - base.rss) / pool.connections),
      heapBytesPerStream: Math.round((open.heap - base.heap) / streams),
      problems: problems.count,
      eventsCaused: warmIds.length + ids.length,
    };
    progress(
      `memory: server RSS ${mib(base.rss)} MiB → ${mib(connected.rss)} MiB with ${pool.connections} connections → ${mib(open.rss)} MiB with ${streams} idle WatchJob streams: ` +
        `${kib(result.bytesPerStream)} KiB per stream (${kib(result.bytesPerStreamExcludingConnections)} KiB without the connections' share); V8 heap ${kib(result.heapBytesPerStream)} KiB per stream`,
    );
    return result;
  } finally {
    await server.stop();
  }
}

type MemoryResult = Awaited<ReturnType<typeof measureMemory>>;

function describePhase(p: PhaseResult): string {
  const lat = ["CreateJob", "RunJob", "CompleteJob", "create", "run", "complete"]
    .filter((op) => p.latency[op])
    .map((op) => `${op} p50 ${p.latency[op].p50Ms} p99 ${p.latency[op].p99Ms} ms`)
    .join(", ");
  const delivery = p.delivery ? `; delivery p50 ${p.delivery.fromReply.p50Ms} p99 ${p.delivery.fromReply.p99Ms} ms` : "";
  return `${p.phase}: ${p.eventsPerSecond} events/s [windows ${p.windowEventsPerSecond.join(" ")}] (${p.errors} errors); ${lat}${delivery}; others busy ${p.cpu.otherCores} cores`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean" },
      profile: { type: "boolean" },
      out: { type: "string" },
      v8: { type: "boolean" },
      compare: { type: "string" },
      "compare-env": { type: "string" },
    },
  });
  if (values.compare) return compareServers(values.compare, values["compare-env"] ?? "", values.out);
  const plan = PLANS[values.profile ? "profile" : values.quick ? "quick" : "full"];
  const out = values.out ?? join(ROOT, "bench", "results", `${plan.mode === "full" ? "latest" : plan.mode}.json`);
  const startedAt = new Date();
  const machine = machineFacts();
  progress(`${plan.mode} run on ${machine.cores} × ${machine.cpuModel}, Node ${machine.node}; server ${JOBSCTL} ${serverOverrides().join(" ")}`);

  const db = await openBenchDatabase();
  progress(`PostgreSQL ${db.version} (${db.embedded ? "embedded, fresh" : "DATABASE_URL"}), fsync=${db.settings.fsync}, synchronous_commit=${db.settings.synchronous_commit}`);
  // Recordings are large (a perf recording and its jitdump are ~100 MB in 10,000 files): kept outside the checkout.
  const profileDir = join(os.tmpdir(), "jobs-bench-profile");
  let server: ServerProcess | null = null;
  let cleaning: Promise<void> | null = null;
  const cleanup = () =>
    (cleaning ??= (async () => {
      await server?.stop().catch(() => undefined);
      await db.stop();
    })());
  const onSignal = () => void cleanup().finally(() => process.exit(130));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const dataDir = join(db.scratchDir, "server");
    // `jobsctl tokens create` also applies the migrations to the fresh database.
    const token = await createToken(db.url, dataDir);
    const memory = plan.memoryStreams > 0 ? await measureMemory(plan, db, token, dataDir) : null;

    // Profiles: perf (on-CPU, all threads) when installed, else (or with --v8) V8's --cpu-prof.
    const profiler = plan.mode !== "profile" ? null : !values.v8 && perfAvailable() ? "perf" : "v8";
    const stamp = Date.now();
    const profileFile = join(profileDir, profiler === "perf" ? `server-${stamp}.perf.data` : `server-${stamp}.cpuprofile`);
    if (profiler) {
      // One profile at a time: recordings are large.
      rmSync(profileDir, { recursive: true, force: true });
      mkdirSync(profileDir, { recursive: true });
    }
    const nodeOptions =
      profiler === "perf"
        ? PERF_NODE_OPTIONS
        : profiler === "v8"
          ? `--cpu-prof --cpu-prof-dir=${profileDir} --cpu-prof-name=${profileFile.split("/").pop()}`
          : "";
    server = await startServer({
      databaseUrl: db.url,
      dataDir,
      env: nodeOptions ? { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} ${nodeOptions}`.trim() } : {},
      // --perf-prof writes its jitdump into the working directory.
      cwd: profiler === "perf" ? profileDir : undefined,
    });
    const perf = profiler === "perf" ? recordPerf(server.pid, profileFile) : null;
    const target: Target = { address: server.address, token };
    progress(`server pid ${server.pid} on ${server.address}; PostgreSQL postmaster pid ${db.postmasterPid ?? "not local (its CPU is not measured)"}`);
    const bench = new Bench(plan, db, server, target);
    bench.expectedEvents += memory?.eventsCaused ?? 0;

    await bench.warmUp(16, plan.runWarmupMs, { serviceOnly: plan.mode === "profile" });
    if (plan.mode === "profile") {
      await bench.service(16);
    } else {
      for (const c of plan.concurrencies) await bench.ceilingAndService(c);
    }
    await bench.watch(plan.watcherCounts);

    await perf?.stop();
    const serverExit = await server.stop();
    const perfData = profiler === "perf" ? injectJit(profileFile) : "";
    const inDatabase = await eventCount(db.url);
    const report: Report = buildReport(plan, machine, db, startedAt, bench, memory, { expected: bench.expectedEvents, inDatabase }, server.logTail, serverExit);

    if (profiler) {
      const text: string[] = [];
      const summaries: Record<string, unknown> = {};
      if (profiler === "perf") {
        for (const p of bench.phases) {
          const s = await summarizePerf(perfData, p.windows);
          summaries[p.phase] = s;
          text.push(formatPerf(`server on-CPU profile (perf), ${p.phase} (${p.eventsPerSecond} events/s, server ${p.cpu.serverUsPerEvent} µs/event)`, s));
        }
        text.push(`(recording: ${perfData}; node dist/bench/perf.js ${perfData} --from MICROS --to MICROS summarizes another window; the phases' windows are in the JSON)`);
      } else {
        const profile = JSON.parse(readFileSync(profileFile, "utf8")) as CpuProfile;
        for (const p of bench.phases) {
          const s = summarizeProfile(profile, p.windows);
          summaries[p.phase] = s;
          text.push(formatSummary(`server CPU profile (V8 --cpu-prof), ${p.phase} (${p.eventsPerSecond} events/s)`, s));
        }
      }
      report.profile = { profiler, file: profileFile, summaries };
      writeFileSync(join(dirname(out), "profile-summary.txt"), `${text.join("\n\n")}\n`);
      process.stdout.write(`${text.join("\n\n")}\n\n`);
    }
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(formatReport(report));
    process.stdout.write(`\nJSON: ${out}\n`);
  } finally {
    await cleanup();
  }
}

/**
 * --compare OTHER_JOBSCTL: this server (A) and another build (B, with
 * --compare-env "K=V K=V" added to its environment) on one fresh database,
 * service at C=16 in alternating windows (8 rounds): which is faster, and
 * which costs less CPU per event, with the background noise shared.
 */
async function compareServers(otherJobsctl: string, otherEnv: string, out: string | undefined): Promise<void> {
  const plan: Plan = { ...PLANS.full, rounds: 8, measureMs: 16_000 };
  const machine = machineFacts();
  const db = await openBenchDatabase();
  const servers: ServerProcess[] = [];
  try {
    const dataDir = join(db.scratchDir, "server");
    const token = await createToken(db.url, dataDir);
    const a = await startServer({ databaseUrl: db.url, dataDir: join(db.scratchDir, "a") });
    servers.push(a);
    // "K=V K=V": split each at its first "=", so values may hold "=" (NODE_OPTIONS=--flag=1).
    const env = Object.fromEntries(
      otherEnv
        .split(/\s+/)
        .filter(Boolean)
        .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)] as [string, string]),
    );
    const b = await startServer({ databaseUrl: db.url, dataDir: join(db.scratchDir, "b"), env, jobsctl: otherJobsctl });
    servers.push(b);
    progress(`A: ${JOBSCTL} (pid ${a.pid}); B: ${otherJobsctl} ${otherEnv} (pid ${b.pid})`);
    const bench = new Bench(plan, db, a, { address: a.address, token });
    await bench.warmUp(16, plan.runWarmupMs, { serviceOnly: true, targets: [bench.target, { address: b.address, token }] });
    await bench.compare(b, { address: b.address, token }, 16);
    const [pa, pb] = bench.phases;
    const lines = [
      "",
      `A/B at C=16, ${plan.rounds} alternating windows each; ${machine.cores} × ${machine.cpuModel}, PostgreSQL ${db.version}`,
      `  A ${JOBSCTL}`,
      `  B ${otherJobsctl} ${otherEnv}`,
      `                events/s  server µs/event (kernel)  PostgreSQL µs/event  RunJob p50/p99 ms  others busy`,
      ...[pa, pb].map(
        (p) =>
          `  ${p.phase.slice(0, 1)}   ${String(p.eventsPerSecond).padStart(12)}  ${`${p.cpu.serverUsPerEvent} (${p.cpu.serverSystemUsPerEvent})`.padStart(24)}  ${String(p.cpu.postgresUsPerEvent).padStart(19)}  ${`${p.latency.RunJob?.p50Ms}/${p.latency.RunJob?.p99Ms}`.padStart(17)}  ${p.cpu.otherCores}`,
      ),
      `  B/A events/s ${round(pb.eventsPerSecond / pa.eventsPerSecond, 3)}, server CPU per event ${round((pb.cpu.serverUsPerEvent ?? 0) / (pa.cpu.serverUsPerEvent ?? 1), 3)}; per window A ${pa.windowEventsPerSecond.join(" ")} | B ${pb.windowEventsPerSecond.join(" ")}`,
    ];
    process.stdout.write(`${lines.join("\n")}\n`);
    const file = out ?? join(ROOT, "bench", "results", "compare.json");
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `${JSON.stringify({ generatedAt: new Date().toISOString(), machine, a: JOBSCTL, b: otherJobsctl, bEnv: otherEnv, phases: bench.phases }, null, 2)}\n`);
  } finally {
    for (const s of servers) await s.stop().catch(() => undefined);
    await db.stop();
  }
}

async function eventCount(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return Number((await client.query<{ n: string }>("select count(*) as n from job_events")).rows[0].n);
  } finally {
    await client.end();
  }
}

/** Which server code ran: the checkout's commit, and whether src/ had uncommitted changes (the build is of the working tree). */
function serverBuild(): { jobsctl: string; commit: string | null; uncommittedChangesInSrc: boolean | null } {
  const git = (...args: string[]) => spawnSync("git", args, { cwd: dirname(dirname(JOBSCTL)), encoding: "utf8" });
  const head = git("rev-parse", "--short", "HEAD");
  const dirty = git("status", "--porcelain", "--", "src");
  return {
    jobsctl: JOBSCTL,
    commit: head.status === 0 ? head.stdout.trim() : null,
    uncommittedChangesInSrc: dirty.status === 0 ? dirty.stdout.trim().length > 0 : null,
  };
}

/** Server settings this run took from the environment (the server inherits it; HOST, PORT, DATABASE_URL, LOG_LEVEL and JOBS_DATA_DIR are the benchmark's). */
function serverOverrides(): string[] {
  const own = new Set(["HOST", "PORT", "DATABASE_URL", "LOG_LEVEL", "JOBS_DATA_DIR"]);
  return Object.keys(VARIABLES)
    .filter((name) => !own.has(name) && process.env[name] !== undefined)
    .map((name) => `${name}=${process.env[name]}`);
}

type Report = ReturnType<typeof buildReport> & { profile?: { profiler: string; file: string; summaries: Record<string, unknown> } };

function buildReport(
  plan: Plan,
  machine: MachineFacts,
  db: BenchDatabase,
  startedAt: Date,
  bench: Bench,
  memory: MemoryResult | null,
  eventCheck: { expected: number; inDatabase: number },
  serverLog: string[],
  serverExit: number | null,
) {
  const find = (kind: string, c: number) => bench.phases.find((p) => p.kind === kind && p.concurrency === c);
  const ratios = plan.concurrencies.map((c) => {
    const ceiling = find("ceiling", c);
    const service = find("service", c);
    return {
      concurrency: c,
      ceilingEventsPerSecond: ceiling?.eventsPerSecond ?? null,
      serviceEventsPerSecond: service?.eventsPerSecond ?? null,
      serviceOverCeiling: ceiling && service ? round(service.eventsPerSecond / ceiling.eventsPerSecond, 3) : null,
      /** The ratio window by window (ceiling and service windows paired in order). */
      perWindow:
        ceiling && service ? ceiling.windowEventsPerSecond.map((r, i) => round((service.windowEventsPerSecond[i] ?? Number.NaN) / r, 2)) : [],
    };
  });
  const baseline = bench.phases.find((p) => p.kind === "watch" && p.watchers === 0)?.eventsPerSecond ?? null;
  const watch = plan.watcherCounts.map((n) => {
    const p = bench.phases.find((x) => x.kind === "watch" && x.watchers === n);
    return {
      watchers: n,
      eventsPerSecond: p?.eventsPerSecond ?? null,
      withoutWatchersEventsPerSecond: baseline,
      withOverWithout: p && baseline ? round(p.eventsPerSecond / baseline, 3) : null,
      deliveryP50Ms: p?.delivery?.fromReply.p50Ms ?? null,
      deliveryP99Ms: p?.delivery?.fromReply.p99Ms ?? null,
      serverUsPerEvent: p?.cpu.serverUsPerEvent ?? null,
      postgresUsPerEvent: p?.cpu.postgresUsPerEvent ?? null,
    };
  });
  const s16 = find("service", 16);
  const c16 = find("ceiling", 16);
  const r16 = ratios.find((r) => r.concurrency === 16)?.serviceOverCeiling ?? null;
  const w1000 = watch.find((w) => w.watchers === 1000);
  const cpuRatio = s16?.cpu.serverUsPerEvent != null && s16.cpu.postgresUsPerEvent ? round(s16.cpu.serverUsPerEvent / s16.cpu.postgresUsPerEvent, 2) : null;
  const check = (value: number | null | undefined, test: (v: number) => boolean) =>
    value === null || value === undefined || !Number.isFinite(value) ? null : test(value);
  const targets = [
    { name: "service / ceiling events/s at C=16", value: r16, goal: "≥ 0.50", met: check(r16, (v) => v >= 0.5) },
    { name: "server CPU / PostgreSQL CPU per event, service at C=16", value: cpuRatio, goal: "≤ 1.00", met: check(cpuRatio, (v) => v <= 1) },
    { name: "watch delivery p99 with 1,000 streams (ms)", value: w1000?.deliveryP99Ms ?? null, goal: "< 50", met: check(w1000?.deliveryP99Ms, (v) => v < 50) },
    {
      name: `server RSS per idle watch stream at ${memory?.streams ?? "?"} streams (KiB)`,
      value: memory ? round(memory.bytesPerStream / 1024, 1) : null,
      goal: "≤ 50",
      met: memory ? memory.bytesPerStream <= 50 * 1024 : null,
    },
    { name: "throughput with 1,000 watchers / without", value: w1000?.withOverWithout ?? null, goal: "≥ 0.90", met: check(w1000?.withOverWithout, (v) => v >= 0.9) },
  ];
  return {
    generatedAt: new Date().toISOString(),
    startedAt: startedAt.toISOString(),
    mode: plan.mode,
    server: serverBuild(),
    machine: {
      ...machine,
      postgres: db.version,
      postgresSettings: db.settings,
      database: db.embedded ? "embedded (fresh data directory)" : "DATABASE_URL",
    },
    method: {
      unit: "events written per second = state changes: each lifecycle CreateJob → RunJob → CompleteJob writes 3 (CREATED, STARTED, COMPLETED); the ceiling runs the store's statements for the same lifecycles and counts the same 3",
      schedule: `first ${plan.runWarmupMs / 1000} s of the service's and ${plan.runWarmupMs / 1000} s of the ceiling's C=16 load, unmeasured; then per phase ${plan.warmupMs / 1000} s warm-up, then ${plan.measureMs / 1000} s measured in ${plan.rounds} windows (${plan.rampMs / 1000} s ramp after each switch; the watch phases ${plan.watchSchedule.measureMs / 1000} s in ${plan.watchSchedule.rounds}); ceiling and service windows alternate (A B B A …)`,
      cpu: "utime+stime from /proc/<pid>/stat: server process; PostgreSQL = postmaster + every child (live, and exited via cutime/cstime); load generator = this process (process.cpuUsage); others = machine busy (/proc/stat) minus those",
      server: `${JOBSCTL} serve, LOG_LEVEL=warn, ${
        serverOverrides().length ? `from this environment: ${serverOverrides().join(" ")}, ` : ""
      }every other setting at its default (DB_POOL_SIZE ${VARIABLES.DB_POOL_SIZE[0]}, NOTIFY_INTERVAL_MS ${VARIABLES.NOTIFY_INTERVAL_MS[0]}, WATCH_HEARTBEAT_SECONDS ${VARIABLES.WATCH_HEARTBEAT_SECONDS[0]})`,
      clients: "@grpc/grpc-js with the .proto files, one HTTP/2 connection per client; ceiling: one pg connection per client",
      watch: `C=${plan.watchLoadConcurrency} lifecycle clients plus a probe at ${plan.probeRatePerSecond} lifecycles/s whose jobs are watched (a replacement job and stream for each one finished, so N stay open), ${plan.streamsPerConnection} streams per HTTP/2 connection; N = 0 and the N > 0 phases in alternating windows, streams opened before and closed after each run of windows; delivery = arrival at the watcher − the RPC's reply to its caller (fromRequest: − the request's start)`,
    },
    ratios,
    watch,
    memory,
    cpuPerEvent: {
      serviceC16: s16
        ? {
            serverUs: s16.cpu.serverUsPerEvent,
            serverSystemUs: s16.cpu.serverSystemUsPerEvent,
            postgresUs: s16.cpu.postgresUsPerEvent,
            loadGeneratorUs: s16.cpu.loadGeneratorUsPerEvent,
          }
        : null,
      ceilingC16: c16
        ? { postgresUs: c16.cpu.postgresUsPerEvent, loadGeneratorUs: c16.cpu.loadGeneratorUsPerEvent, loadGeneratorSystemUs: c16.cpu.loadGeneratorSystemUsPerEvent }
        : null,
    },
    targets,
    phases: bench.phases,
    checks: {
      eventsCausedByBenchmark: eventCheck.expected,
      eventsInDatabase: eventCheck.inDatabase,
      errors: Object.fromEntries(bench.errorMessages),
      serverExitCode: serverExit,
      serverWarnings: serverLog.slice(-20),
    },
  };
}

function formatReport(r: Report): string {
  const L: string[] = [];
  const num = (v: number | null | undefined, w = 7) => (v === null || v === undefined || Number.isNaN(v) ? "—" : String(v)).padStart(w);
  const lat = (p: PhaseResult, a: string, b: string) => {
    const s = p.latency[a] ?? p.latency[b];
    return (s ? `${s.p50Ms.toFixed(1)}/${s.p99Ms.toFixed(1)}` : "—").padStart(12);
  };
  const m = r.machine;
  L.push("");
  L.push(`jobs benchmark (${r.mode}), ${r.startedAt}; server ${r.server.jobsctl} at ${r.server.commit ?? "?"}${r.server.uncommittedChangesInSrc ? " + uncommitted changes in src/" : ""}`);
  L.push(`${m.cores} × ${m.cpuModel}, ${(m.memoryBytes / 2 ** 30).toFixed(0)} GiB, ${m.kernel}, Node ${m.node}; PostgreSQL ${m.postgres} (${m.database}, fsync=${m.postgresSettings.fsync}, synchronous_commit=${m.postgresSettings.synchronous_commit}); load average at start ${m.loadAverageAtStart.join(" ")}`);
  L.push(`events/s = state changes written per second (3 per CreateJob→RunJob→CompleteJob lifecycle); ${r.method.schedule}`);
  L.push("");
  L.push("                                      latency p50/p99 ms                        CPU µs per event              cores busy");
  L.push("phase                      events/s      Create         Run    Complete    server      PG  loadgen    server    PG loadgen others");
  for (const p of r.phases) {
    L.push(
      `${p.phase.padEnd(26)} ${num(p.eventsPerSecond, 8)} ${lat(p, "CreateJob", "create")}${lat(p, "RunJob", "run")}${lat(p, "CompleteJob", "complete")} ${num(p.cpu.serverUsPerEvent, 9)} ${num(p.cpu.postgresUsPerEvent, 7)} ${num(p.cpu.loadGeneratorUsPerEvent, 8)} ${num(p.cpu.serverCores, 9)} ${num(p.cpu.postgresCores, 5)} ${num(p.cpu.loadGeneratorCores, 7)} ${num(p.cpu.otherCores, 6)}`,
    );
  }
  L.push("ceiling latencies: the database alone (the create statement; each transition's begin…commit). 'others': cores busy outside");
  L.push("this benchmark (other work on the machine): noise. Errors, if any, are listed below.");
  L.push("");
  if (r.ratios.some((x) => x.serviceOverCeiling !== null)) L.push("================  SERVICE / CEILING  (events/s, alternating windows, same run)  ================");
  for (const x of r.ratios.filter((y) => y.serviceOverCeiling !== null)) {
    L.push(
      `  C=${String(x.concurrency).padEnd(3)}  service ${num(x.serviceEventsPerSecond, 5)} / ceiling ${num(x.ceilingEventsPerSecond, 5)} = ${x.serviceOverCeiling === null ? "—" : `${(x.serviceOverCeiling * 100).toFixed(1)} %`}   (per window: ${x.perWindow.join(" ")})`,
    );
  }
  if (r.ratios.some((x) => x.serviceOverCeiling !== null)) L.push("=================================================================================================");
  L.push("");
  L.push("watch: C=16 lifecycles + probe; delivery = arrival at the watcher − the RPC reply to its caller (− the request's start)");
  for (const w of r.watch) {
    const p = r.phases.find((x) => x.kind === "watch" && x.watchers === w.watchers);
    const d = p?.delivery;
    if (!p || !d) continue;
    L.push(
      `  N=${String(w.watchers).padEnd(5)} delivery p50 ${d.fromReply.p50Ms} ms, p99 ${d.fromReply.p99Ms} ms, max ${d.fromReply.maxMs} ms (from request: p50 ${d.fromRequest.p50Ms}, p99 ${d.fromRequest.p99Ms}); ${d.samples} samples, ${d.openStreams} streams on ${d.connections} connections, ${d.problems} problems`,
    );
    L.push(`         throughput ${p.eventsPerSecond} events/s vs ${w.withoutWatchersEventsPerSecond} without watchers = ${w.withOverWithout === null ? "—" : `${(w.withOverWithout * 100).toFixed(1)} %`}; server ${p.cpu.serverUsPerEvent} µs, PostgreSQL ${p.cpu.postgresUsPerEvent} µs per event`);
  }
  if (r.memory) {
    const mm = r.memory;
    L.push("");
    L.push(
      `memory (own server, full GC before each reading): RSS ${mib(mm.rssBytes.noWatchConnections)} MiB → ${mib(mm.rssBytes.connectionsNoStreams)} MiB with ${mm.connections} connections → ${mib(mm.rssBytes.withStreams)} MiB with ${mm.streams} idle WatchJob streams (${mm.streamsPerConnection} per connection)`,
    );
    L.push(
      `  = ${kib(mm.bytesPerStream)} KiB RSS per stream, connections' share included (${kib(mm.bytesPerStreamExcludingConnections)} KiB streams only; ${kib(mm.bytesPerConnection)} KiB per connection); V8 heap ${kib(mm.heapBytesPerStream)} KiB per stream`,
    );
  }
  if (r.cpuPerEvent.serviceC16) {
    const s = r.cpuPerEvent.serviceC16;
    const c = r.cpuPerEvent.ceilingC16;
    L.push("");
    L.push(
      `CPU per event at C=16: service: server ${s.serverUs} µs (${s.serverSystemUs} µs of it in the kernel), PostgreSQL ${s.postgresUs} µs, load generator ${s.loadGeneratorUs} µs; ` +
        `ceiling: PostgreSQL ${c?.postgresUs ?? "—"} µs, load generator (pg driver + the store's domain code) ${c?.loadGeneratorUs ?? "—"} µs (${c?.loadGeneratorSystemUs ?? "—"} µs in the kernel)`,
    );
  }
  L.push("");
  L.push("targets (ratios within this run):");
  for (const t of r.targets) L.push(`  ${t.met === null ? "n/a " : t.met ? "MET " : "MISS"}  ${t.name}: ${t.value ?? "—"} (goal ${t.goal})`);
  L.push("");
  L.push(`checks: ${r.checks.eventsCausedByBenchmark} events caused by the benchmark, ${r.checks.eventsInDatabase} in job_events; server exit code ${r.checks.serverExitCode}`);
  const errors = Object.entries(r.checks.errors);
  if (errors.length) {
    L.push("errors:");
    for (const [msg, n] of errors.slice(0, 10)) L.push(`  ${n} × ${msg}`);
  }
  if (r.checks.serverWarnings.length) {
    L.push(`server log (last ${Math.min(5, r.checks.serverWarnings.length)} of ${r.checks.serverWarnings.length} lines kept):`);
    for (const line of r.checks.serverWarnings.slice(-5)) L.push(`  ${line.slice(0, 300)}`);
  }
  return `${L.join("\n")}\n`;
}

main().catch((error) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
