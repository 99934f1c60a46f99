// Many write calls decided together, in arrival order, each as if it had run
// alone right after the ones before it: a call sees what earlier calls of
// the same batch did to its job. Pure: the store locks the rows the batch
// names, hands them here with the database's clock, and writes back exactly
// what this returns.

import { DomainError, JobFull, JobNotFound } from "./errors.js";
import {
  applyHeartbeat,
  applyTransition,
  type EventRecord,
  expiryTransition,
  type JobRecord,
  type Micros,
  newJob,
  type TransitionArgs,
  type TransitionResult,
} from "./job.js";
import { attemptReserve, type JobLimits, jobBytes } from "./job-size.js";
import { canSee, type Principal, REAPER } from "./principal.js";
import { LEASED_STATES } from "./states.js";

/** What a new job is made of: its id, its creator, and what the creator chose (CreateJob). */
export type JobFields = Pick<
  JobRecord,
  "id" | "type" | "companyId" | "createdBy" | "input" | "dataPlaneId" | "computePoolId" | "executionCluster"
>;

export type WriteCall =
  | {
      readonly kind: "create";
      readonly fields: JobFields;
      /** Whose request_id space the job is in (principalKey of the creator). */
      readonly creatorKey: string;
      /** AIP-155 idempotency key; null when the caller gave none. */
      readonly requestId: string | null;
    }
  | { readonly kind: "transition"; readonly jobId: string; readonly args: TransitionArgs; readonly actor: Principal }
  | { readonly kind: "heartbeat"; readonly jobId: string; readonly executorId: string; readonly attempt: number; readonly actor: Principal }
  /** The reaper: fail or cancel the job if its lease has run out by now. */
  | { readonly kind: "expire"; readonly jobId: string };

export type CallOutcome =
  | { readonly kind: "refused"; readonly error: DomainError }
  | { readonly kind: "transition"; readonly result: TransitionResult }
  | { readonly kind: "heartbeat"; readonly job: JobRecord }
  | { readonly kind: "expire"; readonly event: EventRecord | null }
  /** A new job, written only if its request_id is new to its creator (the database decides). */
  | { readonly kind: "create"; readonly create: NewJobWrite }
  /** The same creator's request_id as an earlier call of the batch: that call's answer. */
  | { readonly kind: "same-request"; readonly as: number };

export interface NewJobWrite {
  readonly job: JobRecord;
  readonly event: EventRecord;
  readonly creatorKey: string;
  readonly requestId: string | null;
}

export interface BatchDecision {
  /** One per call, in the calls' order. */
  readonly outcomes: readonly CallOutcome[];
  /** The last state of every existing job the batch changed (by a transition or a heartbeat). */
  readonly changedJobs: readonly JobRecord[];
  readonly creates: readonly NewJobWrite[];
  /** Every event, in the order the calls made them (CREATED events included). */
  readonly events: readonly EventRecord[];
}

/** The ids of the existing jobs a batch needs locked. */
export function jobsNamed(calls: readonly WriteCall[]): string[] {
  const ids = new Set<string>();
  for (const call of calls) if (call.kind !== "create") ids.add(call.jobId);
  return [...ids];
}

/**
 * Decides `calls` in order against `locked` (the batch's existing jobs, by
 * id, as their row locks found them) at the database time `now`. A call the
 * rules refuse is refused alone; the others go on. With `limits`, a RunJob
 * that would start another attempt on a job with no room left to record how
 * it ends is refused (JOB_FULL): a job never outgrows `limits.jobBytes`.
 */
export function decideBatch(calls: readonly WriteCall[], locked: ReadonlyMap<string, JobRecord>, now: Micros, limits?: JobLimits): BatchDecision {
  const current = new Map(locked);
  const changed = new Set<string>();
  const firstRequest = new Map<string, number>();
  const creates: NewJobWrite[] = [];
  const events: EventRecord[] = [];

  const decide = (call: WriteCall, index: number): CallOutcome => {
    if (call.kind === "create") {
      if (call.requestId !== null) {
        const key = requestKey(call.creatorKey, call.requestId);
        const first = firstRequest.get(key);
        if (first !== undefined) return { kind: "same-request", as: first };
        firstRequest.set(key, index);
      }
      const { job, event } = newJob(call.fields, now);
      const create = { job, event, creatorKey: call.creatorKey, requestId: call.requestId };
      creates.push(create);
      events.push(event);
      return { kind: "create", create };
    }
    const actor = call.kind === "expire" ? REAPER : call.actor;
    const job = current.get(call.jobId);
    if (job === undefined || !canSee(actor, job.companyId)) {
      if (call.kind === "expire") return { kind: "expire", event: null };
      throw new JobNotFound(call.jobId, call.kind === "heartbeat" ? "HeartbeatJob" : call.args.call);
    }
    if (call.kind === "heartbeat") {
      const extended = applyHeartbeat(job, call.executorId, call.attempt, now);
      keep(extended);
      return { kind: "heartbeat", job: extended };
    }
    if (call.kind === "expire") {
      if (!hasExpired(job, now)) return { kind: "expire", event: null };
      const result = applyTransition(job, expiryTransition(job, now), REAPER, now);
      return { kind: "expire", event: result.changed ? kept(result).event : null };
    }
    const result = applyTransition(job, call.args, actor, now);
    if (limits && result.changed && call.args.call === "RunJob" && job.state === "FAILED") {
      const bytes = jobBytes(job);
      if (bytes + attemptReserve(limits) > limits.jobBytes) throw new JobFull(job.id, job.state, bytes, limits.jobBytes);
    }
    return { kind: "transition", result: kept(result) };
  };

  const keep = (job: JobRecord) => {
    current.set(job.id, job);
    changed.add(job.id);
  };
  const kept = <R extends TransitionResult>(result: R): R => {
    if (result.changed) {
      keep(result.job);
      events.push(result.event);
    }
    return result;
  };

  const outcomes = calls.map((call, index): CallOutcome => {
    try {
      return decide(call, index);
    } catch (error) {
      if (error instanceof DomainError) return { kind: "refused", error };
      throw error;
    }
  });
  const changedJobs = [...changed].map((id) => current.get(id) as JobRecord);
  return { outcomes, changedJobs, creates, events };
}

/** A leased job whose lease ran out by `now` (the reaper re-checks under the row lock). */
function hasExpired(job: JobRecord, now: Micros): boolean {
  return LEASED_STATES.has(job.state) && job.leaseExpiresAt !== null && job.leaseExpiresAt <= now;
}

/** One creator's request_id, as a key: calls with equal keys make one job. */
export const requestKey = (creatorKey: string, requestId: string | null): string => `${creatorKey}\n${requestId}`;
