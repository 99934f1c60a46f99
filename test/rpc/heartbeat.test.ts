// HeartbeatJob and RunJob's lease over the wire (docs/contract.md §9): a heartbeat from
// the current run extends the lease and changes nothing else; any other
// heartbeat is STALE_ATTEMPT and tells the executor the job's state (an older
// or newer attempt of the current executor: errors.test.ts, STALE_ATTEMPT).

import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { jobsClient, type JobsClient, type Msg } from "../support/grpc.js";
import { startServer, type TestServer } from "../support/harness.js";
import { allEvents, createJob, expectError, getJob, jobIn, Status } from "./jobs-fixture.js";

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

const micros = (ts: Msg): bigint => BigInt(ts.seconds) * 1_000_000n + BigInt(Math.floor(ts.nanos / 1000));
const SECOND = 1_000_000n;

/** The job without the two fields a heartbeat may move. */
const withoutLease = ({ lease_expires_at: _l, updated_at: _u, ...rest }: Msg) => rest;

async function running(leaseSeconds = 0): Promise<Msg> {
  const job = await createJob(client);
  return (await client.call("RunJob", { job_id: job.id, executor_id: "executor-1", lease_seconds: leaseSeconds })).job;
}

describe("RunJob's lease", () => {
  test("lease_seconds 0 means the default of 60 seconds from the start", async () => {
    const job = await running();
    expect(job.lease_seconds).toBe(60);
    expect(micros(job.lease_expires_at) - micros(job.started_at)).toBe(60n * SECOND);
  });

  test.each([1, 120, 86_400])("lease_seconds %d is accepted and sets the lease", async (seconds) => {
    const job = await running(seconds);
    expect(job.lease_seconds).toBe(seconds);
    expect(micros(job.lease_expires_at) - micros(job.started_at)).toBe(BigInt(seconds) * SECOND);
  });
});

describe("HeartbeatJob", () => {
  test("extends the lease by the run's span and changes nothing else: no revision, no event", async () => {
    const before = await running(120);
    const eventsBefore = await allEvents(client, before.id);
    await sleep(5); // let the clock move, so that the new lease is visibly later

    const { job } = await client.call("HeartbeatJob", { job_id: before.id, executor_id: "executor-1", attempt: "1" });
    expect(micros(job.lease_expires_at)).toBeGreaterThan(micros(before.lease_expires_at));
    expect(micros(job.lease_expires_at) - micros(job.updated_at)).toBe(120n * SECOND);
    expect(withoutLease(job)).toEqual(withoutLease(before));
    expect(job.revision).toBe(before.revision);

    expect(await getJob(client, before.id)).toEqual(job);
    expect(await allEvents(client, before.id)).toEqual(eventsBefore);
    // The row equals the last event's snapshot but for the lease and updated_at.
    expect(withoutLease(eventsBefore[eventsBefore.length - 1].job)).toEqual(withoutLease(job));
  });

  test("repeated heartbeats keep extending the lease", async () => {
    const job = await running(30);
    let last = job;
    for (let i = 0; i < 3; i++) {
      await sleep(3);
      const { job: next } = await client.call("HeartbeatJob", { job_id: job.id, executor_id: "executor-1", attempt: "1" });
      expect(micros(next.lease_expires_at)).toBeGreaterThan(micros(last.lease_expires_at));
      last = next;
    }
    expect(last.revision).toBe("2");
    expect(await allEvents(client, job.id)).toHaveLength(2);
  });

  test("on a PENDING_CANCELLATION job it succeeds and the reply tells the executor to stop", async () => {
    const before = await jobIn(client, "PENDING_CANCELLATION");
    await sleep(3);
    const { job } = await client.call("HeartbeatJob", { job_id: before.id, executor_id: "executor-1", attempt: "1" });
    expect(job.state).toBe("JOB_STATE_PENDING_CANCELLATION");
    expect(job.cancellation_reason).toBe("not needed any more");
    expect(micros(job.lease_expires_at)).toBeGreaterThan(micros(before.lease_expires_at));
    expect(job.revision).toBe(before.revision);
  });

  test("from another executor it is STALE_ATTEMPT, and the lease does not move", async () => {
    const before = await running();
    const error = await client.fail("HeartbeatJob", { job_id: before.id, executor_id: "executor-2", attempt: "1" });
    expectError(error, {
      code: Status.FAILED_PRECONDITION,
      reason: "STALE_ATTEMPT",
      metadata: { job_id: before.id, state: "JOB_STATE_RUNNING", call: "HeartbeatJob" },
    });
    expect(await getJob(client, before.id)).toEqual(before);
  });

  test.each(["PENDING", "COMPLETED", "FAILED", "CANCELLED"] as const)(
    "on a %s job it is STALE_ATTEMPT naming the state",
    async (state) => {
      const before = await jobIn(client, state);
      const attempt = before.attempt;
      const error = await client.fail("HeartbeatJob", { job_id: before.id, executor_id: "executor-1", attempt });
      expectError(error, {
        code: Status.FAILED_PRECONDITION,
        reason: "STALE_ATTEMPT",
        metadata: { job_id: before.id, state: `JOB_STATE_${state}`, call: "HeartbeatJob" },
      });
      expect(await getJob(client, before.id)).toEqual(before);
    },
  );

  test.each([
    ["attempt 0", { executor_id: "executor-1", attempt: "0" }],
    ["an empty executor_id", { executor_id: "", attempt: "1" }],
  ])("%s is not the current run: STALE_ATTEMPT, and the lease stays as it was (docs/contract.md §9)", async (_, request) => {
    const job = await running();
    const error = await client.fail("HeartbeatJob", { job_id: job.id, ...request });
    expectError(error, { code: Status.FAILED_PRECONDITION, reason: "STALE_ATTEMPT", metadata: { job_id: job.id, state: "JOB_STATE_RUNNING", call: "HeartbeatJob" } });
    expect(await getJob(client, job.id)).toEqual(job);
  });

  test("an unknown job is NOT_FOUND", async () => {
    const id = randomUUID();
    const error = await client.fail("HeartbeatJob", { job_id: id, executor_id: "executor-1", attempt: "1" });
    expectError(error, { code: Status.NOT_FOUND, reason: "JOB_NOT_FOUND", metadata: { job_id: id } });
  });
});
