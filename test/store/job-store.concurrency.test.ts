// Calls on one job are serialized (docs/contract.md, transition rules): under
// any concurrency exactly one of several competing calls wins, the event log
// has revisions 1, 2, 3 … with no gap and no duplicate, each call returns the
// job as its own transaction left it, and the row equals the last event's
// snapshot.
//
// Within one store (one process) the batched writer serializes a job's calls
// before the database sees them: they go out in arrival order and never in
// two transactions at once (store/batcher.ts). So the tests on one store prove
// that order and what each batch writes, not the row lock. Across stores
// (replicas) only PostgreSQL orders them: the last tests race two stores,
// each with its own pool, at one job's row lock.

import { afterAll, beforeAll, expect, test } from "@jest/globals";
import type { EventRecord, TransitionArgs, TransitionResult } from "../../src/domain/job.js";
import { DomainError } from "../../src/domain/errors.js";
import { eventually } from "../support/watching.js";
import { FORECAST_RESULT, lockWaiters, SERVICE, type StoreBundle, createJob, storeBundle, whileRowLocked } from "./store-bundle.js";

let bundle: StoreBundle;

beforeAll(async () => {
  bundle = await storeBundle(40);
});
afterAll(async () => {
  await bundle?.close();
});

const allEvents = (jobId: string) => bundle.store.events(jobId, 0, 10_000);

/** Revisions 1..n, each once, and the row equal to the last snapshot. */
async function expectContiguousLog(jobId: string): Promise<EventRecord[]> {
  const events = await allEvents(jobId);
  expect(events.map((e) => e.revision)).toEqual(Array.from({ length: events.length }, (_, i) => i + 1));
  const row = await bundle.store.get(jobId, SERVICE, "GetJob");
  expect(row.revision).toBe(events.length);
  expect(row).toEqual(events.at(-1)!.job);
  return events;
}

test("30 simultaneous RunJob calls on one job: exactly one changes it", async () => {
  const job = await createJob(bundle.store);
  const results = await Promise.all(
    Array.from({ length: 30 }, (_, i) =>
      bundle.store.transition(job.id, { call: "RunJob", executorId: `ex-${i}`, leaseSeconds: 600 }, SERVICE),
    ),
  );
  const winners = results.filter((r) => r.changed);
  expect(winners).toHaveLength(1);
  const winner = winners[0].job;
  // The losers are no-ops that report the winner's run.
  for (const r of results) {
    expect(r.job).toEqual(winner);
  }
  const events = await expectContiguousLog(job.id);
  expect(events.map((e) => e.type)).toEqual(["CREATED", "STARTED"]);
  expect(winner.attempt).toBe(1);
});

test("simultaneous CompleteJob and FailJob on a running job: exactly one wins", async () => {
  const job = await createJob(bundle.store);
  await bundle.store.transition(job.id, { call: "RunJob", executorId: "ex", leaseSeconds: 600 }, SERVICE);
  const calls: TransitionArgs[] = Array.from({ length: 20 }, (_, i) =>
    i % 2 === 0 ? FORECAST_RESULT : { call: "FailJob", message: `failure ${i}`, diagnostic: null, attempt: 1 },
  );
  const results = await Promise.all(calls.map((args) => bundle.store.transition(job.id, args, SERVICE)));
  const winners = results.filter((r) => r.changed);
  expect(winners).toHaveLength(1);
  const final = winners[0].job;
  expect(["COMPLETED", "FAILED"]).toContain(final.state);
  for (const r of results) expect(r.job).toEqual(final);
  const events = await expectContiguousLog(job.id);
  expect(events).toHaveLength(3);
  // Whichever won, the loser left no trace: no result on a failed job, no failure on a completed one.
  if (final.state === "COMPLETED") expect(final.failures).toEqual([]);
  else expect(final.result).toBeNull();
});

test("a storm of run/fail/cancel calls from 30 clients keeps revisions 1..n gap-free, each call seeing its own write", async () => {
  const job = await createJob(bundle.store);
  const worker = async (w: number): Promise<TransitionResult[]> => {
    const results: TransitionResult[] = [];
    for (let round = 0; round < 4; round++) {
      results.push(
        await bundle.store.transition(job.id, { call: "RunJob", executorId: `ex-${w}`, leaseSeconds: 600 }, SERVICE),
      );
      results.push(
        await bundle.store.transition(job.id, { call: "FailJob", message: `w${w} r${round}`, diagnostic: null, attempt: 0 }, SERVICE),
      );
    }
    return results;
  };
  const results = (await Promise.all(Array.from({ length: 30 }, (_, w) => worker(w)))).flat();
  // Then end the job (RUNNING or FAILED after the storm) so that its final state is known.
  for (const args of [
    { call: "RunJob", executorId: "closer", leaseSeconds: 600 },
    { call: "RequestJobCancellation", reason: "end of storm" },
    { call: "CancelJob" },
  ] as const) {
    results.push(await bundle.store.transition(job.id, args, SERVICE));
  }

  const events = await expectContiguousLog(job.id);
  const changed = results.filter((r) => r.changed);
  // Every change is exactly one event, and no two calls claim the same revision.
  expect(events.length).toBe(1 + changed.length);
  const claimed = changed.map((r) => r.job.revision).sort((a, b) => a - b);
  expect(new Set(claimed).size).toBe(claimed.length);
  // Each changing call returned the job as its own transaction left it: the snapshot at its revision.
  for (const r of changed) {
    if (!r.changed) continue;
    expect(r.event).toEqual(events[r.event.revision - 1]);
    expect(r.job).toEqual(events[r.job.revision - 1].job);
  }
  // The job's counters agree with its history.
  const final = events.at(-1)!.job;
  expect(final.state).toBe("CANCELLED");
  expect(final.attempt).toBe(events.filter((e) => e.type === "STARTED").length);
  expect(final.failures).toHaveLength(events.filter((e) => e.type === "FAILED").length);
  expect(final.failures.map((f) => f.attempt)).toEqual(final.failures.map((_, i) => i + 1));
});

// Each store batches its ten calls into one transaction, and the two race. Without the row lock the loser
// would still lose here, at the event log's primary key (job_id, revision), and be retried alone: this shows
// one winner across replicas, not which mechanism gives it; the next test is decided by the row lock alone.
test("two store instances (two replicas' pools) racing RunJob on one job: one wins, the log stays contiguous", async () => {
  const replica = await bundle.replica();
  const job = await createJob(bundle.store);
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      (i % 2 ? replica : bundle.store).transition(job.id, { call: "RunJob", executorId: `ex-${i}`, leaseSeconds: 600 }, SERVICE),
    ),
  );
  expect(results.filter((r) => r.changed)).toHaveLength(1);
  await expectContiguousLog(job.id);
});

/** The value, or the DomainError's reason. */
const settle = <T>(call: Promise<T>): Promise<{ value: T } | { error: string }> =>
  call.then(
    (value) => ({ value }),
    (error: unknown) => {
      if (error instanceof DomainError) return { error: error.reason };
      throw error;
    },
  );

// A heartbeat writes the whole mutable row back, from the row as it read it, and appends no event: nothing but
// the row lock stops a heartbeat decided on a stale read from undoing a change committed meanwhile. Here both
// stores' calls are sent while a third session holds the lock, the FailJob first, each waiting before the next
// is sent, so PostgreSQL queues them in that order every run.
test("across two stores, a heartbeat that queued for the row lock behind a FailJob sees the failure: STALE_ATTEMPT, and the row stays the failure's", async () => {
  const replica = await bundle.replica();
  const job = await createJob(bundle.store);
  await bundle.store.transition(job.id, { call: "RunJob", executorId: "ex", leaseSeconds: 600 }, SERVICE);
  let failing: Promise<{ value: TransitionResult } | { error: string }> | undefined;
  let beating: Promise<{ value: unknown } | { error: string }> | undefined;
  await whileRowLocked(bundle.databaseUrl, job.id, async () => {
    failing = settle(bundle.store.transition(job.id, { call: "FailJob", message: "executor lost", diagnostic: null, attempt: 1 }, SERVICE));
    await eventually(async () => (await lockWaiters(bundle.databaseUrl)) === 1, "the FailJob to wait for the row lock");
    beating = settle(replica.heartbeat(job.id, "ex", 1, SERVICE));
    await eventually(async () => (await lockWaiters(bundle.databaseUrl)) === 2, "the heartbeat to wait behind it");
  });
  expect(await failing!).toMatchObject({ value: { changed: true, job: { state: "FAILED", revision: 3 } } });
  // A stale write would show as a heartbeat that extended the lease and a row back at RUNNING, revision 2.
  const beat = await beating!;
  const row = await bundle.store.get(job.id, SERVICE, "GetJob");
  expect({ heartbeat: "error" in beat ? beat.error : "extended the lease", row: [row.state, row.revision] }).toEqual({
    heartbeat: "STALE_ATTEMPT",
    row: ["FAILED", 3],
  });
  const events = await expectContiguousLog(job.id);
  expect(events.map((e) => e.type)).toEqual(["CREATED", "STARTED", "FAILED"]);
});
