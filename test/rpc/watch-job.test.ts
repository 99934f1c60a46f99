// WatchJob over a real socket (docs/contract.md §5): replay from any revision, live
// events with no gap and no duplicate at the replay/live seam (also while
// transitions race), the literal end rule (the stream ends OK right after an
// event into COMPLETED, FAILED or CANCELLED), heartbeats, and errors.

import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { jobsClient, type JobsClient, type Msg, reader } from "../support/grpc.js";
import { create, toBinary } from "@bufbuild/protobuf";
import { WatchJobRequestSchema } from "../../src/gen/jobs/v1/job_service_pb.js";
import { startServer, type TestServer } from "../support/harness.js";
import { envelope, grpcStatusAtEnd } from "../support/raw-calls.js";
import { eventsOf, followJob, pool, range, readToEnd, readUntil, revisionsOf } from "../support/watching.js";

let server: TestServer;
let client: JobsClient;

beforeAll(async () => {
  // Heartbeats every second, so that idle streams can be observed open.
  server = await startServer({ env: { WATCH_HEARTBEAT_SECONDS: "1" } });
  client = jobsClient(server.address, server.tokens.service);
});
afterAll(async () => {
  client?.close();
  await server?.stop();
});

async function createJob(companyId = "7"): Promise<Msg> {
  const { job } = await client.call("CreateJob", {
    type: "JOB_TYPE_FORECAST",
    company_id: companyId,
    input: { forecast: { nql: "select 1", compiled_sql: "select 1" } },
  });
  return job;
}

const run = (jobId: string, executorId = "ex-1") => client.call("RunJob", { job_id: jobId, executor_id: executorId });
const complete = (jobId: string) => client.call("CompleteJob", { job_id: jobId, result: { forecast: { cost: "5", rows: "6" } } });
const fail = (jobId: string, message = "boom") => client.call("FailJob", { job_id: jobId, message });

function watch(jobId: string, afterRevision: number | string, token?: string | null) {
  return client.stream("WatchJob", { job_id: jobId, after_revision: String(afterRevision) }, token);
}

/** A job taken through every kind of event: CREATED, STARTED, CANCELLATION_REQUESTED, CANCELLED. */
async function cancelledJob(): Promise<string> {
  const job = await createJob();
  await run(job.id);
  await client.call("RequestJobCancellation", { job_id: job.id, reason: "no longer needed" });
  await client.call("CancelJob", { job_id: job.id });
  return job.id;
}

describe("replay", () => {
  test("from 0 delivers every event in revision order with its fields and job snapshot, then ends OK", async () => {
    const jobId = await cancelledJob();
    const end = await readToEnd(reader(watch(jobId, 0)));
    expect(end.error).toBeNull();
    expect(end.messages.every((m) => m.kind === "event")).toBe(true);
    const events = eventsOf(end.messages);

    expect(revisionsOf(events)).toEqual([1, 2, 3, 4]);
    expect(events.map((e) => [e.type, e.from_state, e.to_state])).toEqual([
      ["JOB_EVENT_TYPE_CREATED", "JOB_STATE_UNSPECIFIED", "JOB_STATE_PENDING"],
      ["JOB_EVENT_TYPE_STARTED", "JOB_STATE_PENDING", "JOB_STATE_RUNNING"],
      ["JOB_EVENT_TYPE_CANCELLATION_REQUESTED", "JOB_STATE_RUNNING", "JOB_STATE_PENDING_CANCELLATION"],
      ["JOB_EVENT_TYPE_CANCELLED", "JOB_STATE_PENDING_CANCELLATION", "JOB_STATE_CANCELLED"],
    ]);
    for (const e of events) {
      expect(e.job_id).toBe(jobId);
      expect(e.actor).toMatchObject({ type: "PRINCIPAL_TYPE_SERVICE", name: "test-service" });
      expect(Number(e.occurred_at.seconds)).toBeGreaterThan(0);
      // The snapshot is the job as of that revision.
      expect(e.job).toMatchObject({ id: jobId, revision: e.revision, state: e.to_state, company_id: "7" });
      expect(e.job.input.forecast.nql).toBe("select 1");
    }
    expect(events[0].job).toMatchObject({ executor_id: "", attempt: "0" });
    expect(events[1].job).toMatchObject({ executor_id: "ex-1", attempt: "1" });
    expect(events[2].job.cancellation_reason).toBe("no longer needed");
    expect(events[3].job.finished_at).not.toBeNull();

    // The same history the audit log holds, message for message.
    const history = await client.call("ListJobEvents", { job_id: jobId });
    expect(events).toEqual(history.events);
    // And the last snapshot is the job as it stands.
    const { job } = await client.call("GetJob", { job_id: jobId });
    expect(events[3].job).toEqual(job);
  });

  test("resuming from a middle revision delivers exactly the rest", async () => {
    const jobId = await cancelledJob();
    const history = (await client.call("ListJobEvents", { job_id: jobId })).events;
    for (const after of [1, 2, 3]) {
      const end = await readToEnd(reader(watch(jobId, after)));
      expect(end.error).toBeNull();
      expect(eventsOf(end.messages)).toEqual(history.slice(after));
    }
  });

  test("ends OK right after replaying a FAILED event, even when later events exist", async () => {
    const job = await createJob();
    await run(job.id);
    await fail(job.id, "first try");
    await run(job.id, "ex-2");
    await complete(job.id);
    const end = await readToEnd(reader(watch(job.id, 0)));
    expect(end.error).toBeNull();
    expect(eventsOf(end.messages).map((e) => e.to_state)).toEqual(["JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_FAILED"]);
    // Resuming from the FAILED event's revision goes on with the retry.
    const rest = await readToEnd(reader(watch(job.id, 3)));
    expect(rest.error).toBeNull();
    expect(eventsOf(rest.messages).map((e) => [Number(e.revision), e.to_state])).toEqual([
      [4, "JOB_STATE_RUNNING"],
      [5, "JOB_STATE_COMPLETED"],
    ]);
  });
});

describe("live", () => {
  test("delivers each change as it commits and ends OK after the terminal event", async () => {
    const job = await createJob();
    const r = reader(watch(job.id, 0));
    expect((await r.next())?.event).toMatchObject({ revision: "1", type: "JOB_EVENT_TYPE_CREATED" });

    await run(job.id, "ex-live");
    const started = await readUntil(r, (m) => m.kind === "event");
    expect(started.at(-1)?.event).toMatchObject({ revision: "2", type: "JOB_EVENT_TYPE_STARTED", job: { executor_id: "ex-live" } });

    await complete(job.id);
    const completed = await readUntil(r, (m) => m.kind === "event");
    expect(completed.at(-1)?.event).toMatchObject({
      revision: "3",
      type: "JOB_EVENT_TYPE_COMPLETED",
      to_state: "JOB_STATE_COMPLETED",
      job: { result: { forecast: { cost: "5", rows: "6" } } },
    });
    // Nothing after the terminal event, and the end is OK.
    const end = await readToEnd(r);
    expect(end.error).toBeNull();
    expect(eventsOf(end.messages)).toEqual([]);
  });

  test("ends OK after a live FAILED event", async () => {
    const job = await createJob();
    const r = reader(watch(job.id, 0));
    expect((await r.next())?.event.revision).toBe("1"); // replay done: what follows is live
    await run(job.id);
    await fail(job.id);
    const end = await readToEnd(r);
    expect(end.error).toBeNull();
    expect(eventsOf(end.messages).map((e) => e.to_state)).toEqual(["JOB_STATE_RUNNING", "JOB_STATE_FAILED"]);
  });

  test("a watch opened while transitions race delivers every revision exactly once, in order, to the end", async () => {
    const job = await createJob();
    const jobId = job.id;
    // Followers reconnect after each FAILED end (the spec's rule) until COMPLETED.
    const followers: Array<{ from: number; done: Promise<{ events: Msg[]; streams: number }> }> = [];
    const follow = (from: number) => followers.push({ from, done: followJob(client, jobId, from) });
    follow(0);

    // Executors race: each keeps running and failing the job; most calls are no-ops, some change it.
    const executors = range(1, 6);
    const rounds = 12;
    let finishedRounds = 0;
    const racing = pool(executors, executors.length, async (n) => {
      for (let i = 0; i < rounds; i++) {
        await run(jobId, `ex-${n}`);
        await client.call("FailJob", { job_id: jobId, message: `ex-${n} round ${i}` });
        finishedRounds++;
      }
    });
    // Open more watches mid-way, from the start and from whatever revision the job is at.
    const midway = (async () => {
      while (finishedRounds < (executors.length * rounds) / 3) await new Promise((r) => setTimeout(r, 2));
      follow(0);
      const { job: now } = await client.call("GetJob", { job_id: jobId });
      follow(Number(now.revision));
      follow(Math.max(0, Number(now.revision) - 2));
      while (finishedRounds < (executors.length * rounds * 2) / 3) await new Promise((r) => setTimeout(r, 2));
      const { job: later } = await client.call("GetJob", { job_id: jobId });
      follow(Number(later.revision));
    })();
    await Promise.all([racing, midway]);
    await run(jobId, "ex-final");
    await complete(jobId);

    const history = (await client.call("ListJobEvents", { job_id: jobId, page_size: 1000 })).events as Msg[];
    const last = Number(history.at(-1)?.revision);
    expect(last).toBeGreaterThan(10);
    expect(history.at(-1)?.to_state).toBe("JOB_STATE_COMPLETED");
    expect(followers.length).toBe(5);
    for (const follower of followers) {
      const { events, streams } = await follower.done;
      // No gap, no duplicate, in order, and the very events of the log.
      expect(revisionsOf(events)).toEqual(range(follower.from + 1, last));
      expect(events).toEqual(history.slice(follower.from));
      // One stream per FAILED event on the way, plus the last one.
      const failedOnTheWay = events.filter((e) => e.to_state === "JOB_STATE_FAILED").length;
      expect(streams).toBe(failedOnTheWay + 1);
    }
  });
});

describe("after_revision at the current revision", () => {
  test("of a COMPLETED job: the stream ends OK at once with no message", async () => {
    const job = await createJob();
    await run(job.id);
    const done = await complete(job.id);
    const end = await readToEnd(reader(watch(job.id, done.job.revision)));
    expect(end).toEqual({ messages: [], error: null });
  });

  test("of a CANCELLED job: the stream ends OK at once with no message", async () => {
    const jobId = await cancelledJob();
    const end = await readToEnd(reader(watch(jobId, 4)));
    expect(end).toEqual({ messages: [], error: null });
  });

  test("of a FAILED job: the stream stays open and delivers the retry", async () => {
    const job = await createJob();
    await run(job.id);
    const failed = await fail(job.id);
    const revision = Number(failed.job.revision);
    const r = reader(watch(job.id, revision));
    // Open and idle: a heartbeat names the revision the stream is at.
    const idle = await r.next();
    expect(idle).toMatchObject({ kind: "heartbeat", heartbeat: { revision: String(revision) } });

    await run(job.id, "ex-retry");
    const retried = await readUntil(r, (m) => m.kind === "event");
    expect(retried.at(-1)?.event).toMatchObject({
      revision: String(revision + 1),
      type: "JOB_EVENT_TYPE_STARTED",
      from_state: "JOB_STATE_FAILED",
      to_state: "JOB_STATE_RUNNING",
      job: { attempt: "2", executor_id: "ex-retry" },
    });
    await complete(job.id);
    const end = await readToEnd(r);
    expect(end.error).toBeNull();
    expect(eventsOf(end.messages).map((e) => e.to_state)).toEqual(["JOB_STATE_COMPLETED"]);
  });

  test("of a PENDING job: nothing until the next change", async () => {
    const job = await createJob();
    const r = reader(watch(job.id, 1));
    const idle = await r.next();
    expect(idle?.kind).toBe("heartbeat");
    await run(job.id);
    const next = await readUntil(r, (m) => m.kind === "event");
    expect(next.at(-1)?.event.revision).toBe("2");
    await complete(job.id);
    expect((await readToEnd(r)).error).toBeNull();
  });
});

test("heartbeats on an idle stream carry the latest revision sent", async () => {
  const job = await createJob();
  const r = reader(watch(job.id, 0));
  expect((await r.next())?.event.revision).toBe("1");
  const first = await r.next();
  expect(first?.kind).toBe("heartbeat");
  expect(first?.heartbeat.revision).toBe("1");
  expect(Number(first?.heartbeat.sent_at.seconds)).toBeGreaterThan(0);

  await run(job.id);
  const upToEvent = await readUntil(r, (m) => m.kind === "event");
  expect(upToEvent.at(-1)?.event.revision).toBe("2");
  const second = await r.next();
  expect(second).toMatchObject({ kind: "heartbeat", heartbeat: { revision: "2" } });
  await complete(job.id);
  expect((await readToEnd(r)).error).toBeNull();
});

describe("errors", () => {
  test("after_revision beyond the current revision is OUT_OF_RANGE with ErrorInfo", async () => {
    const job = await createJob();
    const end = await readToEnd(reader(watch(job.id, 2)));
    expect(end.messages).toEqual([]);
    expect(end.error?.code).toBe(11); // OUT_OF_RANGE
    expect(end.error?.errorInfo).toMatchObject({ domain: "jobs.v1", metadata: { job_id: job.id } });
    expect(end.error?.errorInfo?.reason).toBe("REVISION_OUT_OF_RANGE");
    expect(end.error?.details).toMatch(/revision/);
  });

  test("an unknown job is NOT_FOUND", async () => {
    const missing = "00000000-0000-4000-8000-000000000000";
    const end = await readToEnd(reader(watch(missing, 0)));
    expect(end.error?.code).toBe(5); // NOT_FOUND
    expect(end.error?.errorInfo).toMatchObject({ domain: "jobs.v1", reason: "JOB_NOT_FOUND", metadata: { job_id: missing } });
  });

  test("another company's job is NOT_FOUND for an api_user", async () => {
    const job = await createJob("100");
    const other = await readToEnd(reader(watch(job.id, 1, server.tokens.companyB)));
    expect(other.error?.code).toBe(5);
    expect(other.error?.errorInfo?.reason).toBe("JOB_NOT_FOUND");
  });

  test("a malformed job id or a negative after_revision is INVALID_ARGUMENT", async () => {
    const bad = await readToEnd(reader(watch("not-a-uuid", 0)));
    expect(bad.error?.code).toBe(3);
    const job = await createJob();
    const negative = await readToEnd(reader(watch(job.id, -1)));
    expect(negative.error?.code).toBe(3);
  });
});

describe("who may watch", () => {
  test("a read-only token can watch", async () => {
    const job = await createJob();
    const r = reader(watch(job.id, 0, server.tokens.reader));
    expect((await r.next())?.event.type).toBe("JOB_EVENT_TYPE_CREATED");
    await run(job.id);
    await complete(job.id);
    const end = await readToEnd(r);
    expect(end.error).toBeNull();
    expect(eventsOf(end.messages).map((e) => Number(e.revision))).toEqual([2, 3]);
  });

  test("an api_user watches its own company's job", async () => {
    const job = await createJob("100");
    await run(job.id);
    await complete(job.id);
    const end = await readToEnd(reader(watch(job.id, 0, server.tokens.companyA)));
    expect(end.error).toBeNull();
    expect(eventsOf(end.messages).map((e) => Number(e.revision))).toEqual([1, 2, 3]);
  });

  test("a write-only token is PERMISSION_DENIED; no token is UNAUTHENTICATED", async () => {
    const job = await createJob();
    const denied = await readToEnd(reader(watch(job.id, 0, server.tokens.writer)));
    expect(denied.error?.code).toBe(7);
    const anonymous = await readToEnd(reader(watch(job.id, 0, null)));
    expect(anonymous.error?.code).toBe(16);
  });
});

test("a gRPC stream whose deadline passes ends DEADLINE_EXCEEDED, never OK (an OK end would say the job had finished)", async () => {
  const { job } = await client.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "7" });
  // A raw HTTP/2 gRPC call with a deadline and no timer of the client's own: what ends it is the server's answer.
  const message = toBinary(WatchJobRequestSchema, create(WatchJobRequestSchema, { jobId: job.id, afterRevision: 1n }));
  const status = await grpcStatusAtEnd(server.url, server.tokens.service, "WatchJob", "300m", (stream) => stream.end(envelope(message)));
  expect(status).toBe(String(4));
});
