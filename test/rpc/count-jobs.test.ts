// CountJobs over the wire: one count per state for the jobs ListJobs would
// list with the same filters, zero counts included, in JobState order; an API
// user counts only its own company's jobs and learns which company was
// counted. Who may call it at all (tokens, scope, another company) is in
// test/rpc/auth.test.ts with every other RPC.

import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { status } from "@grpc/grpc-js";
import { jobsClient, type JobsClient, type Msg } from "../support/grpc.js";
import { startServer, type TestServer } from "../support/harness.js";
import { createJob, jobIn, STATES, type StateName } from "./jobs-fixture.js";

let server: TestServer;
let client: JobsClient;
let userA: JobsClient;

beforeAll(async () => {
  server = await startServer();
  client = jobsClient(server.address, server.tokens.service);
  userA = jobsClient(server.address, server.tokens.companyA);
});
afterAll(async () => {
  client?.close();
  userA?.close();
  await server?.stop();
});

/** The response's counts as `{ PENDING: 3, … }`, in the order they came. */
const tally = (res: Msg) => Object.fromEntries(res.counts.map((c: Msg) => [c.state.replace("JOB_STATE_", ""), Number(c.count)]));
const zeros = () => Object.fromEntries(STATES.map((s) => [s, 0]));

/** Jobs in a data plane of their own: `spec` says how many of each state. */
async function jobsIn(spec: Partial<Record<StateName, number>>, fields: Msg = {}): Promise<{ dataPlane: string; jobs: Msg[] }> {
  const dataPlane = `count-${randomUUID()}`;
  const jobs: Msg[] = [];
  for (const [state, n] of Object.entries(spec) as [StateName, number][]) {
    for (let i = 0; i < n; i++) jobs.push(await jobIn(client, state, { data_plane_id: dataPlane, ...fields }));
  }
  return { dataPlane, jobs };
}

describe("counts", () => {
  test("one count per state, zeros included, in JobState order, equal to what ListJobs lists", async () => {
    const { dataPlane } = await jobsIn({ PENDING: 3, RUNNING: 2, FAILED: 1, CANCELLED: 1 });
    const res = await client.call("CountJobs", { data_plane_id: dataPlane });
    expect(res.counts.map((c: Msg) => c.state)).toEqual(STATES.map((s) => `JOB_STATE_${s}`));
    expect(tally(res)).toEqual({ ...zeros(), PENDING: 3, RUNNING: 2, FAILED: 1, CANCELLED: 1 });
    expect(res.company_id).toBe("0");

    const listed = (await client.call("ListJobs", { data_plane_id: dataPlane, page_size: 1000 })).jobs as Msg[];
    const byState = zeros();
    for (const job of listed) byState[job.state.replace("JOB_STATE_", "")]++;
    expect(tally(res)).toEqual(byState);
  });

  test("a states filter counts only those states, still in JobState order", async () => {
    const { dataPlane } = await jobsIn({ PENDING: 2, RUNNING: 1, COMPLETED: 1 });
    const res = await client.call("CountJobs", { data_plane_id: dataPlane, states: ["JOB_STATE_COMPLETED", "JOB_STATE_PENDING"] });
    expect(res.counts).toEqual([
      { state: "JOB_STATE_PENDING", count: "2" },
      { state: "JOB_STATE_COMPLETED", count: "1" },
    ]);
  });

  test("types, executor, company and created range filter as in ListJobs", async () => {
    const dataPlane = `count-${randomUUID()}`;
    const before = new Date();
    await createJob(client, { data_plane_id: dataPlane, company_id: "31" });
    await createJob(client, { data_plane_id: dataPlane, company_id: "32", type: "JOB_TYPE_HEALTH_CHECK" });
    const run = await createJob(client, { data_plane_id: dataPlane, company_id: "31" });
    await client.call("RunJob", { job_id: run.id, executor_id: "executor-count" });
    const count = async (filter: Msg) => tally(await client.call("CountJobs", { data_plane_id: dataPlane, ...filter }));

    expect(await count({ types: ["JOB_TYPE_HEALTH_CHECK"] })).toEqual({ ...zeros(), PENDING: 1 });
    expect(await count({ executor_id: "executor-count" })).toEqual({ ...zeros(), RUNNING: 1 });
    expect(await count({ company_id: "31" })).toEqual({ ...zeros(), PENDING: 1, RUNNING: 1 });
    expect((await client.call("CountJobs", { data_plane_id: dataPlane, company_id: "32" })).company_id).toBe("32");
    const seconds = (d: Date) => ({ seconds: String(Math.floor(d.getTime() / 1000) - 1), nanos: 0 });
    expect(await count({ created_after: seconds(before) })).toEqual({ ...zeros(), PENDING: 2, RUNNING: 1 });
    expect(await count({ created_before: seconds(before) })).toEqual(zeros());
  });
});

describe("tenants", () => {
  test("an API user counts only its own company's jobs, and the response names that company", async () => {
    const dataPlane = `count-${randomUUID()}`;
    await createJob(client, { data_plane_id: dataPlane, company_id: "100" });
    await createJob(client, { data_plane_id: dataPlane, company_id: "200" });
    await createJob(client, { data_plane_id: dataPlane, company_id: "200" });

    const own = await userA.call("CountJobs", { data_plane_id: dataPlane });
    expect(tally(own)).toEqual({ ...zeros(), PENDING: 1 });
    expect(own.company_id).toBe("100");
    expect((await userA.call("CountJobs", { data_plane_id: dataPlane, company_id: "100" })).company_id).toBe("100");
    // A service counts every company.
    expect(tally(await client.call("CountJobs", { data_plane_id: dataPlane }))).toEqual({ ...zeros(), PENDING: 3 });
  });
});

describe("validation", () => {
  test.each([
    ["an unspecified state", { states: ["JOB_STATE_UNSPECIFIED"] }, "states"],
    ["an unspecified type", { types: ["JOB_TYPE_UNSPECIFIED"] }, "types"],
    ["a negative company", { company_id: "-1" }, "company_id"],
  ])("%s is INVALID_ARGUMENT naming the field", async (_what, request, field) => {
    const error = await client.fail("CountJobs", request);
    expect(status[error.code]).toBe("INVALID_ARGUMENT");
    expect(error.errorInfo).toMatchObject({ domain: "jobs.v1", reason: "INVALID_ARGUMENT", metadata: { field, call: "CountJobs" } });
  });
});
