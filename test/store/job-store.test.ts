// JobStore against a real PostgreSQL: create (and its idempotency), get,
// transition and heartbeat write exactly what docs/contract.md §4 and §9 say, and nothing
// when a call is a no-op or rejected. Concurrency, the reaper, listing and
// retention have their own files (job-store.*.test.ts).

import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import {
  DomainError,
  InvalidTransition,
  JobNotFound,
  ResultTypeMismatch,
  StaleAttempt,
} from "../../src/domain/errors.js";
import type { JobRecord } from "../../src/domain/job.js";
import { sql } from "../support/harness.js";
import {
  createJob,
  databaseNow,
  FORECAST_RESULT,
  jobFields,
  OTHER_SERVICE,
  SERVICE,
  type StoreBundle,
  storeBundle,
  stored,
  USER_A,
  USER_A2,
  USER_B,
} from "./store-bundle.js";

let bundle: StoreBundle;

beforeAll(async () => {
  bundle = await storeBundle();
});
afterAll(async () => {
  await bundle?.close();
});

const allEvents = (jobId: string) => bundle.store.events(jobId, 0, 1000);

async function countRows(table: "jobs" | "job_events"): Promise<number> {
  const [{ count }] = await sql<{ count: string }>(bundle.databaseUrl, `select count(*) from ${table}`);
  return Number(count);
}

/** Runs `work` and checks that it left the job and the whole database exactly as they were. */
async function expectNothingWritten(job: JobRecord, work: () => Promise<unknown>): Promise<void> {
  const before = await stored(bundle.databaseUrl, job.id);
  const rowsBefore = [await countRows("jobs"), await countRows("job_events")];
  const commitsBefore = bundle.commits.length;
  await work();
  expect(await stored(bundle.databaseUrl, job.id)).toEqual(before);
  expect([await countRows("jobs"), await countRows("job_events")]).toEqual(rowsBefore);
  expect(bundle.commits.length).toBe(commitsBefore);
  expect(await bundle.store.get(job.id, SERVICE, "GetJob")).toEqual(job);
}

async function rejection(promise: Promise<unknown>): Promise<DomainError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof DomainError) return error;
    throw error;
  }
  throw new Error("expected the call to be rejected");
}

describe("create", () => {
  test("writes the job at revision 1 and a CREATED event whose snapshot equals the row", async () => {
    const { job, created } = await bundle.store.create(jobFields({ companyId: "100", dataPlaneId: "dp-9" }), USER_A);
    expect(created).toBe(true);
    expect(job).toMatchObject({
      state: "PENDING",
      revision: 1,
      attempt: 0,
      executorId: "",
      companyId: "100",
      dataPlaneId: "dp-9",
      createdBy: USER_A,
      input: { forecast: { nql: "select 1" } },
      failures: [],
      result: null,
    });
    expect(job.updatedAt).toBe(job.createdAt);

    const row = await bundle.store.get(job.id, SERVICE, "GetJob");
    expect(row).toEqual(job);
    const events = await allEvents(job.id);
    expect(events).toHaveLength(1);
    expect(events[0]).toEqual({
      jobId: job.id,
      revision: 1,
      type: "CREATED",
      fromState: null,
      toState: "PENDING",
      actor: USER_A,
      occurredAt: job.createdAt,
      previousExecutorId: "",
      job: row,
    });
    // The notifier hears of exactly what was committed.
    expect(bundle.commits.at(-1)).toEqual(events);
  });

  test("the same request_id by the same principal returns the same job and writes nothing new, even after the job moved on", async () => {
    const requestId = randomUUID();
    const first = await bundle.store.create(jobFields({ requestId }), SERVICE);
    expect(first.created).toBe(true);
    const counts = [await countRows("jobs"), await countRows("job_events")];
    const commits = bundle.commits.length;

    // Whatever the rest of the request says.
    const again = await bundle.store.create(
      jobFields({ requestId, type: "HEALTH_CHECK", companyId: "999", input: null }),
      { ...SERVICE },
    );
    expect(again).toEqual({ job: first.job, created: false });
    expect([await countRows("jobs"), await countRows("job_events")]).toEqual(counts);
    expect(bundle.commits.length).toBe(commits);

    const moved = await bundle.store.transition(first.job.id, { call: "RunJob", executorId: "ex", leaseSeconds: 600 }, SERVICE);
    const afterMove = await bundle.store.create(jobFields({ requestId }), SERVICE);
    expect(afterMove).toEqual({ job: moved.job, created: false });
    expect(afterMove.job.state).toBe("RUNNING");
    expect(await countRows("jobs")).toBe(counts[0]);
  });

  test("another principal's request_id space is separate", async () => {
    const requestId = randomUUID();
    const ids = new Set<string>();
    for (const principal of [USER_A, USER_A2, USER_B, SERVICE, OTHER_SERVICE]) {
      const companyId = principal.type === "api_user" ? principal.companyId : "100";
      const { job, created } = await bundle.store.create(jobFields({ requestId, companyId }), principal);
      expect(created).toBe(true);
      ids.add(job.id);
    }
    expect(ids.size).toBe(5);
    // Each principal still gets its own job back on a retry.
    const retry = await bundle.store.create(jobFields({ requestId, companyId: "100" }), USER_A2);
    expect(retry.created).toBe(false);
    expect(ids.has(retry.job.id)).toBe(true);
    expect(retry.job.createdBy).toEqual(USER_A2);
  });

  test("20 concurrent creates with one request_id make exactly one job", async () => {
    const requestId = randomUUID();
    const commits = bundle.commits.length;
    const results = await Promise.all(
      Array.from({ length: 20 }, () => bundle.store.create(jobFields({ requestId }), SERVICE)),
    );
    const ids = new Set(results.map((r) => r.job.id));
    expect(ids.size).toBe(1);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    const [jobId] = ids;
    const rows = await sql(bundle.databaseUrl, "select id from jobs where request_id = $1", [requestId]);
    expect(rows).toEqual([{ id: jobId }]);
    expect(await allEvents(jobId)).toHaveLength(1);
    expect(bundle.commits.length).toBe(commits + 1);
  });
});

describe("visibility", () => {
  test("an api_user gets JobNotFound for another company's job; its own company and services see it", async () => {
    const job = await createJob(bundle.store, { companyId: "200" }, USER_B);
    const error = await rejection(bundle.store.get(job.id, USER_A, "GetJob"));
    expect(error).toBeInstanceOf(JobNotFound);
    expect(error.reason).toBe("JOB_NOT_FOUND");
    expect(error.metadata).toEqual({ job_id: job.id, call: "GetJob" });
    expect(await bundle.store.get(job.id, USER_B, "GetJob")).toEqual(job);
    expect(await bundle.store.get(job.id, SERVICE, "GetJob")).toEqual(job);
  });

  test("another company's transitions and heartbeats are JobNotFound and write nothing", async () => {
    const job = await createJob(bundle.store, { companyId: "200" }, SERVICE);
    const running = (await bundle.store.transition(job.id, { call: "RunJob", executorId: "ex", leaseSeconds: 600 }, SERVICE)).job;
    await expectNothingWritten(running, async () => {
      for (const args of [
        { call: "CompleteJob", result: { healthCheck: {} }, resultCase: "healthCheck", attempt: 0 } as const,
        { call: "FailJob", message: "x", diagnostic: null, attempt: 0 } as const,
        { call: "RequestJobCancellation", reason: "" } as const,
      ]) {
        // Not even the mismatched result type is revealed: visibility comes first.
        const error = await rejection(bundle.store.transition(job.id, args, USER_A));
        expect(error).toBeInstanceOf(JobNotFound);
        expect(error.metadata.call).toBe(args.call);
      }
      expect(await rejection(bundle.store.heartbeat(job.id, "ex", 1, USER_A))).toBeInstanceOf(JobNotFound);
    });
    // The owning company's user may act on it.
    const cancelled = await bundle.store.transition(job.id, { call: "RequestJobCancellation", reason: "r" }, USER_B);
    expect(cancelled.changed).toBe(true);
  });

  test("a job id that does not exist is JobNotFound for everyone", async () => {
    const missing = randomUUID();
    expect(await rejection(bundle.store.get(missing, SERVICE, "GetJob"))).toBeInstanceOf(JobNotFound);
    expect(await rejection(bundle.store.transition(missing, { call: "CancelJob" }, SERVICE))).toBeInstanceOf(JobNotFound);
    expect(await rejection(bundle.store.heartbeat(missing, "ex", 1, SERVICE))).toBeInstanceOf(JobNotFound);
  });
});

describe("transition", () => {
  test("each move writes the row and exactly one event; the row equals the last event's snapshot", async () => {
    const job = await createJob(bundle.store);
    const steps = [
      { args: { call: "RunJob", executorId: "ex-1", leaseSeconds: 600 } as const, type: "STARTED", to: "RUNNING" },
      { args: { call: "FailJob", message: "boom", diagnostic: { code: 7 }, attempt: 1 } as const, type: "FAILED", to: "FAILED" },
      { args: { call: "RunJob", executorId: "ex-2", leaseSeconds: 600 } as const, type: "STARTED", to: "RUNNING" },
      { args: { call: "RequestJobCancellation", reason: "stop" } as const, type: "CANCELLATION_REQUESTED", to: "PENDING_CANCELLATION" },
      { args: { call: "CancelJob" } as const, type: "CANCELLED", to: "CANCELLED" },
    ];
    let previous = job;
    for (const [i, step] of steps.entries()) {
      const commits = bundle.commits.length;
      const result = await bundle.store.transition(job.id, step.args, SERVICE);
      if (!result.changed) throw new Error(`${step.args.call} did not change the job`);
      expect(result.job.revision).toBe(i + 2);
      expect(result.job.state).toBe(step.to);

      const events = await allEvents(job.id);
      expect(events.map((e) => e.revision)).toEqual(Array.from({ length: i + 2 }, (_, k) => k + 1));
      const last = events.at(-1)!;
      expect(last).toMatchObject({ type: step.type, fromState: previous.state, toState: step.to, actor: SERVICE });
      expect(last.previousExecutorId).toBe(previous.executorId);
      expect(last).toEqual(result.event);

      const row = await bundle.store.get(job.id, SERVICE, "GetJob");
      expect(row).toEqual(last.job);
      expect(row).toEqual(result.job);
      expect(bundle.commits.length).toBe(commits + 1);
      expect(bundle.commits.at(-1)).toEqual([last]);
      previous = row;
    }
    expect(previous.attempt).toBe(2);
    expect(previous.failures).toHaveLength(1);
    expect(previous.failures[0]).toMatchObject({ attempt: 1, executorId: "ex-1", message: "boom", diagnostic: { code: 7 } });
  });

  test("timestamps come from the database's clock, at microsecond resolution", async () => {
    const before = await databaseNow(bundle.databaseUrl);
    const job = await createJob(bundle.store);
    const run = await bundle.store.transition(job.id, { call: "RunJob", executorId: "ex", leaseSeconds: 90 }, SERVICE);
    const done = await bundle.store.transition(job.id, FORECAST_RESULT, SERVICE);
    const after = await databaseNow(bundle.databaseUrl);

    const stamps = [job.createdAt, run.job.startedAt!, run.job.updatedAt, done.job.finishedAt!, done.job.updatedAt];
    for (const t of stamps) {
      expect(t).toBeGreaterThanOrEqual(before);
      expect(t).toBeLessThanOrEqual(after);
    }
    expect(run.job.updatedAt).toBeGreaterThan(job.createdAt);
    expect(done.job.updatedAt).toBeGreaterThan(run.job.updatedAt);
    expect(run.job.leaseExpiresAt).toBe(run.job.updatedAt + 90_000_000);
    // What is stored is what was returned, to the microsecond.
    const [row] = await sql<{ started: string; finished: string; occurred: string }>(
      bundle.databaseUrl,
      `select (extract(epoch from j.started_at) * 1000000)::int8::text as started,
              (extract(epoch from j.finished_at) * 1000000)::int8::text as finished,
              (extract(epoch from e.occurred_at) * 1000000)::int8::text as occurred
       from jobs j join job_events e on e.job_id = j.id and e.revision = j.revision where j.id = $1`,
      [job.id],
    );
    expect(row).toEqual({
      started: String(run.job.startedAt),
      finished: String(done.job.finishedAt),
      occurred: String(done.job.updatedAt),
    });
    // A JavaScript clock would give whole milliseconds every time; PostgreSQL's has microseconds.
    expect(stamps.some((t) => t % 1000 !== 0)).toBe(true);
  });

  test("a no-op returns the job unchanged and writes nothing", async () => {
    const job = await createJob(bundle.store);
    await bundle.store.transition(job.id, { call: "RunJob", executorId: "ex-1", leaseSeconds: 600 }, SERVICE);
    const running = await bundle.store.transition(job.id, { call: "RequestJobCancellation", reason: "first" }, SERVICE);
    await expectNothingWritten(running.job, async () => {
      const again = await bundle.store.transition(job.id, { call: "RequestJobCancellation", reason: "second" }, SERVICE);
      expect(again).toEqual({ changed: false, job: running.job });
    });

    const completed = await bundle.store.transition(job.id, FORECAST_RESULT, SERVICE);
    await expectNothingWritten(completed.job, async () => {
      for (const args of [
        { call: "RunJob", executorId: "ex-2", leaseSeconds: 600 } as const,
        FORECAST_RESULT,
        { call: "FailJob", message: "late", diagnostic: null, attempt: 0 } as const,
        { call: "CancelJob" } as const,
      ]) {
        expect(await bundle.store.transition(job.id, args, SERVICE)).toEqual({ changed: false, job: completed.job });
      }
    });
  });

  test("RunJob on a RUNNING job is a no-op whoever asks: the job keeps its executor", async () => {
    const job = await createJob(bundle.store);
    const first = await bundle.store.transition(job.id, { call: "RunJob", executorId: "ex-1", leaseSeconds: 600 }, SERVICE);
    await expectNothingWritten(first.job, async () => {
      const second = await bundle.store.transition(job.id, { call: "RunJob", executorId: "ex-2", leaseSeconds: 5 }, OTHER_SERVICE);
      expect(second.changed).toBe(false);
      expect(second.job.executorId).toBe("ex-1");
    });
  });

  test("rejected calls write nothing", async () => {
    const pending = await createJob(bundle.store);
    await expectNothingWritten(pending, async () => {
      const error = await rejection(bundle.store.transition(pending.id, { call: "CancelJob" }, SERVICE));
      expect(error).toBeInstanceOf(InvalidTransition);
      expect(error.metadata).toEqual({ job_id: pending.id, state: "JOB_STATE_PENDING", call: "CancelJob" });
      expect(
        await rejection(
          bundle.store.transition(pending.id, { call: "CompleteJob", result: {}, resultCase: "", attempt: 0 }, SERVICE),
        ),
      ).toBeInstanceOf(ResultTypeMismatch);
      expect(
        await rejection(bundle.store.transition(pending.id, { ...FORECAST_RESULT, attempt: 1 }, SERVICE)),
      ).toBeInstanceOf(StaleAttempt);
    });

    await bundle.store.transition(pending.id, { call: "RunJob", executorId: "ex", leaseSeconds: 600 }, SERVICE);
    const cancelling = (await bundle.store.transition(pending.id, { call: "RequestJobCancellation", reason: "" }, SERVICE)).job;
    await expectNothingWritten(cancelling, async () => {
      const error = await rejection(
        bundle.store.transition(pending.id, { call: "RunJob", executorId: "ex-2", leaseSeconds: 600 }, SERVICE),
      );
      expect(error).toBeInstanceOf(InvalidTransition);
      expect(error.metadata.state).toBe("JOB_STATE_PENDING_CANCELLATION");
      expect(
        await rejection(
          bundle.store.transition(pending.id, { call: "FailJob", message: "m", diagnostic: null, attempt: 2 }, SERVICE),
        ),
      ).toBeInstanceOf(StaleAttempt);
    });
  });
});

describe("heartbeat", () => {
  test("moves only lease_expires_at and updated_at: no revision, no event", async () => {
    const job = await createJob(bundle.store);
    const run = await bundle.store.transition(job.id, { call: "RunJob", executorId: "ex", leaseSeconds: 600 }, SERVICE);
    const commits = bundle.commits.length;
    const before = await databaseNow(bundle.databaseUrl);

    const beat = await bundle.store.heartbeat(job.id, "ex", 1, SERVICE);
    expect(beat.revision).toBe(run.job.revision);
    expect(beat.updatedAt).toBeGreaterThanOrEqual(before);
    expect(beat.leaseExpiresAt).toBe(beat.updatedAt + 600_000_000);
    expect(beat.leaseExpiresAt!).toBeGreaterThan(run.job.leaseExpiresAt!);

    const row = await bundle.store.get(job.id, SERVICE, "GetJob");
    expect(row).toEqual(beat);
    const events = await allEvents(job.id);
    expect(events).toHaveLength(2);
    // The row equals the last event's snapshot except for the two fields a heartbeat moves.
    expect({ ...row, leaseExpiresAt: 0, updatedAt: 0 }).toEqual({ ...events[1].job, leaseExpiresAt: 0, updatedAt: 0 });
    expect(bundle.commits.length).toBe(commits);
  });

  test("also extends the lease of a job whose cancellation was requested", async () => {
    const job = await createJob(bundle.store);
    await bundle.store.transition(job.id, { call: "RunJob", executorId: "ex", leaseSeconds: 60 }, SERVICE);
    const cancelling = await bundle.store.transition(job.id, { call: "RequestJobCancellation", reason: "" }, SERVICE);
    const beat = await bundle.store.heartbeat(job.id, "ex", 1, SERVICE);
    expect(beat.state).toBe("PENDING_CANCELLATION");
    expect(beat.leaseExpiresAt!).toBeGreaterThan(cancelling.job.leaseExpiresAt!);
  });

  test("from a stale executor or attempt, or on a job that holds no lease, is STALE_ATTEMPT and writes nothing", async () => {
    const job = await createJob(bundle.store);
    await expectNothingWritten(job, async () => {
      expect(await rejection(bundle.store.heartbeat(job.id, "", 0, SERVICE))).toBeInstanceOf(StaleAttempt);
    });
    const running = (await bundle.store.transition(job.id, { call: "RunJob", executorId: "ex", leaseSeconds: 60 }, SERVICE)).job;
    await expectNothingWritten(running, async () => {
      const wrongExecutor = await rejection(bundle.store.heartbeat(job.id, "other", 1, SERVICE));
      expect(wrongExecutor).toBeInstanceOf(StaleAttempt);
      expect(wrongExecutor.metadata.state).toBe("JOB_STATE_RUNNING");
      expect(await rejection(bundle.store.heartbeat(job.id, "ex", 2, SERVICE))).toBeInstanceOf(StaleAttempt);
    });
    const done = (await bundle.store.transition(job.id, FORECAST_RESULT, SERVICE)).job;
    await expectNothingWritten(done, async () => {
      const error = await rejection(bundle.store.heartbeat(job.id, "ex", 1, SERVICE));
      expect(error).toBeInstanceOf(StaleAttempt);
      expect(error.metadata.state).toBe("JOB_STATE_COMPLETED");
    });
  });
});
