// A watcher that stops reading (docs/contract.md §5: "A slow watcher never slows
// transitions or other watchers"). The server buffers at most
// WATCH_BUFFER_EVENTS per stream (100 here: small next to the 2,000 events,
// roomy for watchers that read while this file's client, server and
// transitions share one event loop); a stream further behind is cut off
// with UNAVAILABLE (reason WATCH_LAGGING) once the server gets to it, and the
// client resumes from its last revision without loss. Meanwhile transitions
// and the other watchers carry on.
//
// "Stops reading": the grpc-js stream is paused and nobody pulls from it, so
// grpc-js stops reading the HTTP/2 stream, its flow-control window closes, and
// the server's writes to it block.

import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { jobsClient, type JobsClient, type Msg, reader } from "../support/grpc.js";
import { startServer, type TestServer } from "../support/harness.js";
import { brief, drainToMarker, followJob, pool, range, readToEnd, readUntil, streamOnOwnConnection } from "../support/watching.js";

const JOBS = 1000; // two events each (CREATED, COMPLETED): 2,000 events
// Events of about 1 KB, so that flow-control windows and client buffers hold a few hundred of
// them, not thousands; kept under 1 KiB, the size from which responses are gzipped, so that
// compression cost (per stream, per message) does not decide who keeps up.
const PADDED_INPUT = { other: { fields: { padding: { stringValue: "x".repeat(550) } } } };

let server: TestServer;
let client: JobsClient;
let slowConnection: { close(): void } | undefined;

beforeAll(async () => {
  server = await startServer({ env: { WATCH_BUFFER_EVENTS: "100", LOG_LEVEL: "warn" } });
  client = jobsClient(server.address, server.tokens.service);
});
afterAll(async () => {
  client?.close();
  slowConnection?.close();
  await server?.stop();
});

function record(seen: Map<string, number[]>, event: Msg): void {
  seen.set(event.job_id, [...(seen.get(event.job_id) ?? []), Number(event.revision)]);
}

test("a stalled stream is cut off with WATCH_LAGGING while others get everything; it resumes without loss", async () => {
  const company = "77";
  // On a connection of its own, so that only its stream stalls.
  const { stream: slowStream, close } = streamOnOwnConnection(server.address, server.tokens.service, "WatchJobs", { company_id: company });
  slowConnection = { close };
  const slow = reader(slowStream);
  expect((await readUntil(slow, (m) => m.kind === "synced")).map((m) => m.kind)).toEqual(["synced"]);
  slowStream.pause(); // and nothing reads it from here on

  const fast = reader(client.stream("WatchJobs", { company_id: company }));
  await readUntil(fast, (m) => m.kind === "synced");
  const fastSeen = new Map<string, number[]>();
  const fastDone = (async () => {
    for (let n = 0; n < JOBS * 2; ) {
      const m = await fast.next(30_000);
      if (m === null) throw new Error("WatchJobs ended OK; it never ends by itself");
      if (m.kind !== "event") continue;
      record(fastSeen, m.event);
      n++;
    }
  })();
  fastDone.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile

  // Thousands of events flow; every call completes although one watcher reads nothing.
  const jobs = await pool(range(1, JOBS), 16, async (i) => {
    const { job } = await client.call("CreateJob", { type: "JOB_TYPE_HEALTH_CHECK", company_id: company, input: PADDED_INPUT });
    await client.call("CompleteJob", { job_id: job.id, result: { health_check: { healthy: i % 2 === 0 } } });
    return job as Msg;
  });
  // Followers of single jobs on the same server still see their whole history.
  const followed = await Promise.all(jobs.slice(0, 10).map((job) => followJob(client, job.id, 0)));
  for (const f of followed) expect(f.events.map((e) => e.to_state)).toEqual(["JOB_STATE_PENDING", "JOB_STATE_COMPLETED"]);
  await fastDone;
  for (const job of jobs) expect(fastSeen.get(job.id)).toEqual([1, 2]);
  // And nothing after them on the fast stream: no duplicate was still on its way. (The markers are
  // finished jobs, so that the fresh snapshot at the end stays empty.)
  const finishedJob = async () => {
    const { job } = await client.call("CreateJob", { type: "JOB_TYPE_HEALTH_CHECK", company_id: company });
    await client.call("CompleteJob", { job_id: job.id, result: { health_check: { healthy: true } } });
    return { jobId: job.id as string, revision: "2" };
  };
  expect((await drainToMarker([fast], finishedJob))[0].map(brief)).toEqual([]);

  // The stalled stream, read again: what was buffered before it fell behind, then WATCH_LAGGING.
  slowStream.resume();
  const end = await readToEnd(slow, 30_000);
  expect(end.error?.code).toBe(14); // UNAVAILABLE
  expect(end.error?.errorInfo).toMatchObject({ domain: "jobs.v1", reason: "WATCH_LAGGING" });
  const slowSeen = new Map<string, number[]>();
  for (const m of end.messages) if (m.kind === "event") record(slowSeen, m.event);
  const delivered = [...slowSeen.values()].reduce((n, revs) => n + revs.length, 0);
  expect(delivered).toBeLessThan(JOBS * 2); // it really was cut off
  expect(delivered).toBeGreaterThan(0); // after sending what it had buffered: the checks below are not over nothing
  // A prefix of what was published: per job, nothing, CREATED, or both, in order.
  for (const revisions of slowSeen.values()) expect([[1], [1, 2]]).toContainEqual(revisions);

  // Resuming a job from the last revision the stalled stream saw gives exactly the rest: every job
  // it saw some of, and a hundred it saw nothing of.
  const resumed = [...jobs.filter((job) => slowSeen.has(job.id)), ...jobs.filter((job) => !slowSeen.has(job.id)).slice(0, 100)];
  await pool(resumed, 16, async (job) => {
    const seen = slowSeen.get(job.id) ?? [];
    const rest = await readToEnd(reader(client.stream("WatchJob", { job_id: job.id, after_revision: String(seen.at(-1) ?? 0) })));
    expect(rest.error).toBeNull();
    const after = rest.messages.filter((m) => m.kind === "event").map((m) => Number(m.event.revision));
    expect({ job: job.id, revisions: [...seen, ...after] }).toEqual({ job: job.id, revisions: [1, 2] });
  });
  // And a fresh WatchJobs is a fresh snapshot: nothing unfinished is left.
  const again = await readUntil(reader(client.stream("WatchJobs", { company_id: company })), (m) => m.kind === "synced");
  expect(again.map((m) => m.kind)).toEqual(["synced"]);
}, 120_000); // generous for a loaded CI machine; the work itself takes ~10 s
