// JobStore.deleteFinishedBefore (SPEC §10 retention): only jobs that finished
// longer ago than the retention age go, in batches of at most `limit`, and
// their events go with them (ON DELETE CASCADE).

import { afterAll, beforeAll, expect, test } from "@jest/globals";
import type { JobRecord } from "../../src/domain/job.js";
import { sql } from "../support/harness.js";
import { createJob, FORECAST_RESULT, SERVICE, type StoreBundle, storeBundle } from "./store-bundle.js";

let bundle: StoreBundle;

beforeAll(async () => {
  bundle = await storeBundle(5);
});
afterAll(async () => {
  await bundle?.close();
});

async function jobInState(state: "PENDING" | "RUNNING" | "PENDING_CANCELLATION" | "COMPLETED" | "FAILED" | "CANCELLED"): Promise<JobRecord> {
  const store = bundle.store;
  const job = await createJob(store);
  if (state === "PENDING") return job;
  await store.transition(job.id, { call: "RunJob", executorId: "ex", leaseSeconds: 3600 }, SERVICE);
  if (state === "COMPLETED") await store.transition(job.id, FORECAST_RESULT, SERVICE);
  if (state === "FAILED") await store.transition(job.id, { call: "FailJob", message: "m", diagnostic: null, attempt: 0 }, SERVICE);
  if (state === "PENDING_CANCELLATION" || state === "CANCELLED") {
    await store.transition(job.id, { call: "RequestJobCancellation", reason: "" }, SERVICE);
  }
  if (state === "CANCELLED") await store.transition(job.id, { call: "CancelJob" }, SERVICE);
  return store.get(job.id, SERVICE, "GetJob");
}

/** Pretends the jobs were created, run and finished `days` days ago. */
async function age(jobIds: string[], days: number): Promise<void> {
  await sql(
    bundle.databaseUrl,
    `update jobs set created_at = created_at - $2 * interval '1 day', updated_at = updated_at - $2 * interval '1 day',
                     started_at = started_at - $2 * interval '1 day', finished_at = finished_at - $2 * interval '1 day'
     where id = any($1::uuid[])`,
    [jobIds, days],
  );
}

async function remaining(jobIds: string[]): Promise<{ jobs: string[]; eventsOf: string[] }> {
  const jobs = await sql<{ id: string }>(bundle.databaseUrl, "select id from jobs where id = any($1::uuid[]) order by id", [jobIds]);
  const events = await sql<{ job_id: string }>(
    bundle.databaseUrl,
    "select distinct job_id from job_events where job_id = any($1::uuid[]) order by job_id",
    [jobIds],
  );
  return { jobs: jobs.map((r) => r.id), eventsOf: events.map((r) => r.job_id) };
}

test("deletes only jobs that finished before the retention age, with their events", async () => {
  const oldFinished = await Promise.all((["COMPLETED", "FAILED", "CANCELLED"] as const).map(jobInState));
  const oldUnfinished = await Promise.all((["PENDING", "RUNNING", "PENDING_CANCELLATION"] as const).map(jobInState));
  const recentFinished = await Promise.all((["COMPLETED", "FAILED", "CANCELLED"] as const).map(jobInState));
  const barelyYoung = await jobInState("COMPLETED");
  await age([...oldFinished, ...oldUnfinished].map((j) => j.id), 40);
  await age([barelyYoung.id], 29);
  const all = [...oldFinished, ...oldUnfinished, ...recentFinished, barelyYoung].map((j) => j.id);

  expect(await bundle.store.deleteFinishedBefore(30, 100)).toBe(3);

  const kept = [...oldUnfinished, ...recentFinished, barelyYoung].map((j) => j.id).sort();
  expect(await remaining(all)).toEqual({ jobs: kept, eventsOf: kept });
  const [{ orphans }] = await sql<{ orphans: string }>(
    bundle.databaseUrl,
    "select count(*)::text as orphans from job_events e where not exists (select 1 from jobs j where j.id = e.job_id)",
  );
  expect(orphans).toBe("0");
  // The kept jobs' histories are whole.
  for (const job of [...oldUnfinished, ...recentFinished]) {
    const events = await bundle.store.events(job.id, 0, 100);
    expect(events.map((e) => e.revision)).toEqual(Array.from({ length: job.revision }, (_, i) => i + 1));
  }
  // Nothing more to delete.
  expect(await bundle.store.deleteFinishedBefore(30, 100)).toBe(0);
});

test("deletes in batches of at most `limit`", async () => {
  const old = await Promise.all(Array.from({ length: 5 }, () => jobInState("COMPLETED")));
  // Older than 35 days; the previous test's jobs that are left are all younger or unfinished.
  await age(old.map((j) => j.id), 50);
  expect(await bundle.store.deleteFinishedBefore(35, 2)).toBe(2);
  expect((await remaining(old.map((j) => j.id))).jobs).toHaveLength(3);
  expect(await bundle.store.deleteFinishedBefore(35, 2)).toBe(2);
  expect(await bundle.store.deleteFinishedBefore(35, 2)).toBe(1);
  expect(await bundle.store.deleteFinishedBefore(35, 2)).toBe(0);
  expect(await remaining(old.map((j) => j.id))).toEqual({ jobs: [], eventsOf: [] });
});
