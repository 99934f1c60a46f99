// --compare: this checkout's server (A) against another build or setting (B)
// on one database, in alternating windows: the A/B runs behind every "kept"
// or "dropped" in docs/performance.md.

import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { analyzeTables, openBenchDatabase } from "./database.js";
import { Bench } from "./phases.js";
import { type Plan, PLANS } from "./plans.js";
import { machineFacts } from "./proc.js";
import { createToken, JOBSCTL, ROOT, type ServerProcess, startServer } from "./server.js";
import { progress, round } from "./stats.js";

/**
 * --compare OTHER_JOBSCTL: this server (A) and another build (B, with
 * --compare-env "K=V K=V" added to its environment) on one fresh database,
 * service at C=16 (or --concurrency) in alternating windows (8 rounds): which is faster, and
 * which costs less CPU per event, with the background noise shared.
 */
export async function compareServers(otherJobsctl: string, otherEnv: string, out: string | undefined, concurrency = 16): Promise<void> {
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
    const served = { a: { server: a, target: { address: a.address, token } }, b: { server: b, target: { address: b.address, token } } };
    const bench = new Bench(plan, db, served.a);
    await bench.warmUp(16, plan.runWarmupMs, { serviceOnly: true, targets: [served.a.target, served.b.target] });
    await analyzeTables(db.url);
    await bench.executors(concurrency, [{ ...served.a, name: "A service" }, { ...served.b, name: "B service" }], false);
    const [pa, pb] = bench.phases;
    const lines = [
      "",
      `A/B at C=${concurrency}, ${plan.rounds} alternating windows each; ${machine.cores} × ${machine.cpuModel}, PostgreSQL ${db.version}`,
      `  A ${JOBSCTL}`,
      `  B ${otherJobsctl} ${otherEnv}`,
      `                events/s  server µs/event (kernel)  PostgreSQL µs/event  RunJob p50/p99 ms  calls per write txn  others busy`,
      ...[pa, pb].map(
        (p) =>
          `  ${p.phase.slice(0, 1)}   ${String(p.eventsPerSecond).padStart(12)}  ${`${p.cpu.serverUsPerEvent} (${p.cpu.serverSystemUsPerEvent})`.padStart(24)}  ${String(p.cpu.postgresUsPerEvent).padStart(19)}  ${`${p.latency.RunJob?.p50Ms}/${p.latency.RunJob?.p99Ms}`.padStart(17)}  ${String(p.writeBatches?.meanCalls ?? "—").padStart(19)}  ${p.cpu.otherCores}`,
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
