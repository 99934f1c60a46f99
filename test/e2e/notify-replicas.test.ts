// A replica NOTIFYs only while another replica listens (src/events/notifier.ts):
// alone, its commits send nothing; a replica that starts is heard of at once,
// and is answered, so that it learns of what was committed while the first
// thought itself alone; once it leaves, the NOTIFYs stop again. Replica B polls
// once a minute, so what its watcher gets in time came through NOTIFY.

import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { jobsClient, type JobsClient, type Msg, reader } from "../support/grpc.js";
import { startServer, type TestServer } from "../support/harness.js";
import { eventually, readUntil } from "../support/watching.js";

let a: TestServer;
let viaA: JobsClient;

beforeAll(async () => {
  // A recounts the other replicas at every poll: ten times a second here.
  a = await startServer({ env: { WATCH_POLL_INTERVAL_MS: "100" } });
  viaA = jobsClient(a.address, a.tokens.service);
});
afterAll(async () => {
  viaA?.close();
  await a?.stop();
});

const createJob = async (client: JobsClient): Promise<Msg> =>
  (await client.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "1" })).job;

/** A's notifier counters, read together. */
const counters = () => ({ sent: a.app.notifier.stats.notificationsSent, skipped: a.app.notifier.stats.notificationsSkipped });

/** A has counted no other replica, and its announcement (sent when it began to listen) is out. */
const aloneAndSettled = () =>
  eventually(() => a.app.notifier.stats.otherReplicas === 0 && counters().sent >= 1, "A to count no other replica");

test("a replica alone sends no NOTIFY for its commits", async () => {
  await aloneAndSettled();
  const before = counters();
  for (let i = 0; i < 5; i++) await createJob(viaA);
  const job = await createJob(viaA);
  await viaA.call("RunJob", { job_id: job.id, executor_id: "ex-alone" });
  expect(counters()).toEqual({ sent: before.sent, skipped: before.skipped + 7 });
});

test("a second replica is heard of and answered at once, gets every change in time, and A goes quiet when it leaves", async () => {
  await aloneAndSettled();
  const sentAlone = counters().sent;

  const b = await startServer({ databaseUrl: a.databaseUrl, env: { WATCH_POLL_INTERVAL_MS: "60000" } });
  const viaB = jobsClient(b.address, a.tokens.service);
  try {
    // B announces itself when it listens; A answers with a NOTIFY of its own, before any commit.
    await eventually(() => counters().sent > sentAlone, "A to answer B's announcement");

    const job = await createJob(viaA);
    const watcher = reader(viaB.stream("WatchJob", { job_id: job.id, after_revision: "1" }));
    const run = await viaA.call("RunJob", { job_id: job.id, executor_id: "ex-b" });
    // Sent after the RunJob's commit: B, which reads only when told, gets it well before its next poll.
    const [started] = await readUntil(watcher, (m) => m.kind === "event", 10_000);
    expect(started.event).toMatchObject({ revision: "2", type: "JOB_EVENT_TYPE_STARTED", job: { executor_id: run.job.executor_id } });
    // And A's next count finds B (the count is a snapshot: one begun before B connected says 0).
    await eventually(() => a.app.notifier.stats.otherReplicas === 1, "A to count B");
  } finally {
    viaB.close();
    await b.stop();
  }

  await eventually(() => a.app.notifier.stats.otherReplicas === 0, "A to count B gone");
  const before = counters();
  await createJob(viaA);
  expect(counters()).toEqual({ sent: before.sent, skipped: before.skipped + 1 });
});
