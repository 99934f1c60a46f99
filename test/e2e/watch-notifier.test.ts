// The notifier's LISTEN connection dies while watchers stream (docs/contract.md §5, §11):
// every revision still arrives, in order, exactly once. Two replicas share
// the database; watchers sit on B while changes go through A, so B learns of
// them only from notifications, and polling is set to a minute so that it
// cannot paper over a lost event: recovery has to come from the notifier
// reconnecting and re-reading the feed.

import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { jobsClient, type JobsClient, type Msg, reader } from "../support/grpc.js";
import { sql, startServer, type TestServer } from "../support/harness.js";
import { brief, drainToMarker, eventually, followJob, newJobMarkers, pool, range, readUntil, revisionsOf } from "../support/watching.js";

const NO_POLLING = { WATCH_POLL_INTERVAL_MS: "60000" };

let a: TestServer;
let b: TestServer;
let viaA: JobsClient;
let viaB: JobsClient;

beforeAll(async () => {
  a = await startServer({ env: NO_POLLING });
  b = await startServer({ env: NO_POLLING, databaseUrl: a.databaseUrl });
  viaA = jobsClient(a.address, a.tokens.service);
  viaB = jobsClient(b.address, a.tokens.service);
});
afterAll(async () => {
  viaA?.close();
  viaB?.close();
  await b?.stop();
  await a?.stop();
});

/** Terminates every notifier connection on the test database; returns how many. */
async function killNotifiers(): Promise<number> {
  const rows = await sql<{ killed: boolean }>(
    a.databaseUrl,
    "select pg_terminate_backend(pid) as killed from pg_stat_activity where application_name = 'jobs-notifier' and datname = current_database()",
  );
  return rows.filter((r) => r.killed).length;
}

test("killing the LISTEN connections mid-stream loses no event and duplicates none", async () => {
  const company = "42";
  const jobs = (await pool(range(1, 24), 8, () => viaA.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: company }))).map(
    (r) => r.job as Msg,
  );

  // On B: one stream over all of them, and a follower per job (reconnecting only after FAILED, as the spec ends it).
  const all = reader(viaB.stream("WatchJobs", { company_id: company }));
  const snapshot = (await readUntil(all, (m) => m.kind === "synced")).filter((m) => m.kind === "snapshot");
  expect(snapshot).toHaveLength(jobs.length);
  const followers = jobs.map((job) => followJob(viaB, job.id, 0));

  const reconnectsBefore = b.app.notifier.stats.reconnects;
  let killed = 0;
  let transitionsDone = false;
  // Kill the notifiers again and again while the transitions run.
  const killer = (async () => {
    while (!transitionsDone) {
      killed += await killNotifiers();
      await new Promise((r) => setTimeout(r, 150));
    }
  })();
  await pool(jobs, 6, async (job, i) => {
    await viaA.call("RunJob", { job_id: job.id, executor_id: `ex-${i}` });
    await viaA.call("FailJob", { job_id: job.id, message: "lost the worker" });
    await viaA.call("RunJob", { job_id: job.id, executor_id: `ex-${i}` });
    await new Promise((r) => setTimeout(r, 20 * (i % 5)));
    await viaA.call("CompleteJob", { job_id: job.id, result: { forecast: { cost: "1", rows: "1" } } });
  });
  transitionsDone = true;
  await killer;
  // And once more after the last change: the events still go out once B listens again.
  killed += await killNotifiers();
  const late = (await viaA.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: company })).job;
  await viaA.call("RunJob", { job_id: late.id, executor_id: "ex-late" });
  await viaA.call("CompleteJob", { job_id: late.id, result: { forecast: { cost: "1", rows: "1" } } });

  expect(killed).toBeGreaterThan(0);
  for (const [i, follower] of followers.entries()) {
    const { events, streams } = await follower;
    expect({ job: jobs[i].id, revisions: revisionsOf(events) }).toEqual({ job: jobs[i].id, revisions: [1, 2, 3, 4, 5] });
    expect(streams).toBe(2); // one FAILED end on the way
  }

  const seen = new Map<string, number[]>();
  for (const job of [...jobs, late]) seen.set(job.id, []);
  const expected = jobs.length * 4 + 3;
  let received = 0;
  while (received < expected) {
    const m = await all.next(30_000);
    if (m === null) throw new Error("WatchJobs ended OK; it never ends by itself");
    if (m.kind !== "event") continue;
    const list = seen.get(m.event.job_id);
    if (!list) throw new Error(`event of a job outside the test: ${m.event.job_id}`);
    list.push(Number(m.event.revision));
    received++;
  }
  for (const job of jobs) expect({ job: job.id, revisions: seen.get(job.id) }).toEqual({ job: job.id, revisions: [2, 3, 4, 5] });
  expect(seen.get(late.id)).toEqual([1, 2, 3]);
  // And nothing after them: no duplicate was still on its way.
  const markers = newJobMarkers([viaA], { type: "JOB_TYPE_FORECAST", company_id: company });
  expect((await drainToMarker([all], markers, 30_000))[0].map(brief)).toEqual([]);
  // The notifier did reconnect (the kills hit it), and both replicas listen again.
  expect(b.app.notifier.stats.reconnects).toBeGreaterThan(reconnectsBefore);
  await eventually(async () => {
    const rows = await sql<{ n: string }>(
      a.databaseUrl,
      "select count(*)::text as n from pg_stat_activity where application_name = 'jobs-notifier' and datname = current_database()",
    );
    return Number(rows[0].n) === 2;
  }, "both notifiers to listen again");
});
