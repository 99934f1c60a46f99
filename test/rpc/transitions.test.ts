// docs/contract.md §4's transition table, cell by cell, over the wire: every transition
// call against a job in every state, each job brought to its state by RPCs.

import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { jobsClient, type JobsClient, type Msg } from "../support/grpc.js";
import { startServer, type TestServer } from "../support/harness.js";
import {
  allEvents,
  expectError,
  FORECAST_RESULT,
  getJob,
  jobIn,
  STATES,
  type StateName,
  Status,
} from "./jobs-fixture.js";

let server: TestServer;
let client: JobsClient;

beforeAll(async () => {
  server = await startServer();
  client = jobsClient(server.address, server.tokens.service);
});
afterAll(async () => {
  client?.close();
  await server?.stop();
});

type Call = "RunJob" | "CompleteJob" | "FailJob" | "RequestJobCancellation" | "CancelJob";
type Cell = StateName | "no-op" | "REJECT";

// Transcribed from docs/contract.md §4 (rows: the call; columns: the job's state).
// A state name means "→ that state".
// prettier-ignore
const SPEC_TABLE: Record<Call, Record<StateName, Cell>> = {
  //                      PENDING                          RUNNING                          PENDING_CANCELLATION           COMPLETED           FAILED               CANCELLED
  RunJob:                 { PENDING: "RUNNING",              RUNNING: "no-op",                PENDING_CANCELLATION: "REJECT",    COMPLETED: "no-op", FAILED: "RUNNING",   CANCELLED: "no-op" },
  CompleteJob:            { PENDING: "COMPLETED",            RUNNING: "COMPLETED",            PENDING_CANCELLATION: "COMPLETED", COMPLETED: "no-op", FAILED: "no-op",     CANCELLED: "no-op" },
  FailJob:                { PENDING: "FAILED",               RUNNING: "FAILED",               PENDING_CANCELLATION: "FAILED",    COMPLETED: "no-op", FAILED: "no-op",     CANCELLED: "no-op" },
  RequestJobCancellation: { PENDING: "PENDING_CANCELLATION", RUNNING: "PENDING_CANCELLATION", PENDING_CANCELLATION: "no-op",     COMPLETED: "no-op", FAILED: "no-op",     CANCELLED: "no-op" },
  CancelJob:              { PENDING: "REJECT",               RUNNING: "REJECT",               PENDING_CANCELLATION: "CANCELLED", COMPLETED: "no-op", FAILED: "no-op",     CANCELLED: "no-op" },
};

/** The event type each call appends when it moves a job (docs/contract.md §5). */
const EVENT_OF: Record<Call, string> = {
  RunJob: "JOB_EVENT_TYPE_STARTED",
  CompleteJob: "JOB_EVENT_TYPE_COMPLETED",
  FailJob: "JOB_EVENT_TYPE_FAILED",
  RequestJobCancellation: "JOB_EVENT_TYPE_CANCELLATION_REQUESTED",
  CancelJob: "JOB_EVENT_TYPE_CANCELLED",
};

/** A well-formed request for each call; the executor differs from the one that ran the job. */
function requestFor(call: Call, jobId: string): Msg {
  switch (call) {
    case "RunJob":
      return { job_id: jobId, executor_id: "executor-2" };
    case "CompleteJob":
      return { job_id: jobId, result: FORECAST_RESULT };
    case "FailJob":
      return { job_id: jobId, message: "out of memory", diagnostic: { stringValue: "oom-killed" } };
    case "RequestJobCancellation":
      return { job_id: jobId, reason: "user asked" };
    case "CancelJob":
      return { job_id: jobId };
  }
}

const CELLS = (Object.keys(SPEC_TABLE) as Call[]).flatMap((call) =>
  STATES.map((state) => ({ call, state, outcome: SPEC_TABLE[call][state] })),
);

describe("docs/contract.md §4 transition table", () => {
  test("the transcribed table has 5 calls × 6 states", () => {
    expect(CELLS).toHaveLength(30);
  });

  test.each(CELLS)("$call on a $state job: $outcome", async ({ call, state, outcome }) => {
    const before = await jobIn(client, state);
    const eventsBefore = await allEvents(client, before.id);
    expect(eventsBefore[eventsBefore.length - 1].revision).toBe(before.revision);

    if (outcome === "REJECT") {
      const error = await client.fail(call, requestFor(call, before.id));
      expectError(error, {
        code: Status.FAILED_PRECONDITION,
        reason: "INVALID_TRANSITION",
        metadata: { job_id: before.id, state: `JOB_STATE_${state}`, call },
      });
      expect(await getJob(client, before.id)).toEqual(before);
      expect(await allEvents(client, before.id)).toEqual(eventsBefore);
      return;
    }

    const reply = await client.call(call, requestFor(call, before.id));
    const after = await getJob(client, before.id);
    const events = await allEvents(client, before.id);

    if (outcome === "no-op") {
      expect(reply.changed).toBe(false);
      // Nothing moves: not the revision, not updated_at, not any other field.
      expect(reply.job).toEqual(before);
      expect(after).toEqual(before);
      expect(events).toEqual(eventsBefore);
      return;
    }

    expect(reply.changed).toBe(true);
    expect(reply.job.state).toBe(`JOB_STATE_${outcome}`);
    expect(reply.job.revision).toBe(String(Number(before.revision) + 1));
    expect(after).toEqual(reply.job);
    expect(events).toHaveLength(eventsBefore.length + 1);
    expect(events.slice(0, -1)).toEqual(eventsBefore);
    const event = events[events.length - 1];
    expect(event).toMatchObject({
      job_id: before.id,
      revision: reply.job.revision,
      type: EVENT_OF[call],
      from_state: `JOB_STATE_${state}`,
      to_state: `JOB_STATE_${outcome}`,
      actor: { type: "PRINCIPAL_TYPE_SERVICE", name: "test-service" },
    });
    expect(event.job).toEqual(reply.job);
  });
});

describe("what each move records", () => {
  test("RunJob on a RUNNING job by another executor keeps the first executor", async () => {
    const running = await jobIn(client, "RUNNING");
    expect(running.executor_id).toBe("executor-1");
    const reply = await client.call("RunJob", { job_id: running.id, executor_id: "executor-2" });
    expect(reply.changed).toBe(false);
    expect(reply.job.executor_id).toBe("executor-1");
    expect(reply.job.attempt).toBe("1");
    expect((await getJob(client, running.id)).executor_id).toBe("executor-1");
  });

  test("RunJob on a FAILED job starts attempt + 1 for the new executor and clears finished_at", async () => {
    const failed = await jobIn(client, "FAILED");
    expect(failed.attempt).toBe("1");
    expect(failed.finished_at).not.toBeNull();

    const { job, changed } = await client.call("RunJob", { job_id: failed.id, executor_id: "executor-2" });
    expect(changed).toBe(true);
    expect(job).toMatchObject({ state: "JOB_STATE_RUNNING", attempt: "2", executor_id: "executor-2", finished_at: null });
    expect(job.started_at).not.toEqual(failed.started_at);
    expect(job.lease_expires_at).not.toBeNull();
    // The earlier failure stays in the record.
    expect(job.failures).toEqual(failed.failures);
  });

  test("RunJob from PENDING sets executor, attempt 1, started_at and a lease", async () => {
    const pending = await jobIn(client, "PENDING");
    expect(pending).toMatchObject({ attempt: "0", executor_id: "", started_at: null, lease_expires_at: null });
    const { job } = await client.call("RunJob", { job_id: pending.id, executor_id: "executor-9" });
    expect(job).toMatchObject({ attempt: "1", executor_id: "executor-9", lease_seconds: 60 });
    expect(job.started_at).not.toBeNull();
    expect(job.lease_expires_at).not.toBeNull();
  });

  test("CompleteJob stores the result, sets finished_at and ends the lease", async () => {
    const running = await jobIn(client, "RUNNING");
    const result = { forecast: { cost: "9007199254740993", rows: "5" } };
    const { job } = await client.call("CompleteJob", { job_id: running.id, result });
    expect(job.result).toEqual({ ...result, kind: "forecast" });
    expect(job.finished_at).not.toBeNull();
    expect(job.lease_expires_at).toBeNull();
  });

  test("FailJob appends a failure with the attempt, executor, message and diagnostic", async () => {
    const running = await jobIn(client, "RUNNING");
    const diagnostic = { structValue: { fields: { exit_code: { numberValue: 137 }, signal: { stringValue: "KILL" } } } };
    const { job } = await client.call("FailJob", { job_id: running.id, message: "killed by the OOM killer", diagnostic });
    expect(job.failures).toHaveLength(1);
    expect(job.failures[0]).toMatchObject({
      attempt: "1",
      executor_id: "executor-1",
      message: "killed by the OOM killer",
      diagnostic: { structValue: { fields: { exit_code: { numberValue: 137 }, signal: { stringValue: "KILL" } } } },
    });
    expect(job.failures[0].failed_at).toEqual(job.finished_at);
    expect(job.lease_expires_at).toBeNull();

    // A second run that fails again appends, oldest first.
    await client.call("RunJob", { job_id: running.id, executor_id: "executor-2" });
    const again = (await client.call("FailJob", { job_id: running.id, message: "still broken" })).job;
    expect(again.failures.map((f: Msg) => [f.attempt, f.executor_id, f.message])).toEqual([
      ["1", "executor-1", "killed by the OOM killer"],
      ["2", "executor-2", "still broken"],
    ]);
  });

  test("RequestJobCancellation records the reason and keeps the executor's lease", async () => {
    const running = await jobIn(client, "RUNNING");
    const { job } = await client.call("RequestJobCancellation", { job_id: running.id, reason: "superseded by a newer job" });
    expect(job).toMatchObject({ cancellation_reason: "superseded by a newer job", executor_id: "executor-1", finished_at: null });
    expect(job.lease_expires_at).toEqual(running.lease_expires_at);
  });

  test("CancelJob sets finished_at and ends the lease", async () => {
    const cancelling = await jobIn(client, "PENDING_CANCELLATION");
    const { job } = await client.call("CancelJob", { job_id: cancelling.id });
    expect(job.state).toBe("JOB_STATE_CANCELLED");
    expect(job.finished_at).not.toBeNull();
    expect(job.lease_expires_at).toBeNull();
    expect(job.cancellation_reason).toBe("not needed any more");
  });

  test("a repeated transition is idempotent: the second call is a no-op showing the target state", async () => {
    const running = await jobIn(client, "RUNNING");
    const first = await client.call("CompleteJob", { job_id: running.id, result: FORECAST_RESULT });
    const second = await client.call("CompleteJob", { job_id: running.id, result: { forecast: { cost: "1", rows: "1" } } });
    expect(first.changed).toBe(true);
    expect(second.changed).toBe(false);
    // The first result stands.
    expect(second.job).toEqual(first.job);
  });

  test("CompleteJob and FailJob with the current attempt are accepted", async () => {
    const running = await jobIn(client, "RUNNING");
    const failed = await client.call("FailJob", { job_id: running.id, message: "flaky", attempt: "1" });
    expect(failed.changed).toBe(true);
    await client.call("RunJob", { job_id: running.id, executor_id: "executor-2" });
    const done = await client.call("CompleteJob", { job_id: running.id, result: FORECAST_RESULT, attempt: "2" });
    expect(done.changed).toBe(true);
    expect(done.job.state).toBe("JOB_STATE_COMPLETED");
  });
});
