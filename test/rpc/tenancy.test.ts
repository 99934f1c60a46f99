// Tenants (docs/contract.md §2, §6): an api_user sees only its own company's jobs, and
// another company's job looks exactly like no job at all (NOT_FOUND, never
// PERMISSION_DENIED); services see every company. Jobs and events record who
// acted; idempotency keys belong to the principal, not the token.

import { randomUUID } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { status } from "@grpc/grpc-js";
import { bearer, failure } from "../support/auth-calls.js";
import { reportFigures } from "../support/figures.js";
import { jobsClient, type JobsClient, type Msg, reader, type RpcError } from "../support/grpc.js";
import { startServer, type TestServer } from "../support/harness.js";
import { FORECAST_RESULT, jobIn, STATES } from "./jobs-fixture.js";

const COMPANY_A = "100"; // server.tokens.companyA: api_user 1
const COMPANY_B = "200"; // server.tokens.companyB: api_user 2

let server: TestServer;
/** Service principal "test-service", both scopes. */
let service: JobsClient;
/** api_user 1 of company 100. */
let userA: JobsClient;
/** api_user 2 of company 200. */
let userB: JobsClient;

beforeAll(async () => {
  server = await startServer();
  service = jobsClient(server.address, server.tokens.service);
  userA = jobsClient(server.address, server.tokens.companyA);
  userB = jobsClient(server.address, server.tokens.companyB);
});

afterAll(async () => {
  for (const c of [service, userA, userB]) c?.close();
  await server?.stop();
});

async function jobOfB(): Promise<Msg> {
  return (await userB.call("CreateJob", { type: "JOB_TYPE_FORECAST", input: { forecast: { nql: "select 1" } } })).job;
}

describe("another company's job is NOT_FOUND", () => {
  const calls: ReadonlyArray<[string, (jobId: string) => Msg]> = [
    ["GetJob", (job_id) => ({ job_id })],
    ["ListJobEvents", (job_id) => ({ job_id })],
    ["RunJob", (job_id) => ({ job_id, executor_id: "executor-a" })],
    ["CompleteJob", (job_id) => ({ job_id, result: { forecast: { cost: "1", rows: "1" } } })],
    ["FailJob", (job_id) => ({ job_id, message: "failed" })],
    ["RequestJobCancellation", (job_id) => ({ job_id, reason: "mine now" })],
    ["CancelJob", (job_id) => ({ job_id })],
    ["HeartbeatJob", (job_id) => ({ job_id, executor_id: "executor-b", attempt: "1" })],
    ["WatchJob", (job_id) => ({ job_id, after_revision: "0" })],
  ];

  test.each(calls)("%s", async (method, request) => {
    const job = await jobOfB();
    // A running job, so that every transition and the heartbeat would have something to act on.
    await userB.call("RunJob", { job_id: job.id, executor_id: "executor-b" });

    const error = await failure(userA, method, request(job.id), bearer(server.tokens.companyA));
    expect(status[error.code]).toBe("NOT_FOUND");
    expect(error.errorInfo).toMatchObject({ domain: "jobs.v1", reason: "JOB_NOT_FOUND", metadata: { job_id: job.id, call: method } });
    // Nothing about the job leaks: not its state, type or company.
    expect(error.errorInfo?.metadata.state).toBeUndefined();
    expect(error.details.replaceAll(job.id, "<id>")).not.toMatch(/RUNNING|FORECAST|200/);

    // The same request by the owner is not NOT_FOUND: the job exists, A just cannot see it.
    const seen = await userB.call("GetJob", { job_id: job.id });
    expect([seen.job.state, seen.job.revision]).toEqual(["JOB_STATE_RUNNING", "2"]);
  });

  test("a mismatched CompleteJob result on a foreign job is NOT_FOUND: visibility comes before the type check", async () => {
    const job = await jobOfB();
    const mismatched = { job_id: job.id, result: { refresh_materialized_view: { snapshot_id: "1" } } };
    const foreign = await userA.fail("CompleteJob", mismatched);
    expect(status[foreign.code]).toBe("NOT_FOUND");
    expect(foreign.errorInfo?.reason).toBe("JOB_NOT_FOUND");
    // The owner sending the same result learns the type mismatch.
    const own = await userB.fail("CompleteJob", mismatched);
    expect(status[own.code]).toBe("INVALID_ARGUMENT");
    expect(own.errorInfo?.reason).toBe("RESULT_TYPE_MISMATCH");
  });

  test("ListJobs never returns another company's jobs", async () => {
    const ofB = new Set<string>();
    for (let i = 0; i < 3; i++) ofB.add((await jobOfB()).id);
    const ofA = new Set<string>();
    for (let i = 0; i < 3; i++) ofA.add((await userA.call("CreateJob", { type: "JOB_TYPE_HEALTH_CHECK" })).job.id);
    const forecastOfA = (await userA.call("CreateJob", { type: "JOB_TYPE_FORECAST" })).job;

    // Every page, small pages so the walk crosses page boundaries.
    const listed: Msg[] = [];
    let page_token = "";
    do {
      const page = await userA.call("ListJobs", { page_size: 2, page_token });
      listed.push(...page.jobs);
      page_token = page.next_page_token;
    } while (page_token !== "");
    expect(listed.filter((job) => job.company_id !== COMPANY_A)).toEqual([]);
    expect(listed.filter((job) => ofB.has(job.id))).toEqual([]);
    for (const id of ofA) expect(listed.map((job) => job.id)).toContain(id);

    // Filters that B's jobs match do not let them in either (A's own job of that type is there).
    const forecasts = (await userA.call("ListJobs", { types: ["JOB_TYPE_FORECAST"], page_size: 1000 })).jobs as Msg[];
    expect(forecasts.map((job) => job.id)).toContain(forecastOfA.id);
    expect(forecasts.filter((job) => ofB.has(job.id))).toEqual([]);
  });

  test("WatchJobs shows an api_user neither another company's snapshot nor its events", async () => {
    const before = await jobOfB(); // would be in the snapshot
    const ownBefore = (await userA.call("CreateJob", { type: "JOB_TYPE_HEALTH_CHECK" })).job;
    const stream = userA.stream("WatchJobs", {});
    const messages = reader(stream);
    try {
      const snapshot: Msg[] = [];
      for (;;) {
        const m = await messages.next();
        if (m?.synced) break;
        if (m?.snapshot) snapshot.push(m.snapshot);
      }
      // A's own unfinished job is there: the snapshot is not empty, so the checks below are not vacuous.
      expect(snapshot.map((job) => job.id)).toContain(ownBefore.id);
      expect(snapshot.filter((job) => job.company_id !== COMPANY_A)).toEqual([]);
      expect(snapshot.map((job) => job.id)).not.toContain(before.id);

      // B's change commits first; A's own job last. If B's events leaked they would arrive before A's.
      const during = await jobOfB();
      await userB.call("RunJob", { job_id: during.id, executor_id: "executor-b" });
      const mine = (await userA.call("CreateJob", { type: "JOB_TYPE_HEALTH_CHECK" })).job;
      for (;;) {
        const m = await messages.next();
        if (!m?.event) continue; // heartbeats
        expect(m.event.job.company_id).toBe(COMPANY_A);
        if (m.event.job_id === mine.id) break;
      }
    } finally {
      stream.cancel();
    }
  });
});

describe("which company an api_user may name", () => {
  test("CreateJob without company_id makes a job of the user's own company", async () => {
    const { job } = await userA.call("CreateJob", { type: "JOB_TYPE_FORECAST" });
    expect(job.company_id).toBe(COMPANY_A);
  });

  test("CreateJob naming the user's own company works", async () => {
    const { job } = await userA.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: COMPANY_A });
    expect(job.company_id).toBe(COMPANY_A);
  });

  test("CreateJob naming another company is PERMISSION_DENIED and creates nothing", async () => {
    const request_id = randomUUID();
    const error = await userA.fail("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: COMPANY_B, request_id });
    expect(status[error.code]).toBe("PERMISSION_DENIED");
    expect(error.errorInfo?.domain).toBe("jobs.v1");
    const control = await jobOfB();
    const { jobs } = await service.call("ListJobs", { company_id: COMPANY_B, page_size: 1000 });
    expect(jobs.map((job: Msg) => job.id)).toContain(control.id);
    expect(jobs.filter((job: Msg) => job.created_by.type === "PRINCIPAL_TYPE_API_USER" && job.created_by.user_id === "1")).toEqual([]);
  });

  test("ListJobs with another company_id is PERMISSION_DENIED, with its own works", async () => {
    const error = await userA.fail("ListJobs", { company_id: COMPANY_B });
    expect(status[error.code]).toBe("PERMISSION_DENIED");
    expect(error.errorInfo?.domain).toBe("jobs.v1");
    const mine = (await userA.call("CreateJob", { type: "JOB_TYPE_FORECAST" })).job;
    const own = await userA.call("ListJobs", { company_id: COMPANY_A });
    expect(own.jobs.map((job: Msg) => job.id)).toContain(mine.id);
    expect(own.jobs.filter((job: Msg) => job.company_id !== COMPANY_A)).toEqual([]);
  });

  test("WatchJobs with another company_id is PERMISSION_DENIED", async () => {
    const error = await failure(userA, "WatchJobs", { company_id: COMPANY_B }, bearer(server.tokens.companyA));
    expect(status[error.code]).toBe("PERMISSION_DENIED");
    expect(error.errorInfo?.domain).toBe("jobs.v1");
  });
});

describe("service principals", () => {
  test("see every company's jobs", async () => {
    const a = (await userA.call("CreateJob", { type: "JOB_TYPE_FORECAST" })).job;
    const b = await jobOfB();
    expect((await service.call("GetJob", { job_id: a.id })).job.company_id).toBe(COMPANY_A);
    expect((await service.call("GetJob", { job_id: b.id })).job.company_id).toBe(COMPANY_B);
    const all = (await service.call("ListJobs", { page_size: 1000 })).jobs.map((job: Msg) => job.id);
    expect(all).toEqual(expect.arrayContaining([a.id, b.id]));
    const onlyB = (await service.call("ListJobs", { company_id: COMPANY_B, page_size: 1000 })).jobs;
    expect(onlyB.map((job: Msg) => job.id)).toContain(b.id);
    expect(onlyB.every((job: Msg) => job.company_id === COMPANY_B)).toBe(true);
  });

  test("may act on any company's job", async () => {
    const b = await jobOfB();
    const run = await service.call("RunJob", { job_id: b.id, executor_id: "executor-svc" });
    expect([run.changed, run.job.state]).toEqual([true, "JOB_STATE_RUNNING"]);
  });

  test("must name the company on CreateJob", async () => {
    const error = await service.fail("CreateJob", { type: "JOB_TYPE_FORECAST" });
    expect(status[error.code]).toBe("INVALID_ARGUMENT");
    expect(error.errorInfo?.metadata.field).toBe("company_id");
    const { job } = await service.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "321" });
    expect(job.company_id).toBe("321");
  });
});

describe("who acted", () => {
  test("created_by and every event's actor record the principal", async () => {
    const { job } = await userA.call("CreateJob", { type: "JOB_TYPE_FORECAST" });
    expect(job.created_by).toEqual({ type: "PRINCIPAL_TYPE_API_USER", company_id: COMPANY_A, user_id: "1", name: "" });

    await service.call("RunJob", { job_id: job.id, executor_id: "executor-1" });
    await userA.call("RequestJobCancellation", { job_id: job.id, reason: "changed my mind" });
    await service.call("CancelJob", { job_id: job.id });

    const { events } = await userA.call("ListJobEvents", { job_id: job.id });
    const user = { type: "PRINCIPAL_TYPE_API_USER", company_id: COMPANY_A, user_id: "1", name: "" };
    const svc = { type: "PRINCIPAL_TYPE_SERVICE", company_id: "0", user_id: "0", name: "test-service" };
    expect(events.map((e: Msg) => [e.type, e.actor])).toEqual([
      ["JOB_EVENT_TYPE_CREATED", user],
      ["JOB_EVENT_TYPE_STARTED", svc],
      ["JOB_EVENT_TYPE_CANCELLATION_REQUESTED", user],
      ["JOB_EVENT_TYPE_CANCELLED", svc],
    ]);
    // Each event's job snapshot keeps its creator.
    for (const e of events) expect(e.job.created_by).toEqual(user);
  });

  test("a service's job records the service's name", async () => {
    const { job } = await service.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: COMPANY_B });
    expect(job.created_by).toEqual({ type: "PRINCIPAL_TYPE_SERVICE", company_id: "0", user_id: "0", name: "test-service" });
    // Its owner company's user sees it, and sees who made it.
    expect((await userB.call("GetJob", { job_id: job.id })).job.created_by.name).toBe("test-service");
  });
});

describe("idempotency keys belong to the principal, not the token", () => {
  test("two tokens of one api_user with one request_id get the same job", async () => {
    const second = await server.issueToken({ type: "api_user", companyId: COMPANY_A, userId: "1" }, ["jobs:write"]);
    const sameUser = jobsClient(server.address, second.secret);
    try {
      const request_id = randomUUID();
      const first = (await userA.call("CreateJob", { type: "JOB_TYPE_FORECAST", request_id })).job;
      // Whatever the rest of the request says, the key decides.
      const again = (await sameUser.call("CreateJob", { type: "JOB_TYPE_HEALTH_CHECK", request_id })).job;
      expect(again.id).toBe(first.id);
      expect(again.type).toBe("JOB_TYPE_FORECAST");
    } finally {
      sameUser.close();
    }
  });

  test("another principal's request_id space is separate", async () => {
    const request_id = randomUUID();
    const otherUser = await server.issueToken({ type: "api_user", companyId: COMPANY_A, userId: "3" }, ["jobs:read", "jobs:write"]);
    const colleague = jobsClient(server.address, otherUser.secret);
    try {
      const ids = [
        (await userA.call("CreateJob", { type: "JOB_TYPE_FORECAST", request_id })).job.id,
        (await colleague.call("CreateJob", { type: "JOB_TYPE_FORECAST", request_id })).job.id,
        (await userB.call("CreateJob", { type: "JOB_TYPE_FORECAST", request_id })).job.id,
        (await service.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: COMPANY_A, request_id })).job.id,
      ];
      expect(new Set(ids).size).toBe(4);
      // And each principal's own retry still finds its own job.
      expect((await colleague.call("CreateJob", { type: "JOB_TYPE_FORECAST", request_id })).job.id).toBe(ids[1]);
    } finally {
      colleague.close();
    }
  });
});

// Issue 10, item 5: not just NOT_FOUND for one request shape, but the very
// answer a job id that does not exist gets, whatever state the other
// company's job is in and whatever the request asks — including requests
// whose answer would differ if the job were visible (a rejected transition, a
// stale attempt, a mismatched result, an after_revision beyond the job's, a
// heartbeat that would succeed). Any difference would tell company A that
// the id exists.
describe("another company's job is indistinguishable from no job at all", () => {
  const REQUESTS: ReadonlyArray<[string, (jobId: string) => Msg]> = [
    ["GetJob", (job_id) => ({ job_id })],
    ["ListJobEvents", (job_id) => ({ job_id, page_size: 1 })],
    ["RunJob", (job_id) => ({ job_id, executor_id: "executor-a" })],
    ["RunJob", (job_id) => ({ job_id, executor_id: "executor-a", lease_seconds: 5 })],
    ["CompleteJob", (job_id) => ({ job_id, result: FORECAST_RESULT })],
    ["CompleteJob", (job_id) => ({ job_id, result: FORECAST_RESULT, attempt: "7" })],
    ["CompleteJob", (job_id) => ({ job_id, result: { refresh_materialized_view: { snapshot_id: "1" } } })],
    ["FailJob", (job_id) => ({ job_id, message: "failed" })],
    ["FailJob", (job_id) => ({ job_id, message: "failed", attempt: "7" })],
    ["RequestJobCancellation", (job_id) => ({ job_id, reason: "mine now" })],
    ["CancelJob", (job_id) => ({ job_id })],
    ["HeartbeatJob", (job_id) => ({ job_id, executor_id: "executor-1", attempt: "1" })],
    ["HeartbeatJob", (job_id) => ({ job_id, executor_id: "executor-a", attempt: "9" })],
    ["WatchJob", (job_id) => ({ job_id, after_revision: "0" })],
    ["WatchJob", (job_id) => ({ job_id, after_revision: "99" })],
  ];

  /** What a caller can observe of an error, with the job id it named taken out. */
  const observable = (error: RpcError, jobId: string) => ({
    code: status[error.code],
    message: error.details.replaceAll(jobId, "<id>"),
    errorInfo: error.errorInfo && {
      ...error.errorInfo,
      metadata: Object.fromEntries(Object.entries(error.errorInfo.metadata).map(([k, v]) => [k, v.replaceAll(jobId, "<id>")])),
    },
  });

  const figures = { calls: 0, jobs_checked: 0, requests_compared: 0, violations: 0 };
  afterAll(() => reportFigures("tenancy", figures));

  test.each(STATES)("B's job in %s: every request gets exactly the answer for a job that does not exist, and the job does not move", async (state) => {
    const job = await jobIn(service, state, { company_id: COMPANY_B });
    const ghost = randomUUID();
    const violations: string[] = [];
    for (const [method, request] of REQUESTS) {
      const foreign = observable(await failure(userA, method, request(job.id), bearer(server.tokens.companyA)), job.id);
      const missing = observable(await failure(userA, method, request(ghost), bearer(server.tokens.companyA)), ghost);
      figures.calls += 2;
      figures.requests_compared++;
      if (!isDeepStrictEqual(foreign, missing)) {
        violations.push(`${method} ${JSON.stringify(request("<id>"))}: ${JSON.stringify(foreign)} for B's job, ${JSON.stringify(missing)} for none`);
      }
    }
    // Not a field moved, heartbeat fields included.
    const after = (await service.call("GetJob", { job_id: job.id })).job;
    if (!isDeepStrictEqual(after, job)) violations.push(`B's job moved: revision ${job.revision} → ${after.revision}, updated_at ${JSON.stringify(after.updated_at)}`);

    // Nor does any listing of A's show it, even filtered to exactly its state, type and executor.
    const filters: Msg = { states: [job.state], types: [job.type], executor_id: job.executor_id, page_size: 1000 };
    if ((await userA.call("ListJobs", filters)).jobs.some((j: Msg) => j.id === job.id)) violations.push("A's ListJobs shows B's job");
    figures.calls += 3;
    figures.jobs_checked++;
    figures.violations += violations.length;
    expect(violations).toEqual([]);
    // The control: the filters do find it for a service naming B's company.
    expect((await service.call("ListJobs", { ...filters, company_id: COMPANY_B })).jobs.map((j: Msg) => j.id)).toContain(job.id);
  });

  test("a page token issued to company B is refused to company A (INVALID_PAGE_TOKEN), not a page of B's jobs", async () => {
    for (let i = 0; i < 2; i++) await jobOfB();
    const ofB = await userB.call("ListJobs", { page_size: 1 });
    expect(ofB.next_page_token).not.toBe("");
    const error = await userA.fail("ListJobs", { page_size: 1, page_token: ofB.next_page_token });
    expect([status[error.code], error.errorInfo?.reason]).toEqual(["INVALID_ARGUMENT", "INVALID_PAGE_TOKEN"]);
    const job = await jobOfB();
    await userB.call("RunJob", { job_id: job.id, executor_id: "executor-b" });
    const eventsPage = await userB.call("ListJobEvents", { job_id: job.id, page_size: 1 });
    expect(eventsPage.next_page_token).not.toBe("");
    // The same token on B's job and on no job: the same refusal, so it says nothing about the job either.
    const onJob = await userA.fail("ListJobEvents", { job_id: job.id, page_size: 1, page_token: eventsPage.next_page_token });
    const onNothing = await userA.fail("ListJobEvents", { job_id: randomUUID(), page_size: 1, page_token: eventsPage.next_page_token });
    expect([status[onJob.code], onJob.errorInfo?.reason]).toEqual([status[onNothing.code], onNothing.errorInfo?.reason]);
  });
});
