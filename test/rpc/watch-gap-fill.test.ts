// A WatchJob stream fills a revision gap from the event log (src/rpc/watch.ts):
// if the process's hub ever hands a stream revision N+2 while the stream last
// sent N, the stream reads N+1 from the log and sends both, in order. The
// notifier publishes each job's events in order, so nothing in a healthy run
// takes that path; this test forces it.
//
// Two replicas share a database; the stream is on A, the changes go through B.
// A's notifier is stopped once the stream is live, as if every notification
// from B were lost and A never polled: B's events reach A's hub only when the
// test puts them there. The test publishes B's later event alone into A's hub
// (the stream's gap), and then lets A's notifier catch up with one feed read,
// which brings every event again (the duplicates a stream must drop).

import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { jobsClient, type JobsClient, reader } from "../support/grpc.js";
import { startServer, type TestServer } from "../support/harness.js";
import { eventsOf, readToEnd, readUntil, revisionsOf } from "../support/watching.js";

let a: TestServer;
let b: TestServer;
let viaA: JobsClient;
let viaB: JobsClient;

beforeAll(async () => {
  a = await startServer();
  b = await startServer({ databaseUrl: a.databaseUrl });
  viaA = jobsClient(a.address, a.tokens.service);
  viaB = jobsClient(b.address, a.tokens.service);
});
afterAll(async () => {
  viaA?.close();
  viaB?.close();
  await b?.stop();
  await a?.stop();
});

test("a live WatchJob stream handed revision 3 after 1 sends 2 from the log, then 3, then 4, each once, in order", async () => {
  const { job } = await viaA.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "1" });
  const watch = reader(viaA.stream("WatchJob", { job_id: job.id, after_revision: "0" }));
  // The replay (revision 1) is out: from here on the stream is live, and has sent revision 1.
  expect(revisionsOf(eventsOf(await readUntil(watch, (m) => m.kind === "event")))).toEqual([1]);

  await a.app.notifier.stop();
  await viaB.call("RunJob", { job_id: job.id, executor_id: "executor-b", lease_seconds: 3600 });
  await viaB.call("RequestJobCancellation", { job_id: job.id, reason: "not needed" });
  // Revision 3 reaches A's hub ahead of revision 2: a gap in the stream's live queue.
  const [third] = await a.app.store.events(job.id, 2, 1);
  expect([third.revision, third.toState]).toEqual([3, "PENDING_CANCELLATION"]);
  a.app.hub.publish([third]);
  const filled = eventsOf(await readUntil(watch, (m) => m.kind === "event" && m.event.revision === "3"));
  expect(filled.map((e) => [e.revision, e.type])).toEqual([
    ["2", "JOB_EVENT_TYPE_STARTED"],
    ["3", "JOB_EVENT_TYPE_CANCELLATION_REQUESTED"],
  ]);

  // A's notifier catches up (what a poll would do): one read brings revisions 2, 3 and 4.
  await viaB.call("CancelJob", { job_id: job.id });
  a.app.notifier.requestRead();
  const end = await readToEnd(watch);
  expect(end.error).toBeNull();
  expect(eventsOf(end.messages).map((e) => [e.revision, e.type])).toEqual([["4", "JOB_EVENT_TYPE_CANCELLED"]]);
});
