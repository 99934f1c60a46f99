// Two replicas on one database (docs/contract.md §5: "a change committed through replica
// A is seen by a watcher on replica B"): one server in this process, one a
// real `jobsctl serve` process. Polling is set to a minute on both, so an
// event can only arrive in time through LISTEN/NOTIFY.

import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { status } from "@grpc/grpc-js";
import { jobsClient, type JobsClient, type Msg, reader } from "../support/grpc.js";
import { startServer, type TestServer } from "../support/harness.js";
import { type ServerProcess, spawnServer } from "../support/processes.js";
import { brief, drainToMarker, eventsOf, newJobMarkers, pool, range, readToEnd, readUntil, revisionsOf } from "../support/watching.js";

const NO_POLLING = { WATCH_POLL_INTERVAL_MS: "60000" };

let a: TestServer;
let b: ServerProcess;
let viaA: JobsClient;
let viaB: JobsClient;

beforeAll(async () => {
  a = await startServer({ env: NO_POLLING });
  b = await spawnServer({ databaseUrl: a.databaseUrl, env: NO_POLLING });
  viaA = jobsClient(a.address, a.tokens.service);
  viaB = jobsClient(b.address, a.tokens.service);
});
afterAll(async () => {
  viaA?.close();
  viaB?.close();
  await b?.stop();
  await a?.stop();
});

async function createJob(client: JobsClient, companyId = "1"): Promise<Msg> {
  return (await client.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: companyId })).job;
}
const complete = (client: JobsClient, jobId: string) =>
  client.call("CompleteJob", { job_id: jobId, result: { forecast: { cost: "1", rows: "1" } } });

test("a transition through replica A reaches a WatchJob watcher on the spawned replica B", async () => {
  const job = await createJob(viaA);
  const r = reader(viaB.stream("WatchJob", { job_id: job.id, after_revision: "0" }));
  expect((await r.next())?.event.type).toBe("JOB_EVENT_TYPE_CREATED");

  await viaA.call("RunJob", { job_id: job.id, executor_id: "ex-a" });
  const started = await readUntil(r, (m) => m.kind === "event");
  expect(started.at(-1)?.event).toMatchObject({ revision: "2", type: "JOB_EVENT_TYPE_STARTED", job: { executor_id: "ex-a" } });

  await complete(viaA, job.id);
  const end = await readToEnd(r);
  expect(end.error).toBeNull();
  expect(eventsOf(end.messages).map((e) => [e.revision, e.type])).toEqual([["3", "JOB_EVENT_TYPE_COMPLETED"]]);
});

test("a transition through the spawned replica B reaches watchers on replica A", async () => {
  const job = await createJob(viaB);
  const one = reader(viaA.stream("WatchJob", { job_id: job.id, after_revision: "0" }));
  const many = reader(viaA.stream("WatchJobs", { company_id: "2" }));
  // Replay and snapshot done: what follows is live.
  expect((await one.next())?.event.revision).toBe("1");
  await readUntil(many, (m) => m.kind === "synced");
  await viaB.call("RunJob", { job_id: job.id, executor_id: "ex-b" });
  await complete(viaB, job.id);
  const end = await readToEnd(one);
  expect(end.error).toBeNull();
  expect(revisionsOf(eventsOf(end.messages))).toEqual([2, 3]);

  const created = await createJob(viaB, "2");
  const next = await readUntil(many, (m) => m.kind === "event");
  expect(next.at(-1)?.event).toMatchObject({ job_id: created.id, type: "JOB_EVENT_TYPE_CREATED" });
});

test("with changes made through both replicas, watchers on each see every revision once, in order", async () => {
  const company = "3";
  const watchers = [viaA, viaB].map((client) => reader(client.stream("WatchJobs", { company_id: company })));
  for (const r of watchers) await readUntil(r, (m) => m.kind === "synced");

  const clients = [viaA, viaB];
  const jobs = await pool(range(0, 39), 8, (i) => createJob(clients[i % 2], company));
  await pool(jobs, 8, async (job, i) => {
    // Each job's calls alternate between replicas.
    await clients[(i + 1) % 2].call("RunJob", { job_id: job.id, executor_id: `ex-${i}` });
    await clients[i % 2].call("FailJob", { job_id: job.id, message: "x" });
    await clients[(i + 1) % 2].call("RunJob", { job_id: job.id, executor_id: `ex-${i}` });
    await complete(clients[i % 2], job.id);
  });
  const ids = new Set(jobs.map((j) => j.id));
  for (const r of watchers) {
    const seen = new Map<string, number[]>();
    let total = 0;
    while (total < jobs.length * 5) {
      const m = await r.next(20_000);
      if (m === null) throw new Error("WatchJobs ended OK; it never ends by itself");
      if (m.kind !== "event") continue;
      expect(ids.has(m.event.job_id)).toBe(true);
      seen.set(m.event.job_id, [...(seen.get(m.event.job_id) ?? []), Number(m.event.revision)]);
      total++;
    }
    for (const job of jobs) expect({ job: job.id, revisions: seen.get(job.id) }).toEqual({ job: job.id, revisions: [1, 2, 3, 4, 5] });
  }
  // And nothing after them on either replica (one marker made through each): no duplicate was still on its way.
  const rest = await drainToMarker(watchers, newJobMarkers(clients, { type: "JOB_TYPE_FORECAST", company_id: company }), 20_000);
  expect(rest.map((messages) => messages.map(brief))).toEqual([[], []]);
});

test("a token revoked through replica A ends its watch streams on the spawned replica B (UNAUTHENTICATED) within 5 s; another token's stream goes on", async () => {
  const revoked = await a.issueToken({ type: "service", name: "revoked-across-replicas" }, ["jobs:read"]);
  const kept = await a.issueToken({ type: "service", name: "kept-across-replicas" }, ["jobs:read"]);
  const job = await createJob(viaA, "4");
  const watchJob = reader(viaB.stream("WatchJob", { job_id: job.id, after_revision: "0" }, revoked.secret));
  const watchJobs = reader(viaB.stream("WatchJobs", { company_id: "4" }, revoked.secret));
  const otherStream = viaB.stream("WatchJob", { job_id: job.id, after_revision: "0" }, kept.secret);
  const other = reader(otherStream);
  // Each stream is live on B: WatchJob has replayed CREATED, WatchJobs has sent its snapshot.
  for (const r of [watchJob, other]) await readUntil(r, (m) => m.kind === "event");
  await readUntil(watchJobs, (m) => m.kind === "synced");

  expect(await a.app.tokens.revoke(revoked.id)).toBe(true);
  // docs/contract.md §6 (tokens and scopes): within 5 s on every replica; the margin covers B's check query.
  const ends = await Promise.all([readToEnd(watchJob, 6_000), readToEnd(watchJobs, 6_000)]);
  expect(ends.map((end) => [end.messages.map(brief), end.error?.code, end.error?.errorInfo?.reason])).toEqual([
    [[], status.UNAUTHENTICATED, "INVALID_TOKEN"],
    [[], status.UNAUTHENTICATED, "INVALID_TOKEN"],
  ]);
  // The other token's stream on B outlived that check, and still delivers.
  await viaA.call("RunJob", { job_id: job.id, executor_id: "after-revocation" });
  expect(eventsOf(await readUntil(other, (m) => m.kind === "event", 10_000)).map((e) => e.to_state)).toEqual(["JOB_STATE_RUNNING"]);
  otherStream.cancel();
});
