// A run's results: the JSON report (bench/results/latest.json; fields are
// added over time, never renamed) and the table printed at the end.

import { spawnSync } from "node:child_process";
import { dirname } from "node:path";
import { VARIABLES } from "../src/config.js";
import type { BenchDatabase } from "./database.js";
import type { MemoryResult } from "./memory.js";
import type { Bench, PhaseResult } from "./phases.js";
import type { Plan } from "./plans.js";
import type { MachineFacts } from "./proc.js";
import { JOBSCTL, OWN_SETTINGS } from "./server.js";
import { kib, mib, round } from "./stats.js";

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

/** Server settings this run took from the environment (the server inherits it; the benchmark sets its OWN_SETTINGS itself). */
export function serverOverrides(): string[] {
  const own = new Set<string>(OWN_SETTINGS);
  return Object.keys(VARIABLES)
    .filter((name) => !own.has(name) && process.env[name] !== undefined)
    .map((name) => `${name}=${process.env[name]}`);
}

export type Report = ReturnType<typeof buildReport> & { profile?: { profiler: string; file: string; summaries: Record<string, unknown> } };

export interface RunFacts {
  readonly plan: Plan;
  readonly machine: MachineFacts;
  readonly db: BenchDatabase;
  readonly startedAt: Date;
  readonly memory: MemoryResult | null;
  readonly eventCheck: { expected: number; inDatabase: number };
  readonly serverLog: string[];
  readonly serverExit: number | null;
  /** The environment the two servers of the executor phases shared (beyond their defaults). */
  readonly executorServerEnv: Record<string, string>;
}

const ratio = (a: number | null | undefined, b: number | null | undefined, digits = 3) =>
  a === null || a === undefined || b === null || b === undefined || b === 0 ? null : round(a / b, digits);

/** The worst (highest) p50 ratio, batching on over off, across the RPCs of a lifecycle. */
function p50Ratio(on: PhaseResult | undefined, off: PhaseResult | undefined): number | null {
  if (!on || !off) return null;
  const ratios = ["CreateJob", "RunJob", "CompleteJob"].map((op) => ratio(on.latency[op]?.p50Ms, off.latency[op]?.p50Ms));
  return ratios.some((r) => r === null) ? null : Math.max(...(ratios as number[]));
}

export function buildReport(bench: Bench, facts: RunFacts) {
  const { plan, machine, db, startedAt, memory, eventCheck } = facts;
  const find = (kind: string, c: number, batching?: "on" | "off") =>
    bench.phases.find((p) => p.kind === kind && p.concurrency === c && (batching === undefined || p.batching === batching));
  const ratios = plan.concurrencies.map((c) => {
    const ceiling = find("ceiling", c);
    const service = find("service", c, "on");
    const unbatched = find("service", c, "off");
    return {
      concurrency: c,
      ceilingEventsPerSecond: ceiling?.eventsPerSecond ?? null,
      serviceEventsPerSecond: service?.eventsPerSecond ?? null,
      serviceOverCeiling: ratio(service?.eventsPerSecond, ceiling?.eventsPerSecond),
      /** The ratio window by window (ceiling and service windows paired in order). */
      perWindow:
        ceiling && service ? ceiling.windowEventsPerSecond.map((r, i) => round((service.windowEventsPerSecond[i] ?? Number.NaN) / r, 2)) : [],
      unbatchedEventsPerSecond: unbatched?.eventsPerSecond ?? null,
      batchedOverUnbatched: ratio(service?.eventsPerSecond, unbatched?.eventsPerSecond),
    };
  });
  const batching = plan.concurrencies.map((c) => {
    const side = (p: PhaseResult | undefined) =>
      p
        ? {
            eventsPerSecond: p.eventsPerSecond,
            serverUsPerEvent: p.cpu.serverUsPerEvent,
            postgresUsPerEvent: p.cpu.postgresUsPerEvent,
            meanCallsPerTransaction: p.writeBatches?.meanCalls ?? null,
            p50Ms: Object.fromEntries(["CreateJob", "RunJob", "CompleteJob"].map((op) => [op, p.latency[op]?.p50Ms ?? null])),
          }
        : null;
    const ceiling = find("ceiling", c);
    const on = find("service", c, "on");
    const off = find("service", c, "off");
    return {
      concurrency: c,
      on: side(on),
      off: side(off),
      ceiling: ceiling ? { eventsPerSecond: ceiling.eventsPerSecond, postgresUsPerEvent: ceiling.cpu.postgresUsPerEvent } : null,
      postgresPerEventOverCeiling: ratio(on?.cpu.postgresUsPerEvent, ceiling?.cpu.postgresUsPerEvent),
      eventsPerSecondOnOverOff: ratio(on?.eventsPerSecond, off?.eventsPerSecond),
      p50OnOverOffWorst: p50Ratio(on, off),
    };
  });
  const baseline = bench.phases.find((p) => p.kind === "watch" && p.watchers === 0)?.eventsPerSecond ?? null;
  const watch = plan.watcherCounts.map((n) => {
    const p = bench.phases.find((x) => x.kind === "watch" && x.watchers === n);
    return {
      watchers: n,
      eventsPerSecond: p?.eventsPerSecond ?? null,
      withoutWatchersEventsPerSecond: baseline,
      withOverWithout: ratio(p?.eventsPerSecond, baseline),
      deliveryP50Ms: p?.delivery?.fromReply.p50Ms ?? null,
      deliveryP99Ms: p?.delivery?.fromReply.p99Ms ?? null,
      serverUsPerEvent: p?.cpu.serverUsPerEvent ?? null,
      postgresUsPerEvent: p?.cpu.postgresUsPerEvent ?? null,
    };
  });
  const s16 = find("service", 16, "on");
  const c16 = find("ceiling", 16);
  const at = (c: number) => batching.find((b) => b.concurrency === c);
  const w1000 = watch.find((w) => w.watchers === 1000);
  const check = (value: number | null | undefined, test: (v: number) => boolean) =>
    value === null || value === undefined || !Number.isFinite(value) ? null : test(value);
  const r16 = ratios.find((r) => r.concurrency === 16)?.serviceOverCeiling ?? null;
  const targets = [
    {
      name: "PostgreSQL CPU per event at C=64, service (batching on) / ceiling",
      value: at(64)?.postgresPerEventOverCeiling ?? null,
      goal: "≤ 0.35",
      met: check(at(64)?.postgresPerEventOverCeiling, (v) => v <= 0.35),
    },
    { name: "events/s at C=64, batching on / off", value: at(64)?.eventsPerSecondOnOverOff ?? null, goal: "≥ 1.30", met: check(at(64)?.eventsPerSecondOnOverOff, (v) => v >= 1.3) },
    {
      name: "p50 latency at C=1, batching on / off (the worst of CreateJob, RunJob, CompleteJob)",
      value: at(1)?.p50OnOverOffWorst ?? null,
      goal: "≤ 1.10",
      met: check(at(1)?.p50OnOverOffWorst, (v) => v <= 1.1),
    },
    { name: "service / ceiling events/s at C=16", value: r16, goal: "≥ 0.538 (before batched writes)", met: check(r16, (v) => v >= 0.538) },
    { name: "watch delivery p99 with 1,000 streams (ms)", value: w1000?.deliveryP99Ms ?? null, goal: "< 50", met: check(w1000?.deliveryP99Ms, (v) => v < 50) },
    {
      name: `server RSS per idle watch stream at ${memory?.streams ?? "?"} streams (KiB)`,
      value: memory ? round(memory.bytesPerStream / 1024, 1) : null,
      goal: "≤ 50",
      met: memory ? memory.bytesPerStream <= 50 * 1024 : null,
    },
    { name: "throughput with 1,000 watchers / without", value: w1000?.withOverWithout ?? null, goal: "≥ 0.90", met: check(w1000?.withOverWithout, (v) => v >= 0.9) },
  ];
  const env = Object.entries(facts.executorServerEnv).map(([k, v]) => `${k}=${v}`).join(" ");
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
      unit: "events written per second = state changes: each lifecycle CreateJob → RunJob → CompleteJob writes 3 (CREATED, STARTED, COMPLETED); the ceiling writes the same rows and events for the same lifecycles, one transition per transaction, and counts the same 3",
      schedule: `first ${plan.runWarmupMs / 1000} s of the service's and ${plan.runWarmupMs / 1000} s of the ceiling's C=16 load, unmeasured; then per phase ${plan.warmupMs / 1000} s warm-up, then ${plan.measureMs / 1000} s measured in ${plan.rounds} windows (${plan.rampMs / 1000} s ramp after each switch; the watch phases ${plan.watchSchedule.measureMs / 1000} s in ${plan.watchSchedule.rounds}); ceiling, service and service with batching off alternate window by window (A B C C B A …)`,
      cpu: "utime+stime from /proc/<pid>/stat: server process; PostgreSQL = postmaster + every child (live, and exited via cutime/cstime); load generator = this process (process.cpuUsage); others = machine busy (/proc/stat) minus those",
      server: `${JOBSCTL} serve, LOG_LEVEL=warn, METRICS_PORT set (for the write-batch counts), ${
        serverOverrides().length ? `from this environment: ${serverOverrides().join(" ")}, ` : ""
      }every other setting at its default (DB_POOL_SIZE ${VARIABLES.DB_POOL_SIZE[0]}, WRITE_BATCH_MAX_CALLS ${VARIABLES.WRITE_BATCH_MAX_CALLS[0]}, WRITE_BATCHES_IN_FLIGHT ${VARIABLES.WRITE_BATCHES_IN_FLIGHT[0]}, NOTIFY_INTERVAL_MS ${VARIABLES.NOTIFY_INTERVAL_MS[0]}, WATCH_HEARTBEAT_SECONDS ${VARIABLES.WATCH_HEARTBEAT_SECONDS[0]})`,
      executorPhases: `two servers of this build on the database, each with ${env}: one in its default configuration (batching on), one with WRITE_BATCH_MAX_CALLS=1 (a transaction per call, batching off); NOTIFY_INTERVAL_MS keeps them from notifying each other, which a replica alone never does, and each phase loads one server at a time`,
      clients: "@grpc/grpc-js with the .proto files, one HTTP/2 connection per client; ceiling: one pg connection per client",
      watch: `C=${plan.watchLoadConcurrency} lifecycle clients plus a probe at ${plan.probeRatePerSecond} lifecycles/s whose jobs are watched (a replacement job and stream for each one finished, so N stay open), ${plan.streamsPerConnection} streams per HTTP/2 connection; N = 0 and the N > 0 phases in alternating windows, streams opened before and closed after each run of windows; delivery = arrival at the watcher − the RPC's reply to its caller (fromRequest: − the request's start); the default-configuration server alone`,
    },
    ratios,
    batching,
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
      serverExitCode: facts.serverExit,
      serverWarnings: facts.serverLog.slice(-20),
    },
  };
}

export function formatReport(r: Report): string {
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
  L.push("                                      latency p50/p99 ms                        CPU µs per event              cores busy          calls per");
  L.push("phase                        events/s      Create         Run    Complete    server      PG  loadgen    server    PG loadgen others  write txn");
  for (const p of r.phases) {
    L.push(
      `${p.phase.padEnd(28)} ${num(p.eventsPerSecond, 8)} ${lat(p, "CreateJob", "create")}${lat(p, "RunJob", "run")}${lat(p, "CompleteJob", "complete")} ${num(p.cpu.serverUsPerEvent, 9)} ${num(p.cpu.postgresUsPerEvent, 7)} ${num(p.cpu.loadGeneratorUsPerEvent, 8)} ${num(p.cpu.serverCores, 9)} ${num(p.cpu.postgresCores, 5)} ${num(p.cpu.loadGeneratorCores, 7)} ${num(p.cpu.otherCores, 6)} ${num(p.writeBatches?.meanCalls, 10)}`,
    );
  }
  L.push("ceiling latencies: the database alone (the create statement; each transition's begin…commit). 'others': cores busy outside");
  L.push("this benchmark (other work on the machine): noise. Errors, if any, are listed below.");
  L.push("");
  L.push("batched writes, per concurrency (same run, alternating windows):");
  for (const b of r.batching) {
    L.push(
      `  C=${String(b.concurrency).padEnd(4)} events/s on ${num(b.on?.eventsPerSecond, 5)} off ${num(b.off?.eventsPerSecond, 5)} ceiling ${num(b.ceiling?.eventsPerSecond, 5)} (on/off ${num(b.eventsPerSecondOnOverOff, 5)}); ` +
        `PostgreSQL µs/event on ${num(b.on?.postgresUsPerEvent, 4)} off ${num(b.off?.postgresUsPerEvent, 4)} ceiling ${num(b.ceiling?.postgresUsPerEvent, 4)} (on/ceiling ${num(b.postgresPerEventOverCeiling, 5)}); ` +
        `server µs/event on ${num(b.on?.serverUsPerEvent, 4)} off ${num(b.off?.serverUsPerEvent, 4)}; calls per write transaction on ${num(b.on?.meanCallsPerTransaction, 5)}; p50 on/off worst ${num(b.p50OnOverOffWorst, 5)}`,
    );
  }
  L.push("");
  for (const x of r.ratios.filter((y) => y.serviceOverCeiling !== null)) {
    L.push(
      `  service / ceiling at C=${String(x.concurrency).padEnd(3)} ${num(x.serviceEventsPerSecond, 5)} / ${num(x.ceilingEventsPerSecond, 5)} = ${x.serviceOverCeiling === null ? "—" : `${(x.serviceOverCeiling * 100).toFixed(1)} %`}   (per window: ${x.perWindow.join(" ")})`,
    );
  }
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
