// `npm run bench` — how close the service comes to what its database can do,
// and what batched writes buy. One run, one freshly started PostgreSQL
// (embedded, default settings: fsync on; or DATABASE_URL), fresh server
// processes on loopback, and in that same run:
//   memory     server RSS with 0 and with 2,000 idle WatchJob streams (a server of its own);
//   executors  job lifecycles (CreateJob → RunJob → CompleteJob) from C clients,
//              C = 1, 16, 64, 256: the ceiling (the same writes straight from pg,
//              one transition per transaction), the service, and the same build
//              with batching off (WRITE_BATCH_MAX_CALLS=1), in alternating windows;
//   watch      C=16 lifecycles plus a paced probe whose jobs have WatchJob streams,
//              with N = 0, 100, 1,000 streams open: delivery time, throughput ratio.
// The method, the figures and how to read them: docs/performance.md.
//
// Flags: --quick (a smoke run of a few minutes), --profile (the server
// profiled under the C=16 and 1,000-watcher loads), --v8 (V8's profiler
// instead of perf), --out FILE, --compare OTHER/bin/jobsctl.js
// [--compare-env "K=V …"] [--concurrency C] (A/B against another build or
// setting, C=16 unless given).

import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { compareServers } from "./compare.js";
import { analyzeTables, eventCount, openBenchDatabase } from "./database.js";
import { measureMemory } from "./memory.js";
import { formatPerf, injectJit, PERF_NODE_OPTIONS, perfAvailable, recordPerf, summarizePerf } from "./perf.js";
import { Bench, type Served } from "./phases.js";
import { PLANS } from "./plans.js";
import { machineFacts } from "./proc.js";
import { type CpuProfile, formatSummary, summarizeProfile } from "./profile.js";
import { buildReport, formatReport, type Report, serverOverrides } from "./report.js";
import { createToken, JOBSCTL, ROOT, type ServerProcess, startServer } from "./server.js";
import { progress } from "./stats.js";

/**
 * The two servers of the executor phases share one database: without this,
 * each would count the other as a replica and NOTIFY it every 20 ms, which a
 * replica alone never does.
 */
const EXECUTOR_SERVER_ENV = { NOTIFY_INTERVAL_MS: "10000" };

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean" },
      profile: { type: "boolean" },
      out: { type: "string" },
      v8: { type: "boolean" },
      compare: { type: "string" },
      "compare-env": { type: "string" },
      concurrency: { type: "string" },
    },
  });
  if (values.compare) return compareServers(values.compare, values["compare-env"] ?? "", values.out, Number(values.concurrency ?? 16));
  const plan = PLANS[values.profile ? "profile" : values.quick ? "quick" : "full"];
  const out = values.out ?? join(ROOT, "bench", "results", `${plan.mode === "full" ? "latest" : plan.mode}.json`);
  const startedAt = new Date();
  const machine = machineFacts();
  progress(`${plan.mode} run on ${machine.cores} × ${machine.cpuModel}, Node ${machine.node}; server ${JOBSCTL} ${serverOverrides().join(" ")}`);

  const db = await openBenchDatabase();
  progress(`PostgreSQL ${db.version} (${db.embedded ? "embedded, fresh" : "DATABASE_URL"}), fsync=${db.settings.fsync}, synchronous_commit=${db.settings.synchronous_commit}`);
  const servers: ServerProcess[] = [];
  let cleaning: Promise<void> | null = null;
  const cleanup = () =>
    (cleaning ??= (async () => {
      for (const server of servers) await server.stop().catch(() => undefined);
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

    const profiler = plan.mode !== "profile" ? null : !values.v8 && perfAvailable() ? "perf" : "v8";
    const profiling = profiler ? prepareProfile(profiler) : null;
    const serve = async (name: string, env: Record<string, string>, profiled = false): Promise<Served> => {
      const server = await startServer({
        databaseUrl: db.url,
        dataDir: join(db.scratchDir, name),
        env: profiled && profiling ? { ...env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} ${profiling.nodeOptions}`.trim() } : env,
        // --perf-prof writes its jitdump into the working directory.
        cwd: profiled && profiler === "perf" ? profiling?.dir : undefined,
      });
      servers.push(server);
      progress(`server ${name}: pid ${server.pid} on ${server.address} ${Object.entries(env).map(([k, v]) => `${k}=${v}`).join(" ")}`);
      return { server, target: { address: server.address, token } };
    };
    const batched = await serve("batched", plan.mode === "profile" ? {} : EXECUTOR_SERVER_ENV, true);
    const perf = profiler === "perf" && profiling ? recordPerf(batched.server.pid, profiling.file) : null;
    const bench = new Bench(plan, db, batched);
    bench.expectedEvents += memory?.eventsCaused ?? 0;

    if (plan.mode === "profile") {
      await bench.warmUp(16, plan.runWarmupMs, { serviceOnly: true });
      await analyzeTables(db.url);
      await bench.executors(16, [{ ...batched, name: "service", batching: "on" }], false);
    } else {
      const unbatched = await serve("unbatched", { ...EXECUTOR_SERVER_ENV, WRITE_BATCH_MAX_CALLS: "1" });
      await bench.warmUp(16, plan.runWarmupMs, { targets: [batched.target, unbatched.target] });
      await analyzeTables(db.url);
      for (const c of plan.concurrencies) {
        await bench.executors(c, [
          { ...batched, name: "service", batching: "on" },
          { ...unbatched, name: "service unbatched", batching: "off" },
        ]);
      }
      await unbatched.server.stop();
    }
    await bench.watch(plan.watcherCounts);

    await perf?.stop();
    const serverExit = await batched.server.stop();
    const report: Report = buildReport(bench, {
      plan,
      machine,
      db,
      startedAt,
      memory,
      eventCheck: { expected: bench.expectedEvents, inDatabase: await eventCount(db.url) },
      serverLog: batched.server.logTail,
      serverExit,
      executorServerEnv: EXECUTOR_SERVER_ENV,
    });
    if (profiler && profiling) {
      report.profile = await summarizeProfileRun(profiler, profiling.file, bench, dirname(out));
    }
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(formatReport(report));
    process.stdout.write(`\nJSON: ${out}\n`);
  } finally {
    await cleanup();
  }
}

/** Where the profile goes (recordings are large: kept outside the checkout, one at a time) and the server's Node options for it. */
function prepareProfile(profiler: "perf" | "v8"): { dir: string; file: string; nodeOptions: string } {
  const dir = join(os.tmpdir(), "jobs-bench-profile");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const name = profiler === "perf" ? `server-${Date.now()}.perf.data` : `server-${Date.now()}.cpuprofile`;
  const nodeOptions = profiler === "perf" ? PERF_NODE_OPTIONS : `--cpu-prof --cpu-prof-dir=${dir} --cpu-prof-name=${name}`;
  return { dir, file: join(dir, name), nodeOptions };
}

/** Summarizes the profile per phase, prints it and writes profile-summary.txt next to the results. */
async function summarizeProfileRun(profiler: "perf" | "v8", file: string, bench: Bench, resultsDir: string) {
  const text: string[] = [];
  const summaries: Record<string, unknown> = {};
  if (profiler === "perf") {
    const perfData = injectJit(file);
    for (const p of bench.phases) {
      const s = await summarizePerf(perfData, p.windows);
      summaries[p.phase] = s;
      text.push(formatPerf(`server on-CPU profile (perf), ${p.phase} (${p.eventsPerSecond} events/s, server ${p.cpu.serverUsPerEvent} µs/event)`, s));
    }
    text.push(`(recording: ${perfData}; node dist/bench/perf.js ${perfData} --from MICROS --to MICROS summarizes another window; the phases' windows are in the JSON)`);
  } else {
    const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
    for (const p of bench.phases) {
      const s = summarizeProfile(profile, p.windows);
      summaries[p.phase] = s;
      text.push(formatSummary(`server CPU profile (V8 --cpu-prof), ${p.phase} (${p.eventsPerSecond} events/s)`, s));
    }
  }
  writeFileSync(join(resultsDir, "profile-summary.txt"), `${text.join("\n\n")}\n`);
  process.stdout.write(`${text.join("\n\n")}\n\n`);
  return { profiler, file, summaries };
}

main().catch((error) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
