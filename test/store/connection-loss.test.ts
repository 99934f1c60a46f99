// Connections lost mid-transaction (docs/contract.md, faults). A transaction that fails with
// its connection, or at COMMIT, gives the connection back to the pool: found
// by the outage proof (test/e2e/outage), where each database outage left the
// connections of the transactions in flight checked out for good, until the
// pool was empty and the server never recovered, and draining hung in closing
// the pool. The pool here has one connection and a short acquire timeout, so a
// single lost connection makes the next call fail. A connection lost during
// COMMIT is COMMIT_UNKNOWN, after which a retry is safe; one lost before
// COMMIT was sent is DATABASE_UNAVAILABLE, with nothing applied.

import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, expect, test } from "@jest/globals";
import type { MikroORM } from "@mikro-orm/postgresql";
import pg from "pg";
import type { BatchReport } from "../../src/store/batcher.js";
import { JobStore } from "../../src/store/job-store.js";
import { openOrm } from "../../src/store/orm.js";
import { freshDatabase, sql } from "../support/harness.js";
import { eventually } from "../support/watching.js";
import { createJob, jobFields, lockWaiters, SERVICE, stored, whileRowLocked } from "./store-bundle.js";

let databaseUrl: string;
let orm: MikroORM;
let store: JobStore;
let pool: pg.Pool | undefined;

beforeAll(async () => {
  databaseUrl = await freshDatabase();
  orm = await openOrm({ databaseUrl, poolSize: 1, acquireTimeoutMs: 3000, onPool: (p) => (pool = p) });
  // Two write transactions at once on a one-connection pool: the second one waits for the pool itself.
  store = new JobStore(orm, () => {}, { batchesInFlight: 2 });
});
afterAll(async () => {
  // A connection still lent out would keep close() waiting for ever: the tests above have failed then anyway.
  await Promise.race([orm?.close(true), new Promise((r) => setTimeout(r, 5_000).unref())]);
});

/**
 * A trigger (`kind`: "trigger" or "constraint trigger", fired `when` on `event`)
 * whose backend terminates itself the first time only: a sequence does not roll back.
 */
async function loseConnectionOnce(name: string, kind: string, event: string, when: string): Promise<void> {
  await sql(
    databaseUrl,
    `create sequence lose_${name}_once;
     create function lose_connection_${name}() returns trigger language plpgsql as $$
       begin
         if nextval('lose_${name}_once') = 1 then perform pg_terminate_backend(pg_backend_pid()); end if;
         return null;
       end $$;
     create ${kind} lose_connection_${name} ${event} for each row when (${when}) execute function lose_connection_${name}();`,
  );
}

const lentOut = () => (pool ? pool.totalCount - pool.idleCount : 0);
const run = (jobId: string, executorId = "executor-1") => store.transition(jobId, { call: "RunJob", executorId, leaseSeconds: 0 }, SERVICE);

test("a transaction whose connection is killed while it waits for a row lock releases it: the next calls get a connection", async () => {
  for (let round = 1; round <= 3; round++) {
    const job = await createJob(store);
    // Another session holds the job's row lock, so the transition's lock statement waits…
    await whileRowLocked(databaseUrl, job.id, async () => {
      const waiting = run(job.id);
      waiting.catch(() => undefined);
      // …and its connection dies while it does (as when PostgreSQL shuts down).
      await eventually(async () => {
        const killed = await sql<{ ok: boolean }>(
          databaseUrl,
          "select pg_terminate_backend(pid) as ok from pg_stat_activity where datname = current_database() and application_name = 'jobs' and wait_event_type = 'Lock'",
        );
        return killed.length > 0;
      }, "the transition to wait for the row lock");
      await expect(waiting).rejects.toMatchObject({ reason: "DATABASE_UNAVAILABLE" });
    });
    await eventually(() => lentOut() === 0, `round ${round}: the pool's connection to be back`, 5_000);
    expect((await run(job.id)).changed).toBe(true);
  }
});

test("a transaction whose COMMIT fails releases its connection", async () => {
  // A deferred check that fails at COMMIT, for one executor name only (this database is the file's own).
  await sql(
    databaseUrl,
    `create function refuse_at_commit() returns trigger language plpgsql as $$ begin raise exception 'refused at commit'; end $$;
     create constraint trigger refuse_at_commit after update on jobs deferrable initially deferred
       for each row when (new.executor_id = 'refused-at-commit') execute function refuse_at_commit();`,
  );
  for (let round = 1; round <= 3; round++) {
    const job = await createJob(store);
    await expect(run(job.id, "refused-at-commit")).rejects.toThrow();
    await eventually(() => lentOut() === 0, `round ${round}: the pool's connection to be back`, 5_000);
    // Nothing of the refused transaction is in; the job takes the next change.
    expect((await run(job.id)).job).toMatchObject({ state: "RUNNING", revision: 2, executorId: "executor-1" });
  }
});

test("a connection lost during COMMIT is UNAVAILABLE COMMIT_UNKNOWN; nothing is half-applied, and a retry applies it once", async () => {
  // At COMMIT, the first time only (a sequence does not roll back), the backend terminates itself: the write was answered, the COMMIT never is.
  await loseConnectionOnce("at_commit", "constraint trigger", "after update on jobs deferrable initially deferred", "new.executor_id = 'lost-at-commit'");
  const job = await createJob(store);
  await expect(run(job.id, "lost-at-commit")).rejects.toMatchObject({ kind: "unavailable", reason: "COMMIT_UNKNOWN" });
  await eventually(() => lentOut() === 0, "the pool's connection to be back", 5_000);
  // Here it did not commit: the job is as it was, with one event.
  const [{ revision, events }] = await sql<{ revision: number; events: string }>(
    databaseUrl,
    "select revision, (select count(*) from job_events where job_id = $1) as events from jobs where id = $1",
    [job.id],
  );
  expect([revision, Number(events)]).toEqual([1, 1]);
  // The same call again: applied exactly once.
  const retried = await run(job.id, "lost-at-commit");
  expect([retried.changed, retried.job.state, retried.job.revision]).toEqual([true, "RUNNING", 2]);
  expect((await run(job.id, "lost-at-commit")).changed).toBe(false);
});

// The same for a batch of three calls on one transaction: the connection dies after the write's reply (the
// writer sends COMMIT only then) and before COMMIT's. Every call of the batch gets COMMIT_UNKNOWN: none may be
// answered as done, and none may be quietly written again by the writer (a CreateJob without a request_id
// written twice is two jobs). Here PostgreSQL did not commit, so each retry applies its call once.
test("a batch whose connection is lost during COMMIT: every call in it is COMMIT_UNKNOWN, none is half-applied, and each retry applies once", async () => {
  await loseConnectionOnce("at_batch_commit", "constraint trigger", "after update on jobs deferrable initially deferred", "new.executor_id = 'lost-at-batch-commit'");
  const batches: BatchReport[] = [];
  const recording = new JobStore(orm, () => {}, { onBatch: (report) => batches.push(report) });
  const [first, second] = [await createJob(recording), await createJob(recording)];
  const requestId = randomUUID();
  batches.length = 0;
  // Sent on one turn of the event loop: one batch.
  const calls = [
    recording.transition(first.id, { call: "RunJob", executorId: "lost-at-batch-commit", leaseSeconds: 0 }, SERVICE),
    recording.transition(second.id, { call: "RunJob", executorId: "executor-2", leaseSeconds: 0 }, SERVICE),
    recording.create(jobFields({ requestId }), SERVICE),
  ];
  const answers = await Promise.all(calls.map((call) => call.then(() => "answered", (error: { reason?: string }) => error.reason)));
  expect(answers).toEqual(["COMMIT_UNKNOWN", "COMMIT_UNKNOWN", "COMMIT_UNKNOWN"]);
  expect(batches.map((b) => [b.calls, b.outcome, b.alone])).toEqual([[3, "failed", false]]);
  await eventually(() => lentOut() === 0, "the pool's connection to be back", 5_000);
  // Nothing of the batch is in.
  for (const job of [first, second]) expect(await stored(databaseUrl, job.id)).toMatchObject({ row: { revision: 1, state: "PENDING" }, events: 1 });
  expect(await sql(databaseUrl, "select 1 from jobs where request_id = $1", [requestId])).toEqual([]);
  // Each call again: applied once; and once more: already in.
  const retried = await Promise.all([
    recording.transition(first.id, { call: "RunJob", executorId: "lost-at-batch-commit", leaseSeconds: 0 }, SERVICE),
    recording.transition(second.id, { call: "RunJob", executorId: "executor-2", leaseSeconds: 0 }, SERVICE),
    recording.create(jobFields({ requestId }), SERVICE),
  ]);
  expect([retried[0].changed, retried[0].job.revision, retried[1].changed, retried[1].job.revision, retried[2].created]).toEqual([true, 2, true, 2, true]);
  const again = await recording.create(jobFields({ requestId }), SERVICE);
  expect([again.created, again.job.id]).toEqual([false, retried[2].job.id]);
  expect((await run(first.id, "lost-at-batch-commit")).changed).toBe(false);
  for (const job of [first, second]) expect(await stored(databaseUrl, job.id)).toMatchObject({ row: { revision: 2, state: "RUNNING" }, events: 2 });
});

// A batch's statements go out one at a time and COMMIT only after the write's reply: a connection lost before
// COMMIT was sent leaves nothing applied, and the answer says so (DATABASE_UNAVAILABLE, not COMMIT_UNKNOWN).
test("a connection lost while the transition's write runs, before COMMIT, is DATABASE_UNAVAILABLE with nothing applied; the retry applies it once", async () => {
  // During the write, the first time only, the backend terminates itself: the write is never answered and COMMIT never sent.
  await loseConnectionOnce("at_write", "trigger", "after update on jobs", "new.executor_id = 'lost-at-write'");
  const job = await createJob(store);
  await expect(run(job.id, "lost-at-write")).rejects.toMatchObject({ kind: "unavailable", reason: "DATABASE_UNAVAILABLE" });
  await eventually(() => lentOut() === 0, "the pool's connection to be back", 5_000);
  expect(await stored(databaseUrl, job.id)).toMatchObject({ row: { revision: 1 }, events: 1 });
  const retried = await run(job.id, "lost-at-write");
  expect([retried.changed, retried.job.state, retried.job.revision]).toEqual([true, "RUNNING", 2]);
});

test("a connection lost while CreateJob's write runs, before COMMIT, is DATABASE_UNAVAILABLE with no job; a retry with the same request_id gives one job", async () => {
  await loseConnectionOnce("at_create", "trigger", "after insert on jobs", "new.data_plane_id = 'lost-at-create'");
  const requestId = randomUUID();
  await expect(createJob(store, { dataPlaneId: "lost-at-create", requestId })).rejects.toMatchObject({ kind: "unavailable", reason: "DATABASE_UNAVAILABLE" });
  await eventually(() => lentOut() === 0, "the pool's connection to be back", 5_000);
  expect(await sql(databaseUrl, "select 1 from jobs where request_id = $1", [requestId])).toEqual([]);
  const retried = await store.create(jobFields({ dataPlaneId: "lost-at-create", requestId }), SERVICE);
  expect(retried.created).toBe(true);
  const again = await store.create(jobFields({ dataPlaneId: "lost-at-create", requestId }), SERVICE);
  expect([again.created, again.job.id]).toEqual([false, retried.job.id]);
});

/** Runs `body` while the pool's one connection is taken by a transition that waits on another session's row lock. */
async function withPoolExhausted(body: () => Promise<void>): Promise<void> {
  const blocked = await createJob(store);
  await whileRowLocked(databaseUrl, blocked.id, async () => {
    run(blocked.id).catch(() => undefined);
    await eventually(async () => (await lockWaiters(databaseUrl)) > 0, "the transition to wait for the row lock");
    await body();
  });
}

test("a call that cannot get a connection is DATABASE_UNAVAILABLE, not COMMIT_UNKNOWN: nothing was sent", async () => {
  await withPoolExhausted(async () => {
    await expect(createJob(store)).rejects.toMatchObject({ kind: "unavailable", reason: "DATABASE_UNAVAILABLE" });
  });
});

test("calls queued on one job behind a call that gets no connection fail with it, not one acquire timeout after another", async () => {
  const job = await createJob(store);
  await withPoolExhausted(async () => {
    // Three calls on the job: the first waits for a connection, the others wait behind it.
    const settledAt: number[] = [];
    const calls = [1, 2, 3].map((i) =>
      run(job.id, `executor-${i}`).then(
        () => "changed",
        (error: { reason?: string }) => {
          settledAt.push(performance.now());
          return error.reason;
        },
      ),
    );
    expect(await Promise.all(calls)).toEqual(["DATABASE_UNAVAILABLE", "DATABASE_UNAVAILABLE", "DATABASE_UNAVAILABLE"]);
    // Each on its own would have waited a whole acquire timeout (3 s here) after the one before it.
    expect(Math.max(...settledAt) - Math.min(...settledAt)).toBeLessThan(1_000);
  });
});
