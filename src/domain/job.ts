// A job and its events as plain data, and the pure functions that change a
// job. The store persists exactly what these functions return, inside the
// transaction that holds the job's row lock; nothing here does I/O.

import { InvalidTransition, ResultTypeMismatch, StaleAttempt } from "./errors.js";
import { resultCaseFor } from "./job-types.js";
import type { Principal } from "./principal.js";
import {
  type EventTypeName,
  type ExecutionClusterName,
  type JobStateName,
  type JobTypeName,
  LEASED_STATES,
  type TransitionCall,
} from "./states.js";
import { decide } from "./transitions.js";

/** Microseconds since the Unix epoch: PostgreSQL's own resolution, exact in a JS number until year 2255. */
export type Micros = number;

/** A JSON value: nested payloads (input, result, diagnostic) are kept in their proto-JSON form. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface FailureRecord {
  readonly attempt: number;
  readonly executorId: string;
  readonly message: string;
  readonly diagnostic: JsonValue | null;
  readonly failedAt: Micros;
}

export interface JobRecord {
  readonly id: string;
  readonly type: JobTypeName;
  readonly state: JobStateName;
  /** int64 ids travel as decimal strings so they survive JSON. */
  readonly companyId: string;
  readonly createdBy: Principal;
  /** The proto-JSON form of JobInput, or null when none was given. */
  readonly input: JsonValue | null;
  readonly executorId: string;
  readonly attempt: number;
  readonly revision: number;
  /** The proto-JSON form of JobResult, set on COMPLETED. */
  readonly result: JsonValue | null;
  readonly failures: readonly FailureRecord[];
  readonly cancellationReason: string;
  readonly dataPlaneId: string;
  readonly computePoolId: string;
  readonly executionCluster: ExecutionClusterName;
  readonly leaseSeconds: number;
  readonly leaseExpiresAt: Micros | null;
  readonly createdAt: Micros;
  readonly updatedAt: Micros;
  readonly startedAt: Micros | null;
  readonly finishedAt: Micros | null;
}

export interface EventRecord {
  readonly jobId: string;
  readonly revision: number;
  readonly type: EventTypeName;
  readonly fromState: JobStateName | null;
  readonly toState: JobStateName;
  readonly actor: Principal;
  readonly occurredAt: Micros;
  /** The executor before the change: lets WatchJobs tell that a job left an executor's set. */
  readonly previousExecutorId: string;
  /** The job as of this revision. */
  readonly job: JobRecord;
}

/** What a transition call carries beyond the job id. */
export type TransitionArgs =
  | { readonly call: "RunJob"; readonly executorId: string; readonly leaseSeconds: number }
  | {
      readonly call: "CompleteJob";
      readonly result: JsonValue;
      /** The `JobResult.kind` case the caller sent ("" when none). */
      readonly resultCase: string;
      readonly attempt: number;
    }
  | { readonly call: "FailJob"; readonly message: string; readonly diagnostic: JsonValue | null; readonly attempt: number }
  | { readonly call: "RequestJobCancellation"; readonly reason: string }
  | { readonly call: "CancelJob" };

export type TransitionResult =
  | { readonly changed: false; readonly job: JobRecord }
  | { readonly changed: true; readonly job: JobRecord; readonly event: EventRecord };

const MICROS_PER_SECOND = 1_000_000;

/**
 * Decides what `args` does to `job` at time `now`, in docs/contract.md §4's order:
 * result variant → attempt fencing → the table. Visibility is the caller's
 * job (it must come first, so that a foreign job reveals nothing).
 */
export function applyTransition(job: JobRecord, args: TransitionArgs, actor: Principal, now: Micros): TransitionResult {
  if (args.call === "CompleteJob") {
    const expected = resultCaseFor(job.type);
    if (args.resultCase !== expected) {
      throw new ResultTypeMismatch(job.id, job.type, job.state, args.resultCase, expected);
    }
  }
  if ((args.call === "CompleteJob" || args.call === "FailJob") && args.attempt !== 0 && args.attempt !== job.attempt) {
    throw new StaleAttempt(
      job.id,
      args.call,
      job.state,
      `attempt ${args.attempt} is not the job's current attempt ${job.attempt}`,
    );
  }
  const outcome = decide(args.call, job.state);
  if (outcome.kind === "reject") {
    throw new InvalidTransition(job.id, args.call, job.state);
  }
  if (outcome.kind === "noop") {
    return { changed: false, job };
  }
  const next: JobRecord = {
    ...job,
    ...changesFor(job, args, now),
    state: outcome.to,
    revision: job.revision + 1,
    updatedAt: now,
  };
  const event: EventRecord = {
    jobId: job.id,
    revision: next.revision,
    type: outcome.event,
    fromState: job.state,
    toState: next.state,
    actor,
    occurredAt: now,
    previousExecutorId: job.executorId,
    job: next,
  };
  return { changed: true, job: next, event };
}

/** The fields a permitted transition sets, besides state, revision and updatedAt. */
function changesFor(job: JobRecord, args: TransitionArgs, now: Micros): Partial<JobRecord> {
  const finished = { finishedAt: now, leaseExpiresAt: null };
  switch (args.call) {
    case "RunJob":
      return {
        executorId: args.executorId,
        attempt: job.attempt + 1,
        startedAt: now,
        finishedAt: null,
        leaseSeconds: args.leaseSeconds,
        leaseExpiresAt: now + args.leaseSeconds * MICROS_PER_SECOND,
      };
    case "CompleteJob":
      return { ...finished, result: args.result };
    case "FailJob":
      return {
        ...finished,
        failures: [
          ...job.failures,
          {
            attempt: job.attempt,
            executorId: job.executorId,
            message: args.message,
            diagnostic: args.diagnostic,
            failedAt: now,
          },
        ],
      };
    case "RequestJobCancellation":
      return { cancellationReason: args.reason };
    case "CancelJob":
      return finished;
  }
}

/** The new job for CreateJob: revision 1, PENDING, with its CREATED event. */
export function newJob(
  fields: Pick<
    JobRecord,
    "id" | "type" | "companyId" | "createdBy" | "input" | "dataPlaneId" | "computePoolId" | "executionCluster"
  >,
  now: Micros,
): { job: JobRecord; event: EventRecord } {
  const job: JobRecord = {
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
    createdAt: now,
    updatedAt: now,
    startedAt: null,
    finishedAt: null,
  };
  const event: EventRecord = {
    jobId: job.id,
    revision: 1,
    type: "CREATED",
    fromState: null,
    toState: "PENDING",
    actor: fields.createdBy,
    occurredAt: now,
    previousExecutorId: "",
    job,
  };
  return { job, event };
}

/**
 * A heartbeat from `executorId` running `attempt`: extends the lease by the
 * span RunJob set. Anything but the job's current executor and attempt on a
 * leased job is stale: that executor must stop (docs/contract.md §9).
 */
export function applyHeartbeat(job: JobRecord, executorId: string, attempt: number, now: Micros): JobRecord {
  if (!LEASED_STATES.has(job.state)) {
    throw new StaleAttempt(job.id, "HeartbeatJob", job.state, `job ${job.id} holds no lease`);
  }
  if (executorId !== job.executorId || attempt !== job.attempt) {
    throw new StaleAttempt(
      job.id,
      "HeartbeatJob",
      job.state,
      `executor ${executorId} attempt ${attempt} is not the job's current run (executor ${job.executorId}, attempt ${job.attempt})`,
    );
  }
  return { ...job, leaseExpiresAt: now + job.leaseSeconds * MICROS_PER_SECOND, updatedAt: now };
}

/**
 * What the reaper does to a job whose lease ran out: an ordinary FailJob
 * (RUNNING) or CancelJob (PENDING_CANCELLATION) by the reaper principal.
 */
export function expiryTransition(job: JobRecord, now: Micros): TransitionArgs {
  if (job.state === "PENDING_CANCELLATION") {
    return { call: "CancelJob" };
  }
  const expiredAt = new Date(Math.floor((job.leaseExpiresAt ?? now) / 1000)).toISOString();
  return {
    call: "FailJob",
    message: `lease expired at ${expiredAt}: executor ${job.executorId} sent no heartbeat for attempt ${job.attempt}`,
    diagnostic: { reason: "LEASE_EXPIRED", executorId: job.executorId, attempt: job.attempt, leaseExpiredAt: expiredAt },
    attempt: job.attempt,
  };
}

export type { TransitionCall };
