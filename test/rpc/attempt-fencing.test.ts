// Attempt fencing in both directions (docs/contract.md: CompleteJob, FailJob
// and HeartbeatJob name the attempt they report on), over the wire. An
// attempt that is not the job's current one is FAILED_PRECONDITION
// STALE_ATTEMPT, whichever side of the current one it lies: an older attempt
// is a superseded executor's late report, a newer one names a run that does
// not exist yet. Either way the reply says the job's state, and nothing
// moves: not the job (its lease and updated_at included), not its event log.
//
// Every job here is on its second attempt, run by executor-2, so the older
// attempt (1) exists and the newer one (3) does not. Each case ends with the
// same call naming the current attempt, which must go through: the stale
// calls were refused for their attempt, not for anything else in them.

import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { jobsClient, type JobsClient, type Msg } from "../support/grpc.js";
import { startServer, type TestServer } from "../support/harness.js";
import { allEvents, expectError, FORECAST_RESULT, getJob, jobIn, Status } from "./jobs-fixture.js";

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

const CURRENT_ATTEMPT = "2";
const CURRENT_EXECUTOR = "executor-2";

/** The request fields of each fenced call, for a given attempt (from the current executor). */
const FENCED: Record<string, (attempt: string) => Msg> = {
  CompleteJob: (attempt) => ({ result: FORECAST_RESULT, attempt }),
  FailJob: (attempt) => ({ message: "late report", attempt }),
  HeartbeatJob: (attempt) => ({ executor_id: CURRENT_EXECUTOR, attempt }),
};

/** A job on its second attempt, in `state` (RUNNING or PENDING_CANCELLATION: the states a report can still move). */
async function onSecondAttempt(state: "RUNNING" | "PENDING_CANCELLATION"): Promise<Msg> {
  const failed = await jobIn(client, "FAILED");
  let { job } = await client.call("RunJob", { job_id: failed.id, executor_id: CURRENT_EXECUTOR });
  if (state === "PENDING_CANCELLATION") ({ job } = await client.call("RequestJobCancellation", { job_id: job.id, reason: "not needed" }));
  expect([job.state, job.attempt, job.executor_id]).toEqual([`JOB_STATE_${state}`, CURRENT_ATTEMPT, CURRENT_EXECUTOR]);
  return job;
}

const CASES = Object.keys(FENCED).flatMap((method) =>
  (["RUNNING", "PENDING_CANCELLATION"] as const).flatMap((state) => [
    [method, "an older", "1", state] as const,
    [method, "a newer", "3", state] as const,
  ]),
);

test.each(CASES)("%s naming %s attempt (%s) on a %s job is STALE_ATTEMPT and changes nothing", async (method, _, attempt, state) => {
  const before = await onSecondAttempt(state);
  const eventsBefore = await allEvents(client, before.id);

  const error = await client.fail(method, { job_id: before.id, ...FENCED[method](attempt) });
  expectError(error, {
    code: Status.FAILED_PRECONDITION,
    reason: "STALE_ATTEMPT",
    metadata: { job_id: before.id, state: `JOB_STATE_${state}`, call: method },
  });
  expect(await getJob(client, before.id)).toEqual(before);
  expect(await allEvents(client, before.id)).toEqual(eventsBefore);

  // The control: the same call for the current attempt is accepted.
  const current = await client.call(method, { job_id: before.id, ...FENCED[method](CURRENT_ATTEMPT) });
  expect(current.job.attempt).toBe(CURRENT_ATTEMPT);
  if (method !== "HeartbeatJob") expect([current.changed, current.job.revision]).toEqual([true, String(Number(before.revision) + 1)]);
});
