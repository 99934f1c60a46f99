// Regression (found by test/e2e/crash.test.ts): a change that waited for
// another replica's row lock must not overtake that replica's change on this
// replica's WatchJobs streams (docs/contract.md §5: in revision order, no gap). WatchJob
// streams were safe: they fill a gap from the log; WatchJobs has no log to
// fill from, so it relies on the notifier's order.
//
// Replica B's lock statement started before replica A committed revision 2,
// so when B got the lock PostgreSQL handed it the row as A left it (revision
// 2) while the statement's subquery, still on the older snapshot, could not
// see A's event: B took "no previous event" for "the previous event is out"
// and published its revision 3 at once, ahead of revision 2, which B learns
// of only from the feed. Here A's NOTIFY is held back and B never polls, so
// the feed read that puts revision 2 first can only be B's own.

import { afterAll, beforeAll, expect, test } from "@jest/globals";
import pg from "pg";
import { jobsClient, type JobsClient, type Msg, reader } from "../support/grpc.js";
import { startServer, type TestServer } from "../support/harness.js";
import { brief, drainToMarker, eventsOf, eventually, newJobMarkers, readUntil } from "../support/watching.js";

let a: TestServer;
let b: TestServer;
let viaA: JobsClient;
let viaB: JobsClient;

beforeAll(async () => {
  // A sends its first NOTIFY at once and then at most one per 10 s; B reads the feed only when it asks itself to.
  a = await startServer({ env: { NOTIFY_INTERVAL_MS: "10000", WATCH_POLL_INTERVAL_MS: "60000", LOG_LEVEL: "warn" } });
  b = await startServer({ databaseUrl: a.databaseUrl, env: { WATCH_POLL_INTERVAL_MS: "60000", LOG_LEVEL: "warn" } });
  [viaA, viaB] = [a, b].map((server) => jobsClient(server.address, a.tokens.service));
});
afterAll(async () => {
  for (const client of [viaA, viaB]) client?.close();
  for (const server of [b, a]) await server?.stop();
});

test("a change that waited on another replica's row lock reaches this replica's WatchJobs after that replica's change", async () => {
  const watch = reader(viaB.stream("WatchJobs", { company_id: "7" }));
  await readUntil(watch, (m) => m.kind === "synced");
  // Created through B, which publishes its own commits at once (A's next NOTIFY is up to 10 s away).
  const { job } = await viaB.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "7" });
  expect(eventsOf(await readUntil(watch, (m) => m.kind === "event")).map((e) => e.revision)).toEqual(["1"]);

  const locker = new pg.Client({ connectionString: a.databaseUrl });
  await locker.connect();
  const waiting = async (n: number) => {
    // Sessions waiting for a row lock; nothing else that may wait on a lock (a NOTIFY's commit, on an object) counts.
    const { rows } = await locker.query(
      "select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and wait_event in ('transactionid', 'tuple') and datname = current_database()",
    );
    return rows[0].n === n;
  };
  try {
    // Both calls queue on the row lock, A's first; both statements start before either change.
    await locker.query("begin");
    await locker.query("select id from jobs where id = $1 for update", [job.id]);
    const run = viaA.call("RunJob", { job_id: job.id, executor_id: "executor-a", lease_seconds: 3600 });
    await eventually(() => waiting(1), "A's RunJob to wait on the row lock");
    const cancel = viaB.call("RequestJobCancellation", { job_id: job.id, reason: "not needed" });
    await eventually(() => waiting(2), "B's RequestJobCancellation to wait on the row lock");
    await locker.query("rollback");

    expect((await run).job).toMatchObject({ revision: "2", state: "JOB_STATE_RUNNING" });
    expect((await cancel).job).toMatchObject({ revision: "3", state: "JOB_STATE_PENDING_CANCELLATION" });
  } finally {
    await locker.query("rollback").catch(() => undefined);
    await locker.end();
  }
  // Both, whatever their order (revision 2 may come last, once A's NOTIFY is out).
  const live: Msg[] = [];
  while (live.length < 2) live.push(...eventsOf(await readUntil(watch, (m) => m.kind === "event", 15_000)));
  expect(live.map((e) => [e.revision, e.to_state])).toEqual([
    ["2", "JOB_STATE_RUNNING"],
    ["3", "JOB_STATE_PENDING_CANCELLATION"],
  ]);
  // And nothing after them (the markers go through B, which publishes its own commits at once).
  const markers = newJobMarkers([viaB], { type: "JOB_TYPE_FORECAST", company_id: "7" });
  expect((await drainToMarker([watch], markers))[0].map(brief)).toEqual([]);
});
