// JobStore.deleteFinishedBefore (docs/contract.md, retention): only jobs that finished
// longer ago than the retention age go, in batches of at most `limit`, and
// their events go with them (ON DELETE CASCADE); and the one race retention
// makes for CreateJob (CREATE_RACE).

import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, expect, test } from "@jest/globals";
import pg from "pg";
import type { JobRecord } from "../../src/domain/job.js";
import type { BatchReport } from "../../src/store/batcher.js";
import { JobStore } from "../../src/store/job-store.js";
import { sql } from "../support/harness.js";
import { eventually } from "../support/watching.js";
import { createJob, FORECAST_RESULT, jobFields, lockWaiters, SERVICE, type StoreBundle, storeBundle } from "./store-bundle.js";

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

// The one order of events that leaves a CreateJob with neither a new job nor the earlier one: its request_id
// was used before, so the batch's insert meets the earlier job and writes nothing (without locking it), and
// retention deletes that job before the next statement reads it. (An earlier request still uncommitted cannot
// do this: the insert waits for it, and then finds its job committed, or inserts if it rolled back.) To hold
// the batch between the two statements, a neighbour's change in the same batch fires a trigger at the end of
// the write statement that waits on a lock this test holds.
test("a CreateJob whose earlier job retention deletes between the batch's insert and its read is UNAVAILABLE CREATE_RACE; a retry makes a new job", async () => {
  const HOLD = 0x72616365; // "race"
  await sql(
    bundle.databaseUrl,
    `create function hold_write() returns trigger language plpgsql as $$ begin perform pg_advisory_xact_lock_shared(${HOLD}); return null; end $$;
     create trigger hold_write after update on jobs for each row when (new.executor_id = 'held') execute function hold_write();`,
  );
  const batches: BatchReport[] = [];
  const store = new JobStore(bundle.orm, () => {}, { onBatch: (report) => batches.push(report) });
  const requestId = randomUUID();
  const { job: earlier } = await store.create(jobFields({ requestId }), SERVICE);
  await store.transition(earlier.id, { call: "RunJob", executorId: "ex", leaseSeconds: 3600 }, SERVICE);
  await store.transition(earlier.id, FORECAST_RESULT, SERVICE);
  await age([earlier.id], 40);
  const neighbour = await createJob(store);
  batches.length = 0;

  let creating: Promise<unknown> | undefined;
  let running: Promise<unknown> | undefined;
  await whileAdvisoryLocked(HOLD, async () => {
    // One batch: the create's insert meets the earlier job; the neighbour's row then holds the write.
    creating = store.create(jobFields({ requestId }), SERVICE);
    running = store.transition(neighbour.id, { call: "RunJob", executorId: "held", leaseSeconds: 3600 }, SERVICE);
    creating.catch(() => undefined);
    await eventually(async () => (await lockWaiters(bundle.databaseUrl)) === 1, "the batch's write to wait on the held lock");
    // Retention, meanwhile: the earlier job is old and finished, and nothing holds its row.
    expect(await bundle.store.deleteFinishedBefore(30, 1000)).toBeGreaterThanOrEqual(1);
    expect(await remaining([earlier.id])).toEqual({ jobs: [], eventsOf: [] });
  });
  await expect(creating).rejects.toMatchObject({ kind: "unavailable", reason: "CREATE_RACE", message: expect.stringContaining("retry") });
  // The batch's other call is not the create's victim: it committed.
  await expect(running).resolves.toMatchObject({ changed: true, job: { state: "RUNNING", executorId: "held" } });
  expect(batches.map((b) => [b.calls, b.outcome])).toEqual([[2, "committed"]]);
  // Nothing of the create is in; the retry makes a new job, which that request_id then names.
  expect(await sql(bundle.databaseUrl, "select id from jobs where request_id = $1", [requestId])).toEqual([]);
  const retried = await store.create(jobFields({ requestId }), SERVICE);
  expect(retried.created).toBe(true);
  expect(retried.job.id).not.toBe(earlier.id);
  const again = await store.create(jobFields({ requestId }), SERVICE);
  expect([again.created, again.job.id]).toEqual([false, retried.job.id]);
});

/** Runs `body` while this test's own session holds the advisory lock `key`. */
async function whileAdvisoryLocked(key: number, body: () => Promise<void>): Promise<void> {
  const holder = new pg.Client({ connectionString: bundle.databaseUrl });
  await holder.connect();
  try {
    await holder.query("select pg_advisory_lock($1)", [key]);
    await body();
  } finally {
    await holder.end();
  }
}
