// docs/contract.md §6's error codes that the unary RPCs produce, over the wire: each with
// a google.rpc.ErrorInfo (domain jobs.v1) and a message a person can act on,
// the check order of docs/contract.md §4 where a client can observe it, and a server
// that keeps serving after every malformed request. (Authentication and
// scope errors are tested in the auth tests.)

import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { jobsClient, type JobsClient, type Msg } from "../support/grpc.js";
import { startServer, type TestServer } from "../support/harness.js";
import {
  allEvents,
  createJob,
  expectError,
  FORECAST_RESULT,
  getJob,
  jobIn,
  STATES,
  Status,
} from "./jobs-fixture.js";

let server: TestServer;
let client: JobsClient;
/** A job every "the server keeps serving" check reads back. */
let known: Msg;

beforeAll(async () => {
  server = await startServer();
  client = jobsClient(server.address, server.tokens.service);
  known = await createJob(client, { data_plane_id: "errors-known" });
});
afterAll(async () => {
  client?.close();
  await server?.stop();
});

/** The server still answers a good call (after a malformed one). */
async function expectStillServing(): Promise<void> {
  expect((await getJob(client, known.id)).id).toBe(known.id);
}

const MALFORMED_IDS = ["not-a-uuid", "123", "123e4567-e89b-12d3-a456-42661417400", "'; drop table jobs; --"];

/** A well-formed request for each job-taking unary RPC, but for its job_id. */
const JOB_RPCS: Record<string, (jobId: string) => Msg> = {
  GetJob: (job_id) => ({ job_id }),
  ListJobEvents: (job_id) => ({ job_id }),
  RunJob: (job_id) => ({ job_id, executor_id: "executor-1" }),
  CompleteJob: (job_id) => ({ job_id, result: FORECAST_RESULT }),
  FailJob: (job_id) => ({ job_id, message: "boom" }),
  RequestJobCancellation: (job_id) => ({ job_id, reason: "why not" }),
  CancelJob: (job_id) => ({ job_id }),
  HeartbeatJob: (job_id) => ({ job_id, executor_id: "executor-1", attempt: "1" }),
};

describe("INVALID_ARGUMENT", () => {
  const malformedIdCases = Object.entries(JOB_RPCS).flatMap(([method, request]) => [
    ...MALFORMED_IDS.map((id) => ({ method, request: request(id), what: `job_id "${id}"` })),
    { method, request: request(""), what: "missing job_id" },
  ]);

  test.each(malformedIdCases)("$method with $what", async ({ method, request }) => {
    const error = await client.fail(method, request);
    expectError(error, { code: Status.INVALID_ARGUMENT, metadata: { call: method } });
    expect(error.details).toContain("job_id");
    await expectStillServing();
  });

  // [name, method, request (job_id filled in where needed), a word the message must contain]
  const cases: Array<[string, string, Msg, string]> = [
    ["RunJob without executor_id", "RunJob", { executor_id: "" }, "executor_id"],
    ["RunJob with a blank executor_id", "RunJob", { executor_id: "   " }, "executor_id"],
    ["RunJob with lease_seconds −1", "RunJob", { executor_id: "e", lease_seconds: -1 }, "lease_seconds"],
    ["RunJob with lease_seconds 86401", "RunJob", { executor_id: "e", lease_seconds: 86_401 }, "lease_seconds"],
    ["FailJob with an empty message", "FailJob", { message: "" }, "message"],
    ["FailJob with a blank message", "FailJob", { message: " \t\n " }, "message"],
    ["FailJob with a negative attempt", "FailJob", { message: "boom", attempt: "-1" }, "attempt"],
    ["CompleteJob without a result", "CompleteJob", {}, "result"],
    ["CompleteJob with an empty result", "CompleteJob", { result: {} }, "result"],
    ["CompleteJob with a negative attempt", "CompleteJob", { result: FORECAST_RESULT, attempt: "-3" }, "attempt"],
    ["HeartbeatJob with a negative attempt", "HeartbeatJob", { executor_id: "e", attempt: "-1" }, "attempt"],
    ["CreateJob with type 0 (UNSPECIFIED)", "CreateJob", { type: "JOB_TYPE_UNSPECIFIED", company_id: "7" }, "type"],
    ["CreateJob with an unknown type number", "CreateJob", { type: 99, company_id: "7" }, "type"],
    ["CreateJob with an unknown execution_cluster", "CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "7", execution_cluster: 42 }, "execution_cluster"],
    ["CreateJob with a non-UUID request_id", "CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "7", request_id: "req-1" }, "request_id"],
    ["a service's CreateJob without company_id", "CreateJob", { type: "JOB_TYPE_FORECAST" }, "company_id"],
    [
      "CreateJob FORECAST with a refresh_materialized_view input",
      "CreateJob",
      { type: "JOB_TYPE_FORECAST", company_id: "7", input: { refresh_materialized_view: { nql: "x", dataset_id: "1" } } },
      "input",
    ],
    [
      "CreateJob REFRESH_MATERIALIZED_VIEW with a forecast input",
      "CreateJob",
      { type: "JOB_TYPE_REFRESH_MATERIALIZED_VIEW", company_id: "7", input: { forecast: { nql: "x" } } },
      "input",
    ],
    [
      "CreateJob FORECAST with an `other` input",
      "CreateJob",
      { type: "JOB_TYPE_FORECAST", company_id: "7", input: { other: { fields: { a: { numberValue: 1 } } } } },
      "input",
    ],
    [
      "CreateJob DATASETS_EXECUTE_DML with a forecast input",
      "CreateJob",
      { type: "JOB_TYPE_DATASETS_EXECUTE_DML", company_id: "7", input: { forecast: { nql: "x" } } },
      "input",
    ],
    ["ListJobs with an unknown state number", "ListJobs", { states: [77] }, "states"],
    ["ListJobs with state UNSPECIFIED", "ListJobs", { states: ["JOB_STATE_RUNNING", "JOB_STATE_UNSPECIFIED"] }, "states"],
    ["ListJobs with an unknown type number", "ListJobs", { types: [1234] }, "types"],
    ["ListJobs with page_size −1", "ListJobs", { page_size: -1 }, "page_size"],
    ["ListJobs with page_size 1001", "ListJobs", { page_size: 1001 }, "page_size"],
    ["ListJobs with a garbage page_token", "ListJobs", { page_token: "garbage!!" }, "page_token"],
    ["ListJobs with a base64 page_token not issued by the server", "ListJobs", { page_token: Buffer.from('{"v":1}').toString("base64url") }, "page_token"],
    ["ListJobEvents with page_size −1", "ListJobEvents", { page_size: -1 }, "page_size"],
    ["ListJobEvents with page_size 1001", "ListJobEvents", { page_size: 1001 }, "page_size"],
    ["ListJobEvents with a garbage page_token", "ListJobEvents", { page_token: "%%%" }, "page_token"],
  ];

  test.each(cases)("%s", async (_name, method, fields, word) => {
    const jobTaking = method !== "CreateJob" && method !== "ListJobs";
    const before = await jobIn(client, "RUNNING");
    const eventsBefore = await allEvents(client, before.id);
    const error = await client.fail(method, jobTaking ? { job_id: before.id, ...fields } : fields);
    expectError(error, { code: Status.INVALID_ARGUMENT, metadata: { call: method } });
    expect(error.details).toContain(word);
    // Nothing changed, and the server goes on serving.
    expect(await getJob(client, before.id)).toEqual(before);
    expect(await allEvents(client, before.id)).toEqual(eventsBefore);
    await expectStillServing();
  });

  test("a malformed CreateJob creates no job", async () => {
    const marker = `no-job-${randomUUID()}`;
    const bad: Msg[] = [
      { type: "JOB_TYPE_UNSPECIFIED", company_id: "7", data_plane_id: marker },
      { type: "JOB_TYPE_FORECAST", data_plane_id: marker },
      { type: "JOB_TYPE_FORECAST", company_id: "7", data_plane_id: marker, request_id: "nope" },
      { type: "JOB_TYPE_FORECAST", company_id: "7", data_plane_id: marker, input: { other: { fields: {} } } },
    ];
    for (const request of bad) expect((await client.fail("CreateJob", request)).code).toBe(Status.INVALID_ARGUMENT);
    expect((await client.call("ListJobs", { data_plane_id: marker })).jobs).toEqual([]);
  });

  test("a ListJobs page_token replayed with other filters is refused", async () => {
    const marker = `token-replay-${randomUUID()}`;
    for (let i = 0; i < 3; i++) await createJob(client, { data_plane_id: marker });
    const first = await client.call("ListJobs", { data_plane_id: marker, page_size: 1 });
    expect(first.next_page_token).not.toBe("");
    // The same filters with another page size are fine (docs/contract.md §2).
    const second = await client.call("ListJobs", { data_plane_id: marker, page_size: 2, page_token: first.next_page_token });
    expect(second.jobs).toHaveLength(2);

    for (const other of [
      { data_plane_id: `${marker}-x` },
      { data_plane_id: marker, states: ["JOB_STATE_PENDING"] },
      { data_plane_id: marker, types: ["JOB_TYPE_FORECAST"] },
      { data_plane_id: marker, company_id: "7" },
      { data_plane_id: marker, executor_id: "executor-1" },
      {},
    ]) {
      const error = await client.fail("ListJobs", { ...other, page_size: 1, page_token: first.next_page_token });
      expectError(error, { code: Status.INVALID_ARGUMENT, metadata: { call: "ListJobs" } });
      expect(error.details).toContain("page_token");
    }
    await expectStillServing();
  });

  test("a ListJobEvents page_token of one job is refused for another job", async () => {
    const a = await jobIn(client, "COMPLETED");
    const b = await jobIn(client, "COMPLETED");
    const page = await client.call("ListJobEvents", { job_id: a.id, page_size: 1 });
    expect(page.next_page_token).not.toBe("");
    const error = await client.fail("ListJobEvents", { job_id: b.id, page_size: 1, page_token: page.next_page_token });
    expectError(error, { code: Status.INVALID_ARGUMENT, metadata: { call: "ListJobEvents" } });
    expect(error.details).toContain("page_token");
  });

  test("a page_token issued to one caller is refused for another", async () => {
    const marker = `token-caller-${randomUUID()}`;
    for (let i = 0; i < 2; i++) await createJob(client, { data_plane_id: marker });
    const page = await client.call("ListJobs", { data_plane_id: marker, page_size: 1 });
    const reader = jobsClient(server.address, server.tokens.reader);
    try {
      const error = await reader.fail("ListJobs", { data_plane_id: marker, page_size: 1, page_token: page.next_page_token });
      expectError(error, { code: Status.INVALID_ARGUMENT, metadata: { call: "ListJobs" } });
    } finally {
      reader.close();
    }
  });
});

describe("RESULT_TYPE_MISMATCH", () => {
  test.each(STATES)("CompleteJob with another type's result on a %s job", async (state) => {
    const before = await jobIn(client, state);
    const eventsBefore = await allEvents(client, before.id);
    const error = await client.fail("CompleteJob", {
      job_id: before.id,
      result: { refresh_materialized_view: { snapshot_id: "1", dataset_id: "2" } },
    });
    expectError(error, {
      code: Status.INVALID_ARGUMENT,
      reason: "RESULT_TYPE_MISMATCH",
      metadata: { job_id: before.id, call: "CompleteJob", state: `JOB_STATE_${state}` },
    });
    expect(error.details).toContain("forecast");
    expect(await getJob(client, before.id)).toEqual(before);
    expect(await allEvents(client, before.id)).toEqual(eventsBefore);
  });

  test("each job type completes only with its own variant", async () => {
    const job = await createJob(client, { type: "JOB_TYPE_HEALTH_CHECK" });
    const wrong = await client.fail("CompleteJob", { job_id: job.id, result: { datasets_execute_dml: { affected_rows: "1" } } });
    expectError(wrong, { code: Status.INVALID_ARGUMENT, reason: "RESULT_TYPE_MISMATCH", metadata: { job_id: job.id } });
    const right = await client.call("CompleteJob", {
      job_id: job.id,
      result: { health_check: { healthy: true, checks: { disk: "ok" } } },
    });
    expect(right.changed).toBe(true);
    expect(right.job.result).toMatchObject({ kind: "health_check", health_check: { healthy: true, checks: { disk: "ok" } } });
  });
});

describe("NOT_FOUND", () => {
  test.each(Object.keys(JOB_RPCS))("%s on an unknown job is JOB_NOT_FOUND", async (method) => {
    const id = randomUUID();
    const error = await client.fail(method, JOB_RPCS[method](id));
    expectError(error, { code: Status.NOT_FOUND, reason: "JOB_NOT_FOUND", metadata: { job_id: id, call: method } });
    expect(error.details).toContain(id);
    await expectStillServing();
  });

  test("an upper-case UUID names the same job", async () => {
    const job = await getJob(client, known.id);
    expect((await client.call("GetJob", { job_id: known.id.toUpperCase() })).job).toEqual(job);
  });
});

// STALE_ATTEMPT: attempt fencing in both directions. An attempt that is not
// the job's current one is refused on either side of it: an older attempt is
// a superseded executor's late report, a newer one names a run that does not
// exist yet. Either way the reply says the job's state, and
// nothing moves: not the job (its lease and updated_at included), not its
// event log. Every job here is on its second attempt, run by executor-2, so
// the older attempt (1) exists and the newer one (3) does not. Each case ends
// with the same call naming the current attempt, which must go through: the
// stale calls were refused for their attempt, not for anything else in them.
describe("STALE_ATTEMPT", () => {
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
});

describe("check order (docs/contract.md §4)", () => {
  test("request validation comes before visibility: a bad request on an unknown job is INVALID_ARGUMENT", async () => {
    const unknown = randomUUID();
    const cases: Array<[string, Msg]> = [
      ["RunJob", { job_id: unknown, executor_id: "" }],
      ["RunJob", { job_id: unknown, executor_id: "e", lease_seconds: 86_401 }],
      ["CompleteJob", { job_id: unknown }],
      ["FailJob", { job_id: unknown, message: "" }],
      ["HeartbeatJob", { job_id: unknown, executor_id: "e", attempt: "-1" }],
      ["ListJobEvents", { job_id: unknown, page_size: 5000 }],
    ];
    for (const [method, request] of cases) {
      expectError(await client.fail(method, request), { code: Status.INVALID_ARGUMENT, metadata: { call: method } });
    }
  });

  test("visibility comes before the result type: a mismatched result on an unknown job is NOT_FOUND", async () => {
    const unknown = randomUUID();
    const error = await client.fail("CompleteJob", { job_id: unknown, result: { health_check: { healthy: true } } });
    expectError(error, { code: Status.NOT_FOUND, reason: "JOB_NOT_FOUND", metadata: { job_id: unknown } });
  });

  test("the result type comes before attempt fencing", async () => {
    const running = await jobIn(client, "RUNNING");
    const error = await client.fail("CompleteJob", { job_id: running.id, result: { health_check: {} }, attempt: "5" });
    expectError(error, { code: Status.INVALID_ARGUMENT, reason: "RESULT_TYPE_MISMATCH" });
  });

  test.each(["COMPLETED", "FAILED", "CANCELLED"] as const)(
    "attempt fencing comes before the table: a stale attempt on a %s job is STALE_ATTEMPT, not a no-op",
    async (state) => {
      const before = await jobIn(client, state);
      for (const [method, fields] of [
        ["CompleteJob", { result: FORECAST_RESULT, attempt: "2" }],
        ["FailJob", { message: "late", attempt: "2" }],
      ] as const) {
        const error = await client.fail(method, { job_id: before.id, ...fields });
        expectError(error, {
          code: Status.FAILED_PRECONDITION,
          reason: "STALE_ATTEMPT",
          metadata: { job_id: before.id, state: `JOB_STATE_${state}`, call: method },
        });
      }
      expect(await getJob(client, before.id)).toEqual(before);
    },
  );

  test("attempt fencing comes before the table: a stale attempt on a PENDING job is STALE_ATTEMPT, not a move", async () => {
    const pending = await jobIn(client, "PENDING");
    const error = await client.fail("FailJob", { job_id: pending.id, message: "never ran", attempt: "1" });
    expectError(error, { code: Status.FAILED_PRECONDITION, reason: "STALE_ATTEMPT", metadata: { state: "JOB_STATE_PENDING" } });
    expect((await getJob(client, pending.id)).state).toBe("JOB_STATE_PENDING");
  });
});

describe("RESOURCE_EXHAUSTED", () => {
  let small: TestServer;
  let smallClient: JobsClient;

  beforeAll(async () => {
    small = await startServer({ env: { MAX_MESSAGE_BYTES: "2048" } });
    smallClient = jobsClient(small.address, small.tokens.service);
  });
  afterAll(async () => {
    smallClient?.close();
    await small?.stop();
  });

  test("a request over MAX_MESSAGE_BYTES is refused, changes nothing, and the server keeps serving", async () => {
    const before = await jobIn(smallClient, "RUNNING");
    const error = await smallClient.fail("FailJob", { job_id: before.id, message: "x".repeat(4096) });
    expect(error.code).toBe(Status.RESOURCE_EXHAUSTED);
    // The message names the limit. (Its ErrorInfo and the check order are
    // message-size.test.ts's subject.)
    expect(error.details).toContain("2048");
    expect(error.details).not.toMatch(/\n\s*at\s/);

    // The same call under the limit goes through on the same connection.
    expect((await smallClient.call("GetJob", { job_id: before.id })).job).toEqual(before);
    const fits = await smallClient.call("FailJob", { job_id: before.id, message: "y".repeat(1000) });
    expect(fits.changed).toBe(true);
    expect(fits.job.failures.map((f: Msg) => f.message)).toEqual(["y".repeat(1000)]);
  });

  test("an oversized CreateJob creates nothing", async () => {
    const marker = `big-${randomUUID()}`;
    const big = { fields: { blob: { stringValue: "z".repeat(5000) } } };
    const error = await smallClient.fail("CreateJob", {
      type: "JOB_TYPE_HEALTH_CHECK",
      company_id: "7",
      data_plane_id: marker,
      input: { other: big },
    });
    expect(error.code).toBe(Status.RESOURCE_EXHAUSTED);
    expect((await smallClient.call("ListJobs", { data_plane_id: marker })).jobs).toEqual([]);
  });
});
