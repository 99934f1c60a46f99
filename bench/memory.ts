// Server memory with idle WatchJob streams, on a server of its own.

import type { BenchDatabase } from "./database.js";
import { Inspector } from "./inspector.js";
import type { Plan } from "./plans.js";
import { rssBytes } from "./proc.js";
import { startServer } from "./server.js";
import { createJobs, openWatches, type Target, WatchPool, type WatchProblems } from "./service.js";
import { kib, mib, progress, sleep } from "./stats.js";

/**
 * Server memory with idle WatchJob streams, on a server of its own, started
 * with --inspect so that a full GC can be asked for before each reading (the
 * load phases' server runs without it). Three readings: before any watch
 * connection; with the connections open and no stream; with `streams` idle
 * streams, each on its own PENDING job, `perConnection` to a connection.
 */
export async function measureMemory(plan: Plan, db: BenchDatabase, token: string, dataDir: string) {
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

export type MemoryResult = Awaited<ReturnType<typeof measureMemory>>;
