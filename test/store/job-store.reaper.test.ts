// JobStore.reapExpired (docs/contract.md §9): a RUNNING job whose lease ran out fails, a
// PENDING_CANCELLATION one is cancelled, by the service principal "reaper",
// as ordinary transitions; and several reapers at once reap each job once.
//
// reapExpired looks at the whole database, so this file has its own, and
// every test leaves no expired lease behind for the next.

import { afterAll, beforeAll, expect, test } from "@jest/globals";
import type { EventRecord, JobRecord } from "../../src/domain/job.js";
import type { JobStore } from "../../src/store/job-store.js";
import { sql } from "../support/harness.js";
import { createJob, FORECAST_RESULT, SERVICE, type StoreBundle, storeBundle } from "./store-bundle.js";

const REAPER = { type: "service", name: "reaper" };

let bundle: StoreBundle;

beforeAll(async () => {
  bundle = await storeBundle(20);
});
afterAll(async () => {
  await bundle?.close();
});

async function runningJob(executorId = "ex", leaseSeconds = 3600): Promise<JobRecord> {
  const job = await createJob(bundle.store);
  return (await bundle.store.transition(job.id, { call: "RunJob", executorId, leaseSeconds }, SERVICE)).job;
}

/** Moves the jobs' leases into the past, as if their executors had stopped heartbeating long ago. */
async function expireLeases(jobIds: readonly string[]): Promise<void> {
  await sql(bundle.databaseUrl, "update jobs set lease_expires_at = now() - interval '5 seconds' where id = any($1::uuid[])", [
    jobIds,
  ]);
}

/** Calls reapExpired in small batches until it finds nothing more. */
async function reapAll(store: JobStore, batch = 3): Promise<EventRecord[]> {
  const reaped: EventRecord[] = [];
  for (;;) {
    const events = await store.reapExpired(batch);
    if (events.length === 0) return reaped;
    reaped.push(...events);
  }
}

test("a RUNNING job whose lease expired fails, with a failure naming the lease, executor and attempt", async () => {
  const job = await runningJob("executor-7");
  await expireLeases([job.id]);
  const commits = bundle.commits.length;

  const reaped = await bundle.store.reapExpired(10);
  expect(reaped).toHaveLength(1);
  const [event] = reaped;
  expect(event).toMatchObject({
    jobId: job.id,
    revision: job.revision + 1,
    type: "FAILED",
    fromState: "RUNNING",
    toState: "FAILED",
    actor: REAPER,
    previousExecutorId: "executor-7",
  });
  const failure = event.job.failures.at(-1)!;
  expect(failure.message).toMatch(/lease expired/i);
  expect(failure.message).toContain("executor-7");
  expect(failure.message).toMatch(/attempt 1\b/);
  expect(failure).toMatchObject({ attempt: 1, executorId: "executor-7", failedAt: event.occurredAt });
  expect(event.job).toMatchObject({ state: "FAILED", finishedAt: event.occurredAt, leaseExpiresAt: null });

  // An ordinary transition: stored, logged and announced like any other.
  const events = await bundle.store.events(job.id, 0, 100);
  expect(events.at(-1)).toEqual(event);
  expect(await bundle.store.get(job.id, SERVICE, "GetJob")).toEqual(event.job);
  expect(bundle.commits.slice(commits)).toEqual([[event]]);
  // Nothing is left to reap.
  expect(await bundle.store.reapExpired(10)).toEqual([]);
});

test("a PENDING_CANCELLATION job whose lease expired is cancelled", async () => {
  const job = await runningJob();
  await bundle.store.transition(job.id, { call: "RequestJobCancellation", reason: "stop" }, SERVICE);
  await expireLeases([job.id]);

  const reaped = await bundle.store.reapExpired(10);
  expect(reaped).toHaveLength(1);
  expect(reaped[0]).toMatchObject({
    jobId: job.id,
    type: "CANCELLED",
    fromState: "PENDING_CANCELLATION",
    toState: "CANCELLED",
    actor: REAPER,
  });
  expect(reaped[0].job.failures).toEqual(job.failures);
  expect((await bundle.store.get(job.id, SERVICE, "GetJob")).state).toBe("CANCELLED");
});

test("a lease of one second really runs out by the database's clock", async () => {
  const lapsed = await runningJob("sleepy", 1);
  // Wait (generously) until the database's own clock is past the lease.
  for (let waited = 0; ; waited += 100) {
    const [{ expired }] = await sql<{ expired: boolean }>(
      bundle.databaseUrl,
      "select lease_expires_at <= now() as expired from jobs where id = $1",
      [lapsed.id],
    );
    if (expired) break;
    if (waited > 10_000) throw new Error("the lease never ran out");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const reaped = await bundle.store.reapExpired(10);
  expect(reaped.map((e) => e.jobId)).toEqual([lapsed.id]);
  expect(reaped[0].job.state).toBe("FAILED");
});

test("a heartbeat before the reaper comes round renews an expired lease, and the job is spared", async () => {
  const job = await runningJob("late-but-alive", 3600);
  await expireLeases([job.id]);
  const beat = await bundle.store.heartbeat(job.id, "late-but-alive", 1, SERVICE);
  expect(await bundle.store.reapExpired(10)).toEqual([]);
  expect(await bundle.store.get(job.id, SERVICE, "GetJob")).toEqual(beat);
  expect(beat.state).toBe("RUNNING");
  await bundle.store.transition(job.id, FORECAST_RESULT, SERVICE);
});

test("jobs with live leases, and jobs that hold no lease, are left alone", async () => {
  const live = await runningJob("ex", 3600);
  const pending = await createJob(bundle.store);
  const done = await runningJob("ex", 3600);
  await bundle.store.transition(done.id, FORECAST_RESULT, SERVICE);
  // A finished job with a stale lease column still is not the reaper's business.
  await sql(bundle.databaseUrl, "update jobs set lease_expires_at = now() - interval '1 hour' where id = $1", [done.id]);
  const before = await Promise.all([live, pending, done].map((j) => bundle.store.get(j.id, SERVICE, "GetJob")));

  expect(await bundle.store.reapExpired(10)).toEqual([]);
  const after = await Promise.all([live, pending, done].map((j) => bundle.store.get(j.id, SERVICE, "GetJob")));
  expect(after).toEqual(before);
  await bundle.store.transition(live.id, FORECAST_RESULT, SERVICE);
});

test("a failed job's retry after reaping runs with the next attempt", async () => {
  const job = await runningJob("ex-1");
  await expireLeases([job.id]);
  expect(await bundle.store.reapExpired(10)).toHaveLength(1);
  const retry = await bundle.store.transition(job.id, { call: "RunJob", executorId: "ex-2", leaseSeconds: 3600 }, SERVICE);
  expect(retry.changed).toBe(true);
  expect(retry.job).toMatchObject({ state: "RUNNING", attempt: 2, executorId: "ex-2", finishedAt: null });
  // A late report from the reaped run is fenced off.
  await expect(
    bundle.store.transition(job.id, { call: "FailJob", message: "late", diagnostic: null, attempt: 1 }, SERVICE),
  ).rejects.toMatchObject({ reason: "STALE_ATTEMPT" });
  await bundle.store.transition(job.id, FORECAST_RESULT, SERVICE);
});

test("four reapers on two store instances reaping at once reap every job exactly once", async () => {
  const replica = await bundle.replica();
  const jobs = await Promise.all(Array.from({ length: 40 }, (_, i) => runningJob(`ex-${i}`)));
  // A few of them had their cancellation requested: those are cancelled, the rest fail.
  const cancelling = new Set(jobs.slice(0, 10).map((j) => j.id));
  for (const id of cancelling) {
    await bundle.store.transition(id, { call: "RequestJobCancellation", reason: "" }, SERVICE);
  }
  await expireLeases(jobs.map((j) => j.id));

  const reaped = (
    await Promise.all([reapAll(bundle.store), reapAll(replica), reapAll(bundle.store, 2), reapAll(replica, 5)])
  ).flat();

  expect(reaped).toHaveLength(jobs.length);
  expect(new Set(reaped.map((e) => e.jobId)).size).toBe(jobs.length);
  const rows = await sql<{ id: string; state: string; reaper_events: string; revisions: number[] }>(
    bundle.databaseUrl,
    `select j.id, j.state,
            count(*) filter (where e.actor->>'name' = 'reaper')::text as reaper_events,
            array_agg(e.revision order by e.revision) as revisions
     from jobs j join job_events e on e.job_id = j.id
     where j.id = any($1::uuid[]) group by j.id, j.state`,
    [jobs.map((j) => j.id)],
  );
  expect(rows).toHaveLength(jobs.length);
  for (const row of rows) {
    expect(row.reaper_events).toBe("1");
    expect(row.state).toBe(cancelling.has(row.id) ? "CANCELLED" : "FAILED");
    expect(row.revisions).toEqual(row.revisions.map((_, i) => i + 1));
  }
});
