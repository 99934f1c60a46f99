// JobStore.list: every filter of ListJobs, and keyset paging that visits
// each job exactly once, newest first, in a stable order even when jobs share
// a creation time. This file's database holds only the jobs made here.

import { afterAll, beforeAll, expect, test } from "@jest/globals";
import type { JobRecord } from "../../src/domain/job.js";
import type { JobCursor, JobFilter } from "../../src/store/job-store.js";
import { sql } from "../support/harness.js";
import { createJob, FORECAST_RESULT, NO_FILTER, SERVICE, type StoreBundle, storeBundle } from "./store-bundle.js";

let bundle: StoreBundle;
/** Every job in the database, as stored after setup. */
let jobs: JobRecord[];

beforeAll(async () => {
  bundle = await storeBundle(10);
  const store = bundle.store;
  const made: JobRecord[] = [];
  // 24 jobs over three companies, two data planes, three types, and every state.
  const types = ["FORECAST", "HEALTH_CHECK", "DATASETS_EXECUTE_DML"] as const;
  for (let i = 0; i < 24; i++) {
    made.push(
      await createJob(store, {
        type: types[i % 3],
        companyId: ["100", "200", "300"][i % 3 === 0 ? 0 : i % 4 === 0 ? 2 : 1],
        dataPlaneId: i % 2 ? "dp-odd" : "dp-even",
        input: null,
      }),
    );
  }
  const run = (id: string, executorId: string) =>
    store.transition(id, { call: "RunJob", executorId, leaseSeconds: 3600 }, SERVICE);
  for (const job of made.slice(0, 16)) await run(job.id, made.indexOf(job) % 2 ? "ex-b" : "ex-a");
  for (const job of made.slice(0, 4)) {
    if (job.type === "FORECAST") await store.transition(job.id, FORECAST_RESULT, SERVICE);
    else await store.transition(job.id, { call: "FailJob", message: "m", diagnostic: null, attempt: 0 }, SERVICE);
  }
  for (const job of made.slice(4, 8)) await store.transition(job.id, { call: "RequestJobCancellation", reason: "" }, SERVICE);
  for (const job of made.slice(4, 6)) await store.transition(job.id, { call: "CancelJob" }, SERVICE);
  // Several jobs created in the same microsecond: paging must still order them (by id) and visit each once.
  await sql(
    bundle.databaseUrl,
    "update jobs set created_at = (select created_at from jobs where id = $1) where id = any($2::uuid[])",
    [made[10].id, made.slice(10, 16).map((j) => j.id)],
  );
  jobs = await Promise.all(made.map((j) => store.get(j.id, SERVICE, "GetJob")));
});
afterAll(async () => {
  await bundle?.close();
});

/** Newest first; ties broken by id, descending (the listing's documented order). */
function newestFirst(a: JobRecord, b: JobRecord): number {
  if (a.createdAt !== b.createdAt) return b.createdAt - a.createdAt;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

function expected(predicate: (job: JobRecord) => boolean): JobRecord[] {
  return jobs.filter(predicate).sort(newestFirst);
}

async function listAll(filter: JobFilter, pageSize: number): Promise<{ pages: number; jobs: JobRecord[] }> {
  const seen: JobRecord[] = [];
  let cursor: JobCursor | null = null;
  let pages = 0;
  for (;;) {
    const page = await bundle.store.list(filter, cursor, pageSize);
    pages++;
    seen.push(...page);
    if (page.length < pageSize) return { pages, jobs: seen };
    const last = page[page.length - 1];
    cursor = { createdAt: last.createdAt, id: last.id };
    if (pages > 100) throw new Error("paging does not end");
  }
}

test("the setup made jobs in every state, some sharing a creation time", () => {
  expect(new Set(jobs.map((j) => j.state))).toEqual(
    new Set(["PENDING", "RUNNING", "PENDING_CANCELLATION", "COMPLETED", "FAILED", "CANCELLED"]),
  );
  expect(new Set(jobs.slice(10, 16).map((j) => j.createdAt)).size).toBe(1);
});

test("with no filter, everything comes back newest first in one page", async () => {
  expect(await bundle.store.list(NO_FILTER, null, 1000)).toEqual(expected(() => true));
});

test.each([1, 3, 5, 7, 24, 25])("keyset paging with page size %i visits every job exactly once, newest first", async (size) => {
  const { jobs: seen } = await listAll(NO_FILTER, size);
  expect(seen.map((j) => j.id)).toEqual(expected(() => true).map((j) => j.id));
  expect(new Set(seen.map((j) => j.id)).size).toBe(jobs.length);
});

test("paging with a filter visits every matching job exactly once", async () => {
  const filter = { ...NO_FILTER, dataPlaneId: "dp-odd" };
  const { jobs: seen } = await listAll(filter, 2);
  expect(seen.map((j) => j.id)).toEqual(expected((j) => j.dataPlaneId === "dp-odd").map((j) => j.id));
});

test("a page size smaller than the result limits the page", async () => {
  const page = await bundle.store.list(NO_FILTER, null, 4);
  expect(page).toEqual(expected(() => true).slice(0, 4));
});

test("filter by states", async () => {
  const states = ["RUNNING", "CANCELLED"];
  const result = await bundle.store.list({ ...NO_FILTER, states }, null, 1000);
  expect(result).toEqual(expected((j) => states.includes(j.state)));
  expect(result.length).toBeGreaterThan(0);
});

test("filter by types", async () => {
  const types = ["HEALTH_CHECK"];
  const result = await bundle.store.list({ ...NO_FILTER, types }, null, 1000);
  expect(result).toEqual(expected((j) => j.type === "HEALTH_CHECK"));
  expect(result).toHaveLength(8);
});

test("filter by executor", async () => {
  const result = await bundle.store.list({ ...NO_FILTER, executorId: "ex-b" }, null, 1000);
  expect(result).toEqual(expected((j) => j.executorId === "ex-b"));
  expect(result).toHaveLength(8);
});

test("filter by data plane", async () => {
  const result = await bundle.store.list({ ...NO_FILTER, dataPlaneId: "dp-even" }, null, 1000);
  expect(result).toEqual(expected((j) => j.dataPlaneId === "dp-even"));
  expect(result).toHaveLength(12);
});

test("filter by company", async () => {
  for (const companyId of ["100", "200", "300"]) {
    const result = await bundle.store.list({ ...NO_FILTER, companyId }, null, 1000);
    expect(result).toEqual(expected((j) => j.companyId === companyId));
    expect(result.length).toBeGreaterThan(0);
  }
  expect(await bundle.store.list({ ...NO_FILTER, companyId: "999" }, null, 1000)).toEqual([]);
});

test("filter by created range: after is inclusive, before is exclusive", async () => {
  const ordered = [...jobs].sort((a, b) => a.createdAt - b.createdAt);
  const after = ordered[3].createdAt;
  const before = ordered[20].createdAt;
  const result = await bundle.store.list({ ...NO_FILTER, createdAfter: after, createdBefore: before }, null, 1000);
  expect(result).toEqual(expected((j) => j.createdAt >= after && j.createdAt < before));
  expect(result.map((j) => j.id)).toContain(ordered[3].id);
  expect(result.map((j) => j.id)).not.toContain(ordered[20].id);
});

test("filters combine (AND)", async () => {
  const filter = { ...NO_FILTER, states: ["RUNNING", "FAILED"], types: ["FORECAST", "HEALTH_CHECK"], dataPlaneId: "dp-even" };
  const result = await bundle.store.list(filter, null, 1000);
  expect(result).toEqual(
    expected((j) => ["RUNNING", "FAILED"].includes(j.state) && ["FORECAST", "HEALTH_CHECK"].includes(j.type) && j.dataPlaneId === "dp-even"),
  );
});
