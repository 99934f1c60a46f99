// The pure job changes of src/domain/job.ts: what each permitted call writes,
// what a no-op and a rejection leave alone, the check order of docs/contract.md §4, the
// heartbeat and lease expiry of §9, and the type ↔ oneof-case rules.

import { describe, expect, test } from "@jest/globals";
import { InvalidTransition, ResultTypeMismatch, StaleAttempt } from "../../src/domain/errors.js";
import {
  applyHeartbeat,
  applyTransition,
  expiryTransition,
  type JobRecord,
  newJob,
  type TransitionArgs,
} from "../../src/domain/job.js";
import { inputCaseFor, resultCaseFor, snakeCase } from "../../src/domain/job-types.js";
import type { Principal } from "../../src/domain/principal.js";
import { JOB_STATES, JOB_TYPES, type JobStateName, TRANSITION_CALLS, type TransitionCall } from "../../src/domain/states.js";
import { decide } from "../../src/domain/transitions.js";
import { JobInputSchema, JobResultSchema } from "../../src/gen/jobs/v1/job_pb.js";

const SECOND = 1_000_000;
const T0 = 1_800_000_000 * SECOND; // when the fixture job was created
const NOW = T0 + 3_600 * SECOND; // when the call under test happens

const creator: Principal = { type: "api_user", companyId: "100", userId: "1" };
const actor: Principal = { type: "service", name: "executor-service" };

/** A job as it plausibly looks in `state`, with every field that state implies. */
function jobIn(state: JobStateName, overrides: Partial<JobRecord> = {}): JobRecord {
  const ran = state !== "PENDING";
  const finished = state === "COMPLETED" || state === "FAILED" || state === "CANCELLED";
  const leased = state === "RUNNING" || state === "PENDING_CANCELLATION";
  return {
    id: "0b7e7c64-5c1f-4b8e-9f57-2f0f0c1a1111",
    type: "FORECAST",
    state,
    companyId: "100",
    createdBy: creator,
    input: { forecast: { nql: "select 1" } },
    executorId: ran ? "executor-1" : "",
    attempt: ran ? 2 : 0,
    revision: ran ? 4 : 1,
    result: state === "COMPLETED" ? { forecast: { cost: "3", rows: "4" } } : null,
    failures: ran
      ? [{ attempt: 1, executorId: "executor-0", message: "first try broke", diagnostic: null, failedAt: T0 + SECOND }]
      : [],
    cancellationReason: state === "PENDING_CANCELLATION" || state === "CANCELLED" ? "no longer needed" : "",
    dataPlaneId: "dp-1",
    computePoolId: "pool-1",
    executionCluster: "SHARED",
    leaseSeconds: ran ? 60 : 0,
    leaseExpiresAt: leased ? T0 + 120 * SECOND : null,
    createdAt: T0,
    updatedAt: T0 + 60 * SECOND,
    startedAt: ran ? T0 + 30 * SECOND : null,
    finishedAt: finished ? T0 + 90 * SECOND : null,
    ...overrides,
  };
}

/** Arguments for each call that pass the result and attempt checks. */
function argsFor(call: TransitionCall): TransitionArgs {
  switch (call) {
    case "RunJob":
      return { call, executorId: "executor-2", leaseSeconds: 30 };
    case "CompleteJob":
      return { call, result: { forecast: { cost: "10", rows: "20" } }, resultCase: "forecast", attempt: 0 };
    case "FailJob":
      return { call, message: "out of memory", diagnostic: { oom: true }, attempt: 0 };
    case "RequestJobCancellation":
      return { call, reason: "user pressed stop" };
    case "CancelJob":
      return { call };
  }
}

/** The names of the fields whose values differ between two jobs. */
function changedFields(before: JobRecord, after: JobRecord): string[] {
  return (Object.keys(after) as (keyof JobRecord)[])
    .filter((key) => JSON.stringify(before[key]) !== JSON.stringify(after[key]))
    .sort();
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected the call to throw");
}

const cells = TRANSITION_CALLS.flatMap((call) => JOB_STATES.map((state) => [call, state] as const));

describe("applyTransition, every cell", () => {
  const moves = cells.filter(([call, state]) => decide(call, state).kind === "move");
  const noops = cells.filter(([call, state]) => decide(call, state).kind === "noop");
  const rejects = cells.filter(([call, state]) => decide(call, state).kind === "reject");

  test("the cells split into 11 moves, 16 no-ops and 3 rejections", () => {
    expect([moves.length, noops.length, rejects.length]).toEqual([11, 16, 3]);
  });

  test.each(moves)("%s on a %s job moves it: revision +1, updatedAt, one matching event", (call, state) => {
    const before = jobIn(state);
    const outcome = decide(call, state);
    if (outcome.kind !== "move") throw new Error("not a move");
    const result = applyTransition(before, argsFor(call), actor, NOW);
    if (!result.changed) throw new Error("expected a change");
    expect(result.job.state).toBe(outcome.to);
    expect(result.job.revision).toBe(before.revision + 1);
    expect(result.job.updatedAt).toBe(NOW);
    expect(result.event).toEqual({
      jobId: before.id,
      revision: before.revision + 1,
      type: outcome.event,
      fromState: state,
      toState: outcome.to,
      actor,
      occurredAt: NOW,
      previousExecutorId: before.executorId,
      job: result.job,
    });
    // The input job is not mutated: the store may still need it.
    expect(before).toEqual(jobIn(state));
  });

  test.each(noops)("%s on a %s job is a no-op: the same job, no event", (call, state) => {
    const before = jobIn(state);
    const result = applyTransition(before, argsFor(call), actor, NOW);
    expect(result.changed).toBe(false);
    expect(result.job).toBe(before);
    expect(result.job.revision).toBe(before.revision);
    expect(result.job.updatedAt).toBe(before.updatedAt);
    expect("event" in result).toBe(false);
    expect(before).toEqual(jobIn(state));
  });

  test.each(rejects)("%s on a %s job is rejected with InvalidTransition", (call, state) => {
    const job = jobIn(state);
    const error = thrown(() => applyTransition(job, argsFor(call), actor, NOW));
    expect(error).toBeInstanceOf(InvalidTransition);
    const e = error as InvalidTransition;
    expect(e.kind).toBe("failed_precondition");
    expect(e.reason).toBe("INVALID_TRANSITION");
    expect(e.metadata).toEqual({ job_id: job.id, state: `JOB_STATE_${state}`, call });
    expect(e.message).toContain(job.id);
  });
});

describe("what each move writes", () => {
  test("RunJob on PENDING sets executor, attempt 1, startedAt and the lease", () => {
    const before = jobIn("PENDING");
    const result = applyTransition(before, { call: "RunJob", executorId: "executor-9", leaseSeconds: 45 }, actor, NOW);
    expect(result.job).toMatchObject({
      state: "RUNNING",
      executorId: "executor-9",
      attempt: 1,
      startedAt: NOW,
      finishedAt: null,
      leaseSeconds: 45,
      leaseExpiresAt: NOW + 45 * SECOND,
    });
    expect(changedFields(before, result.job)).toEqual(
      ["attempt", "executorId", "leaseExpiresAt", "leaseSeconds", "revision", "startedAt", "state", "updatedAt"].sort(),
    );
  });

  test("RunJob on FAILED retries: attempt +1, new executor and lease, finishedAt cleared, failures kept", () => {
    const before = jobIn("FAILED");
    const result = applyTransition(before, { call: "RunJob", executorId: "executor-3", leaseSeconds: 10 }, actor, NOW);
    if (!result.changed) throw new Error("expected a change");
    expect(result.job).toMatchObject({
      state: "RUNNING",
      executorId: "executor-3",
      attempt: before.attempt + 1,
      startedAt: NOW,
      finishedAt: null,
      leaseSeconds: 10,
      leaseExpiresAt: NOW + 10 * SECOND,
      failures: before.failures,
    });
    expect(result.event.previousExecutorId).toBe("executor-1");
    expect(changedFields(before, result.job)).toEqual(
      ["attempt", "executorId", "finishedAt", "leaseExpiresAt", "leaseSeconds", "revision", "startedAt", "state", "updatedAt"].sort(),
    );
  });

  test("CompleteJob sets the result and finishedAt and clears the lease", () => {
    const before = jobIn("RUNNING");
    const result = applyTransition(before, argsFor("CompleteJob"), actor, NOW);
    expect(result.job).toMatchObject({
      state: "COMPLETED",
      result: { forecast: { cost: "10", rows: "20" } },
      finishedAt: NOW,
      leaseExpiresAt: null,
    });
    expect(changedFields(before, result.job)).toEqual(
      ["finishedAt", "leaseExpiresAt", "result", "revision", "state", "updatedAt"].sort(),
    );
  });

  test("FailJob appends one failure naming the run that failed, sets finishedAt, clears the lease", () => {
    const before = jobIn("RUNNING");
    const result = applyTransition(
      before,
      { call: "FailJob", message: "disk full", diagnostic: { free: 0 }, attempt: 2 },
      actor,
      NOW,
    );
    expect(result.job.failures).toEqual([
      ...before.failures,
      { attempt: 2, executorId: "executor-1", message: "disk full", diagnostic: { free: 0 }, failedAt: NOW },
    ]);
    expect(result.job).toMatchObject({ state: "FAILED", finishedAt: NOW, leaseExpiresAt: null });
    expect(changedFields(before, result.job)).toEqual(
      ["failures", "finishedAt", "leaseExpiresAt", "revision", "state", "updatedAt"].sort(),
    );
  });

  test("FailJob on a PENDING job records attempt 0 and no executor", () => {
    const result = applyTransition(jobIn("PENDING"), { call: "FailJob", message: "bad input", diagnostic: null, attempt: 0 }, actor, NOW);
    expect(result.job.failures).toEqual([
      { attempt: 0, executorId: "", message: "bad input", diagnostic: null, failedAt: NOW },
    ]);
  });

  test("RequestJobCancellation sets the reason and leaves the running executor's lease alone", () => {
    const before = jobIn("RUNNING");
    const result = applyTransition(before, { call: "RequestJobCancellation", reason: "quota exceeded" }, actor, NOW);
    expect(result.job).toMatchObject({
      state: "PENDING_CANCELLATION",
      cancellationReason: "quota exceeded",
      leaseExpiresAt: before.leaseExpiresAt,
      executorId: before.executorId,
    });
    expect(changedFields(before, result.job)).toEqual(["cancellationReason", "revision", "state", "updatedAt"]);
  });

  test("CancelJob sets finishedAt and clears the lease", () => {
    const before = jobIn("PENDING_CANCELLATION");
    const result = applyTransition(before, { call: "CancelJob" }, actor, NOW);
    expect(result.job).toMatchObject({ state: "CANCELLED", finishedAt: NOW, leaseExpiresAt: null });
    expect(changedFields(before, result.job)).toEqual(["finishedAt", "leaseExpiresAt", "revision", "state", "updatedAt"]);
  });
});

describe("check order: result variant → attempt → table", () => {
  const wrongVariant: TransitionArgs = {
    call: "CompleteJob",
    result: { refreshMaterializedView: {} },
    resultCase: "refreshMaterializedView",
    attempt: 0,
  };

  test.each(JOB_STATES)("a result of the wrong variant on a %s job is RESULT_TYPE_MISMATCH", (state) => {
    const job = jobIn(state);
    const error = thrown(() => applyTransition(job, wrongVariant, actor, NOW));
    expect(error).toBeInstanceOf(ResultTypeMismatch);
    expect((error as ResultTypeMismatch).reason).toBe("RESULT_TYPE_MISMATCH");
    expect((error as ResultTypeMismatch).kind).toBe("invalid_argument");
    // The job was found, so the ErrorInfo says its state, as every error about an existing job does.
    expect((error as ResultTypeMismatch).metadata).toMatchObject({ job_id: job.id, call: "CompleteJob", state: `JOB_STATE_${state}` });
  });

  test("an empty result is a mismatch too", () => {
    const error = thrown(() =>
      applyTransition(jobIn("RUNNING"), { call: "CompleteJob", result: {}, resultCase: "", attempt: 0 }, actor, NOW),
    );
    expect(error).toBeInstanceOf(ResultTypeMismatch);
  });

  test("a mismatched result beats a stale attempt", () => {
    const error = thrown(() => applyTransition(jobIn("COMPLETED"), { ...wrongVariant, attempt: 99 }, actor, NOW));
    expect(error).toBeInstanceOf(ResultTypeMismatch);
  });

  const fenced = ["CompleteJob", "FailJob"] as const;
  const staleCells = fenced.flatMap((call) => JOB_STATES.map((state) => [call, state] as const));

  test.each(staleCells)("%s with a stale attempt on a %s job is STALE_ATTEMPT, whatever the table says", (call, state) => {
    const job = jobIn(state, { attempt: 3 });
    const args = { ...argsFor(call), attempt: 2 } as TransitionArgs;
    const error = thrown(() => applyTransition(job, args, actor, NOW));
    expect(error).toBeInstanceOf(StaleAttempt);
    const e = error as StaleAttempt;
    expect(e.kind).toBe("failed_precondition");
    expect(e.reason).toBe("STALE_ATTEMPT");
    expect(e.metadata).toEqual({ job_id: job.id, call, state: `JOB_STATE_${state}` });
  });

  test.each(fenced)("%s with attempt 0 means 'not set' and is not fenced", (call) => {
    const result = applyTransition(jobIn("RUNNING", { attempt: 3 }), { ...argsFor(call), attempt: 0 } as TransitionArgs, actor, NOW);
    expect(result.changed).toBe(true);
  });

  test.each(fenced)("%s with the current attempt goes through", (call) => {
    const result = applyTransition(jobIn("RUNNING", { attempt: 3 }), { ...argsFor(call), attempt: 3 } as TransitionArgs, actor, NOW);
    expect(result.changed).toBe(true);
  });

  test("the current attempt on a COMPLETED job reaches the table: a no-op", () => {
    const job = jobIn("COMPLETED", { attempt: 3 });
    const result = applyTransition(job, { ...argsFor("CompleteJob"), attempt: 3 } as TransitionArgs, actor, NOW);
    expect(result).toEqual({ changed: false, job });
  });

  test("a result of the right variant for another type is checked against this job's type", () => {
    const job = jobIn("RUNNING", { type: "HEALTH_CHECK" });
    expect(() => applyTransition(job, argsFor("CompleteJob"), actor, NOW)).toThrow(ResultTypeMismatch);
    const ok = applyTransition(
      job,
      { call: "CompleteJob", result: { healthCheck: {} }, resultCase: "healthCheck", attempt: 0 },
      actor,
      NOW,
    );
    expect(ok.job.state).toBe("COMPLETED");
  });
});

describe("applyHeartbeat", () => {
  test.each(["RUNNING", "PENDING_CANCELLATION"] as const)(
    "on a %s job extends the lease by leaseSeconds and touches only leaseExpiresAt and updatedAt",
    (state) => {
      const before = jobIn(state, { leaseSeconds: 25 });
      const after = applyHeartbeat(before, "executor-1", 2, NOW);
      expect(after.leaseExpiresAt).toBe(NOW + 25 * SECOND);
      expect(after.updatedAt).toBe(NOW);
      expect(after.revision).toBe(before.revision);
      expect(changedFields(before, after)).toEqual(["leaseExpiresAt", "updatedAt"]);
    },
  );

  test("from another executor is STALE_ATTEMPT", () => {
    const error = thrown(() => applyHeartbeat(jobIn("RUNNING"), "executor-0", 2, NOW));
    expect(error).toBeInstanceOf(StaleAttempt);
    expect((error as StaleAttempt).metadata).toMatchObject({ call: "HeartbeatJob", state: "JOB_STATE_RUNNING" });
  });

  test("for another attempt is STALE_ATTEMPT", () => {
    expect(() => applyHeartbeat(jobIn("RUNNING"), "executor-1", 1, NOW)).toThrow(StaleAttempt);
  });

  test.each(["PENDING", "COMPLETED", "FAILED", "CANCELLED"] as const)(
    "on a %s job is STALE_ATTEMPT, and says the job's state",
    (state) => {
      const job = jobIn(state);
      const error = thrown(() => applyHeartbeat(job, job.executorId, job.attempt, NOW));
      expect(error).toBeInstanceOf(StaleAttempt);
      expect((error as StaleAttempt).reason).toBe("STALE_ATTEMPT");
      expect((error as StaleAttempt).metadata).toEqual({ job_id: job.id, call: "HeartbeatJob", state: `JOB_STATE_${state}` });
    },
  );
});

describe("expiryTransition", () => {
  test("a RUNNING job whose lease ran out fails with a message naming the lease, executor and attempt", () => {
    const job = jobIn("RUNNING", { executorId: "executor-7", attempt: 5 });
    const args = expiryTransition(job, NOW);
    if (args.call !== "FailJob") throw new Error(`expected FailJob, got ${args.call}`);
    expect(args.message).toMatch(/lease expired/);
    expect(args.message).toContain("executor-7");
    expect(args.message).toMatch(/attempt 5\b/);
    expect(args.attempt).toBe(5);
    // It is an ordinary transition that passes the attempt fence.
    const result = applyTransition(job, args, { type: "service", name: "reaper" }, NOW);
    expect(result.job.state).toBe("FAILED");
    expect(result.job.failures.at(-1)).toMatchObject({ executorId: "executor-7", attempt: 5, message: args.message });
  });

  test("a PENDING_CANCELLATION job whose lease ran out is cancelled", () => {
    const job = jobIn("PENDING_CANCELLATION");
    expect(expiryTransition(job, NOW)).toEqual({ call: "CancelJob" });
    expect(applyTransition(job, expiryTransition(job, NOW), actor, NOW).job.state).toBe("CANCELLED");
  });
});

describe("newJob", () => {
  test("is PENDING at revision 1 with a CREATED event from no state", () => {
    const fields = {
      id: "6d1b0c4e-0000-4000-8000-000000000001",
      type: "REFRESH_MATERIALIZED_VIEW" as const,
      companyId: "100",
      createdBy: creator,
      input: { refreshMaterializedView: { nql: "x", datasetId: "5" } },
      dataPlaneId: "dp",
      computePoolId: "cp",
      executionCluster: "DEDICATED" as const,
    };
    const { job, event } = newJob(fields, NOW);
    expect(job).toEqual({
      ...fields,
      state: "PENDING",
      executorId: "",
      attempt: 0,
      revision: 1,
      result: null,
      failures: [],
      cancellationReason: "",
      leaseSeconds: 0,
      leaseExpiresAt: null,
      createdAt: NOW,
      updatedAt: NOW,
      startedAt: null,
      finishedAt: null,
    });
    expect(event).toEqual({
      jobId: fields.id,
      revision: 1,
      type: "CREATED",
      fromState: null,
      toState: "PENDING",
      actor: creator,
      occurredAt: NOW,
      previousExecutorId: "",
      job,
    });
  });
});

describe("job types and their oneof cases", () => {
  // Transcribed from proto/jobs/v1/job.proto: `JobResult.kind` field per JobType.
  const RESULT_FIELD: Record<string, string> = {
    FORECAST: "forecast",
    REFRESH_MATERIALIZED_VIEW: "refresh_materialized_view",
    DATASETS_EXECUTE_DML: "datasets_execute_dml",
    DATASETS_CREATE_TABLE: "datasets_create_table",
    DATASETS_TRUNCATE_TABLE: "datasets_truncate_table",
    DATASETS_DELETE_TABLE: "datasets_delete_table",
    DATASETS_DELIVER_DATA: "datasets_deliver_data",
    DATASETS_CALCULATE_COLUMN_STATS: "datasets_calculate_column_stats",
    DATASETS_SUGGEST_MAPPINGS: "datasets_suggest_mappings",
    MODEL_INFERENCE_RUN: "model_inference_run",
    MODEL_TRAINING_RUN: "model_training_run",
    MODELS_DELIVER_MODEL: "models_deliver_model",
    MODELS_TRAIN_CLASSIFIER: "models_train_classifier",
    HEALTH_CHECK: "health_check",
  };
  // `JobInput.kind`: typed variants for two types, `other` for the rest.
  const INPUT_FIELD: Record<string, string> = { FORECAST: "forecast", REFRESH_MATERIALIZED_VIEW: "refresh_materialized_view" };

  /** proto field name → the case name protobuf-es generated for it. */
  function caseNames(schema: typeof JobResultSchema | typeof JobInputSchema): Map<string, string> {
    const kind = schema.oneofs.find((o) => o.name === "kind");
    if (!kind) throw new Error("no oneof kind");
    return new Map(kind.fields.map((f) => [f.name, f.localName]));
  }

  test("all 14 job types are known to the domain", () => {
    expect([...JOB_TYPES].sort()).toEqual(Object.keys(RESULT_FIELD).sort());
  });

  test.each(Object.entries(RESULT_FIELD))("resultCaseFor(%s) is the case of JobResult.%s", (type, field) => {
    const expected = caseNames(JobResultSchema).get(field);
    expect(expected).toBeDefined();
    expect(resultCaseFor(type as never)).toBe(expected);
    expect(snakeCase(resultCaseFor(type as never))).toBe(field);
  });

  test.each(Object.keys(RESULT_FIELD))("inputCaseFor(%s) is its typed variant or `other`", (type) => {
    const field = INPUT_FIELD[type] ?? "other";
    const expected = caseNames(JobInputSchema).get(field);
    expect(expected).toBeDefined();
    expect(inputCaseFor(type as never)).toBe(expected);
  });
});
