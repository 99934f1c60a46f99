// The batched writer: calls that arrive together share one transaction, and
// each gets exactly the answer it would have had alone, in arrival order.
// Every store here reports its write transactions, so each test can say
// which batches formed, not only what the calls answered.

import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { DomainError } from "../../src/domain/errors.js";
import type { TransitionArgs } from "../../src/domain/job.js";
import type { BatchReport } from "../../src/store/batcher.js";
import { type CommittedEvent, JobStore, type JobStoreOptions } from "../../src/store/job-store.js";
import { sql } from "../support/harness.js";
import { createJob, FORECAST_RESULT, jobFields, SERVICE, type StoreBundle, storeBundle, USER_A, USER_B, whileRowLocked } from "./store-bundle.js";

let bundle: StoreBundle;
beforeAll(async () => {
  bundle = await storeBundle(10);
});
afterAll(async () => {
  await bundle?.close();
});

/** A store on the bundle's pool that records its batches and its commits. */
function recordingStore(options: JobStoreOptions = {}) {
  const batches: BatchReport[] = [];
  const commits: CommittedEvent[][] = [];
  const store = new JobStore(bundle.orm, (committed) => commits.push([...committed]), {
    ...options,
    onBatch: (report) => batches.push(report),
  });
  return { store, batches, commits };
}

const run = (executorId: string): TransitionArgs => ({ call: "RunJob", executorId, leaseSeconds: 600 });
const fail = (message: string): TransitionArgs => ({ call: "FailJob", message, diagnostic: null, attempt: 0 });

/** Settles every promise: the value, or the error's reason (a DomainError's) or message. */
const settle = (calls: Promise<unknown>[]) =>
  Promise.all(calls.map((call) => call.then((value) => ({ value }), (error: unknown) => ({ error: error instanceof DomainError ? error.reason : String(error) }))));

test("calls made together share one transaction, and calls on one job see each other in arrival order", async () => {
  const { store, batches } = recordingStore();
  const job = await createJob(store);
  batches.length = 0;
  const [started, completed, runAgain, failed] = await Promise.all([
    store.transition(job.id, run("ex-1"), SERVICE),
    store.transition(job.id, FORECAST_RESULT, SERVICE),
    store.transition(job.id, run("ex-2"), SERVICE),
    store.transition(job.id, fail("too late"), SERVICE),
  ]);
  expect(batches.map((b) => [b.calls, b.outcome])).toEqual([[4, "committed"]]);
  // Exactly what four calls one after the other would have answered.
  expect([started.changed, started.job.state, started.job.revision, started.job.executorId]).toEqual([true, "RUNNING", 2, "ex-1"]);
  expect([completed.changed, completed.job.state, completed.job.revision]).toEqual([true, "COMPLETED", 3]);
  expect([runAgain.changed, runAgain.job.state, runAgain.job.revision]).toEqual([false, "COMPLETED", 3]);
  expect([failed.changed, failed.job.state, failed.job.revision]).toEqual([false, "COMPLETED", 3]);
  // Each returned job is the job as that call left it; the log has one event per change and the row equals the last.
  const events = await store.events(job.id, 0, 100);
  expect(events.map((e) => [e.revision, e.type])).toEqual([
    [1, "CREATED"],
    [2, "STARTED"],
    [3, "COMPLETED"],
  ]);
  expect(events[1].job).toEqual(started.job);
  expect(events[2].job).toEqual(completed.job);
  expect(await store.get(job.id, SERVICE, "GetJob")).toEqual(completed.job);
});

test("a call the rules refuse is refused alone; its batch neighbours are applied", async () => {
  const { store, batches } = recordingStore();
  const [a, b, foreign] = [await createJob(store), await createJob(store), await createJob(store, { companyId: "200" })];
  batches.length = 0;
  const answers = await settle([
    store.transition(a.id, run("ex-a"), SERVICE),
    store.transition(b.id, { call: "CancelJob" }, SERVICE),
    store.transition(foreign.id, run("ex-user"), USER_A),
    store.transition(b.id, run("ex-b"), SERVICE),
    store.heartbeat(a.id, "ex-a", 1, SERVICE),
    store.heartbeat(b.id, "ex-other", 1, SERVICE),
  ]);
  expect(batches.map((batch) => batch.calls)).toEqual([6]);
  expect(answers.map((answer) => ("error" in answer ? answer.error : "ok"))).toEqual([
    "ok",
    "INVALID_TRANSITION",
    "JOB_NOT_FOUND",
    "ok",
    "ok",
    "STALE_ATTEMPT",
  ]);
  expect((await store.get(a.id, SERVICE, "GetJob")).state).toBe("RUNNING");
  expect((await store.get(b.id, SERVICE, "GetJob")).executorId).toBe("ex-b");
  expect((await store.get(foreign.id, SERVICE, "GetJob")).state).toBe("PENDING");
});

test("a call PostgreSQL refuses fails alone: its batch is retried a call at a time and the neighbours succeed", async () => {
  const { store, batches } = recordingStore();
  const jobs = [await createJob(store), await createJob(store), await createJob(store), await createJob(store)];
  batches.length = 0;
  // The message reaches PostgreSQL in a JSON value, where it refuses U+0000 (the RPC layer refuses it first; the store does not).
  const answers = await settle([
    store.transition(jobs[0].id, run("ex-0"), SERVICE),
    store.transition(jobs[1].id, fail("poisoned \u0000 message"), SERVICE),
    store.transition(jobs[2].id, fail("an ordinary failure"), SERVICE),
    store.create(jobFields(), SERVICE),
  ]);
  expect("error" in answers[1]).toBe(true);
  expect((answers[1] as { error: string }).error).not.toMatch(/^(DATABASE_UNAVAILABLE|COMMIT_UNKNOWN)$/);
  expect([answers[0], answers[2], answers[3]].every((answer) => "value" in answer)).toBe(true);
  expect(batches.map((b) => [b.calls, b.outcome, b.alone])).toEqual([
    [4, "failed", false],
    [1, "committed", true],
    [1, "failed", true],
    [1, "committed", true],
    [1, "committed", true],
  ]);
  expect((await store.get(jobs[0].id, SERVICE, "GetJob")).state).toBe("RUNNING");
  expect((await store.get(jobs[1].id, SERVICE, "GetJob")).state).toBe("PENDING");
  expect((await store.get(jobs[2].id, SERVICE, "GetJob")).state).toBe("FAILED");
});

test("one request_id sent many times, in one batch and in the next: one job, created once, the same for every call", async () => {
  const { store, batches } = recordingStore();
  const requestId = "7d1f3f4e-8f0a-4c55-9a43-5e9c3b2f6a10";
  batches.length = 0;
  const first = await Promise.all(Array.from({ length: 12 }, () => store.create(jobFields({ requestId }), USER_A)));
  const second = await Promise.all(Array.from({ length: 5 }, () => store.create(jobFields({ requestId }), USER_A)));
  expect(batches.map((b) => b.calls)).toEqual([12, 5]);
  const all = [...first, ...second];
  expect(new Set(all.map((answer) => answer.job.id)).size).toBe(1);
  expect(all.filter((answer) => answer.created)).toHaveLength(1);
  expect(first[0].created).toBe(true);
  // Another principal's request_id space is its own.
  const other = await store.create(jobFields({ requestId, companyId: "200" }), USER_B);
  expect([other.created, other.job.id === first[0].job.id]).toEqual([true, false]);
  const [{ count }] = await sql<{ count: string }>(bundle.databaseUrl, "select count(*) from jobs where request_id = $1", [requestId]);
  expect(Number(count)).toBe(2);
});

test("WRITE_BATCH_MAX_CALLS=1: every transaction carries one call", async () => {
  const { store, batches } = recordingStore({ batchMaxCalls: 1 });
  const job = await createJob(store);
  batches.length = 0;
  const [, heartbeat, completed] = await Promise.all([
    store.transition(job.id, run("ex-1"), SERVICE),
    store.heartbeat(job.id, "ex-1", 1, SERVICE),
    store.transition(job.id, FORECAST_RESULT, SERVICE),
    store.create(jobFields(), SERVICE),
  ]);
  expect(batches.map((b) => b.calls)).toEqual([1, 1, 1, 1]);
  // Calls on one job keep their arrival order across batches too.
  expect(heartbeat.state).toBe("RUNNING");
  expect(completed.job.state).toBe("COMPLETED");
});

test("calls that arrive while the batches in flight are written wait, and the next batch takes them all", async () => {
  const { store, batches } = recordingStore({ maxQueueMs: 30_000 });
  const jobs = await Promise.all(Array.from({ length: 40 }, () => createJob(store)));
  batches.length = 0;
  const calls: Promise<unknown>[] = [];
  // The first batch waits on a row lock, so everything after it queues behind it.
  await whileRowLocked(bundle.databaseUrl, jobs[0].id, async () => {
    calls.push(store.transition(jobs[0].id, run("ex-0"), SERVICE));
    await waitFor(() => store.writeQueue.writing === 1);
    for (const [i, job] of jobs.slice(1).entries()) calls.push(store.transition(job.id, run(`ex-${i + 1}`), SERVICE));
    await waitFor(() => store.writeQueue.waiting === 39);
  });
  await Promise.all(calls);
  expect(batches.map((b) => b.calls)).toEqual([1, 39]);
});

test("a call that waits for a batch longer than its limit fails UNAVAILABLE saying so, and is not written later", async () => {
  const { store } = recordingStore({ maxQueueMs: 200 });
  const [held, queued] = [await createJob(store), await createJob(store)];
  let first: Promise<unknown> | undefined;
  await whileRowLocked(bundle.databaseUrl, held.id, async () => {
    first = store.transition(held.id, run("ex-held"), SERVICE);
    await waitFor(() => store.writeQueue.writing === 1);
    await expect(store.transition(queued.id, run("ex-queued"), SERVICE)).rejects.toMatchObject({ kind: "unavailable", reason: "OVERLOADED" });
  });
  await first;
  expect((await store.get(queued.id, SERVICE, "GetJob")).state).toBe("PENDING");
});

test("a batch's events reach the commit listener in call order, each job's later events naming this transaction as their predecessor's", async () => {
  const { store, commits } = recordingStore();
  const [a, b] = [await createJob(store), await createJob(store)];
  commits.length = 0;
  await Promise.all([
    store.transition(a.id, run("ex-a"), SERVICE),
    store.transition(b.id, run("ex-b"), SERVICE),
    store.transition(a.id, FORECAST_RESULT, SERVICE),
  ]);
  expect(commits).toHaveLength(1);
  const [batch] = commits;
  expect(batch.map(({ event }) => [event.jobId, event.revision])).toEqual([
    [a.id, 2],
    [b.id, 2],
    [a.id, 3],
  ]);
  const [aStarted, bStarted, aCompleted] = batch;
  expect(new Set(batch.map((c) => c.xid)).size).toBe(1);
  // The first change of each job names the transaction of its CREATED event; a's second names this batch's own.
  for (const first of [aStarted, bStarted]) {
    expect(first.previousXid).not.toBeNull();
    expect(first.previousXid! < first.xid).toBe(true);
  }
  expect(aCompleted.previousXid).toBe(aCompleted.xid);
});

test("the reaper's expiry re-checks the lease under the row lock: a heartbeat that got in first keeps the job", async () => {
  const { store } = recordingStore();
  const [kept, lost] = [await createJob(store), await createJob(store)];
  for (const job of [kept, lost]) await store.transition(job.id, run("ex"), SERVICE);
  // Both leases ran out a minute ago by the database's clock; then one executor heartbeats.
  await sql(bundle.databaseUrl, "update jobs set lease_expires_at = now() - interval '1 minute' where id = any($1::uuid[])", [[kept.id, lost.id]]);
  await store.heartbeat(kept.id, "ex", 1, SERVICE);
  const reaped = await store.reapExpired(10);
  expect(reaped.map((event) => [event.jobId, event.toState])).toEqual([[lost.id, "FAILED"]]);
  expect((await store.get(kept.id, SERVICE, "GetJob")).state).toBe("RUNNING");
  await expect(store.heartbeat(lost.id, "ex", 1, SERVICE)).rejects.toMatchObject({ reason: "STALE_ATTEMPT" });
  // Reaping again finds nothing: each expired job is reaped once.
  expect(await store.reapExpired(10)).toEqual([]);
});

async function waitFor(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
