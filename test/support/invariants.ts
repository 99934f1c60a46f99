// docs/contract.md §4 (and §9, §11) as checks on what a job ended with, for the
// reliability proofs: the storm in test/rpc/concurrency, the races across
// replicas and the crash in test/e2e. Each check returns the violations it
// found as sentences rather than asserting, so that a proof can count them,
// report the figure, and fail with all of them at once.
//
// The table below is docs/contract.md §4 transcribed by hand, not imported from
// src/domain: a proof that consulted the code under test would only show that
// the code agrees with itself.

import { isDeepStrictEqual } from "node:util";
import { allEvents, getJob } from "../rpc/jobs-fixture.js";
import type { JobsClient, Msg, RpcError } from "./grpc.js";

type State = "PENDING" | "RUNNING" | "PENDING_CANCELLATION" | "COMPLETED" | "FAILED" | "CANCELLED";
export type TransitionCall = "RunJob" | "CompleteJob" | "FailJob" | "RequestJobCancellation" | "CancelJob";
type Cell = State | "no-op" | "REJECT";

/** docs/contract.md §4: rows are the call, columns the job's state under the row lock; a state is a move there. */
// prettier-ignore
const SPEC_TABLE: Readonly<Record<TransitionCall, Readonly<Record<State, Cell>>>> = {
  RunJob:                 { PENDING: "RUNNING",              RUNNING: "no-op",                PENDING_CANCELLATION: "REJECT",    COMPLETED: "no-op", FAILED: "RUNNING", CANCELLED: "no-op" },
  CompleteJob:            { PENDING: "COMPLETED",            RUNNING: "COMPLETED",            PENDING_CANCELLATION: "COMPLETED", COMPLETED: "no-op", FAILED: "no-op",   CANCELLED: "no-op" },
  FailJob:                { PENDING: "FAILED",               RUNNING: "FAILED",               PENDING_CANCELLATION: "FAILED",    COMPLETED: "no-op", FAILED: "no-op",   CANCELLED: "no-op" },
  RequestJobCancellation: { PENDING: "PENDING_CANCELLATION", RUNNING: "PENDING_CANCELLATION", PENDING_CANCELLATION: "no-op",     COMPLETED: "no-op", FAILED: "no-op",   CANCELLED: "no-op" },
  CancelJob:              { PENDING: "REJECT",               RUNNING: "REJECT",               PENDING_CANCELLATION: "CANCELLED", COMPLETED: "no-op", FAILED: "no-op",   CANCELLED: "no-op" },
};

/** The call whose move appends each event type (docs/contract.md §5); CREATED comes from CreateJob, outside the table. */
const CALL_OF_EVENT: Readonly<Record<string, TransitionCall>> = {
  JOB_EVENT_TYPE_STARTED: "RunJob",
  JOB_EVENT_TYPE_COMPLETED: "CompleteJob",
  JOB_EVENT_TYPE_FAILED: "FailJob",
  JOB_EVENT_TYPE_CANCELLATION_REQUESTED: "RequestJobCancellation",
  JOB_EVENT_TYPE_CANCELLED: "CancelJob",
};

/** What docs/contract.md §4 says `call` does to a job in `state` (wire names, JOB_STATE_…): the new state, "no-op" or "REJECT". */
export function specOutcome(call: TransitionCall, state: string): string {
  const cell = SPEC_TABLE[call][state.replace(/^JOB_STATE_/, "") as State];
  if (cell === undefined) return `no state ${state} in docs/contract.md §4`;
  return cell === "no-op" || cell === "REJECT" ? cell : `JOB_STATE_${cell}`;
}

/** The fields a heartbeat moves without an event (docs/contract.md §9). */
const LEASE_FIELDS = ["lease_expires_at", "updated_at"] as const;

function withoutLeaseFields(job: Msg): Msg {
  const rest = { ...job };
  for (const field of LEASE_FIELDS) delete rest[field];
  return rest;
}

function differingFields(a: Msg, b: Msg): string[] {
  const keys = new Set([...Object.keys(a ?? {}), ...Object.keys(b ?? {})]);
  return [...keys].filter((k) => !isDeepStrictEqual(a?.[k], b?.[k]));
}

/** Equal, or equal but for the lease fields when `heartbeats` may have moved them; else the differing fields. */
function jobDifference(actual: Msg, expected: Msg, heartbeats: boolean): string[] {
  const [a, e] = heartbeats ? [withoutLeaseFields(actual), withoutLeaseFields(expected)] : [actual, expected];
  return isDeepStrictEqual(a, e) ? [] : differingFields(a, e);
}

export function isReaper(actor: Msg | null | undefined): boolean {
  return actor?.type === "PRINCIPAL_TYPE_SERVICE" && actor?.name === "reaper";
}

export interface CheckOptions {
  /** HeartbeatJob calls were made: lease_expires_at and updated_at may have moved without an event. */
  readonly heartbeats: boolean;
}

/**
 * A job's log and row: revisions 1..n with no gap or duplicate; CREATED
 * first, from UNSPECIFIED to PENDING; each event's from_state the previous
 * event's to_state; each later event a move that docs/contract.md §4 allows for the call
 * of its type from its from_state; each snapshot at its own revision and
 * state; and the row equal to the last snapshot (but for the lease fields,
 * when heartbeats were sent).
 */
export function logViolations(jobId: string, events: readonly Msg[], row: Msg, options: CheckOptions): string[] {
  const found: string[] = [];
  const at = (event: Msg) => `job ${jobId} revision ${event.revision} (${event.type})`;
  if (events.length === 0) return [`job ${jobId} has no events`];
  events.forEach((event, i) => {
    if (event.revision !== String(i + 1)) found.push(`job ${jobId}: event ${i + 1} of the log has revision ${event.revision}`);
    if (event.job_id !== jobId || event.job?.id !== jobId) found.push(`${at(event)}: belongs to job ${event.job_id} (snapshot ${event.job?.id})`);
    if (event.job?.revision !== event.revision || event.job?.state !== event.to_state) {
      found.push(`${at(event)}: snapshot is revision ${event.job?.revision} in ${event.job?.state}, event says ${event.to_state}`);
    }
    if (i === 0) {
      if (event.type !== "JOB_EVENT_TYPE_CREATED" || event.from_state !== "JOB_STATE_UNSPECIFIED" || event.to_state !== "JOB_STATE_PENDING") {
        found.push(`${at(event)}: the first event must be CREATED from UNSPECIFIED to PENDING, is ${event.from_state} → ${event.to_state}`);
      }
      return;
    }
    const previous = events[i - 1];
    if (event.from_state !== previous.to_state) {
      found.push(`${at(event)}: from_state ${event.from_state}, but revision ${previous.revision} left the job ${previous.to_state}`);
    }
    const call = CALL_OF_EVENT[event.type];
    if (!call) {
      found.push(`${at(event)}: no call appends this event type after CREATED`);
      return;
    }
    const allowed = specOutcome(call, event.from_state);
    if (allowed !== event.to_state) {
      found.push(`${at(event)}: ${call} from ${event.from_state} is "${allowed}" in docs/contract.md §4, not a move to ${event.to_state}`);
    }
  });
  const last = events[events.length - 1];
  const differs = jobDifference(row, last.job, options.heartbeats);
  if (differs.length > 0) found.push(`job ${jobId}: the row differs from revision ${last.revision}'s snapshot in ${differs.join(", ")}`);
  return found;
}

/** An answer a client received: the RPC, the job it returned, and its `changed` flag (false for HeartbeatJob). */
export interface Reply {
  readonly jobId: string;
  readonly call: TransitionCall | "HeartbeatJob";
  readonly changed: boolean;
  readonly job: Msg;
}

export interface ReplyCheckOptions extends CheckOptions {
  /**
   * Every reply to every call is here (no call's outcome is unknown): then
   * each event after CREATED that the reaper did not write is exactly one
   * reply's change.
   */
  readonly complete: boolean;
}

/**
 * The replies to calls on one job against its log (docs/contract.md §4, §11): a
 * changed=true reply names a revision whose event its call appends, with the
 * reply's job as that event's snapshot, and no two claim one revision; any
 * other reply shows the job at a revision the log has, as it was then (but for
 * the lease fields, when heartbeats were sent).
 */
export function replyViolations(jobId: string, events: readonly Msg[], replies: readonly Reply[], options: ReplyCheckOptions): string[] {
  const found: string[] = [];
  const claimed = new Map<number, number>();
  for (const reply of replies) {
    const revision = Number(reply.job?.revision);
    const event = events[revision - 1];
    const what = `job ${jobId}: ${reply.call} answered changed=${reply.changed} at revision ${reply.job?.revision}`;
    if (reply.job?.id !== jobId) found.push(`${what}, but for job ${reply.job?.id}`);
    if (!event) {
      found.push(`${what}, which the log (${events.length} events) does not have`);
      continue;
    }
    if (reply.changed) {
      claimed.set(revision, (claimed.get(revision) ?? 0) + 1);
      if (CALL_OF_EVENT[event.type] !== reply.call) found.push(`${what}, but that revision is a ${event.type} event`);
    }
    // A change's reply is the job as its transaction left it: exactly the snapshot. Any other reply may show a later heartbeat's lease.
    const differs = jobDifference(reply.job, event.job, options.heartbeats && !reply.changed);
    if (differs.length > 0) found.push(`${what}: its job differs from that revision's snapshot in ${differs.join(", ")}`);
  }
  for (const [revision, count] of claimed) {
    if (count > 1) found.push(`job ${jobId}: ${count} changed=true replies claim revision ${revision}`);
  }
  if (options.complete) {
    for (const event of unclaimedEvents(events, replies)) {
      found.push(`job ${jobId} revision ${event.revision} (${event.type}): no changed=true reply accounts for it`);
    }
  }
  return found;
}

/** The events after CREATED that the reaper did not write and no changed=true reply among `replies` names. */
export function unclaimedEvents(events: readonly Msg[], replies: readonly Reply[]): Msg[] {
  const claimed = new Set(replies.filter((r) => r.changed).map((r) => r.job?.revision));
  return events.slice(1).filter((event) => !claimed.has(event.revision) && !isReaper(event.actor));
}

/** The call whose move appends an event of `type`; undefined for CREATED. */
export function callOfEvent(type: string): TransitionCall | undefined {
  return CALL_OF_EVENT[type];
}

export interface JobsChecked {
  readonly violations: string[];
  readonly jobs: number;
  readonly events: number;
  /** Every job's log, by id, as read at the end. */
  readonly logs: ReadonlyMap<string, Msg[]>;
}

/** Reads each job's log and row through `client` and runs both checks on them. */
export async function checkJobs(client: JobsClient, jobIds: readonly string[], replies: readonly Reply[], options: ReplyCheckOptions): Promise<JobsChecked> {
  const byJob = new Map<string, Reply[]>(jobIds.map((id) => [id, []]));
  const violations: string[] = [];
  for (const reply of replies) {
    const mine = byJob.get(reply.jobId);
    if (mine) mine.push(reply);
    else violations.push(`a ${reply.call} reply for job ${reply.jobId}, which is not among the jobs checked`);
  }
  const logs = new Map<string, Msg[]>();
  let events = 0;
  for (const jobId of jobIds) {
    // The log first: a row read later can only be newer, which the check reports.
    const log = await allEvents(client, jobId);
    const row = await getJob(client, jobId);
    logs.set(jobId, log);
    events += log.length;
    violations.push(...logViolations(jobId, log, row, options), ...replyViolations(jobId, log, byJob.get(jobId) ?? [], options));
  }
  return { violations, jobs: jobIds.length, events, logs };
}

/**
 * A refusal the contract allows, or the violation it is: FAILED_PRECONDITION with
 * INVALID_TRANSITION only in a state whose cell for the call is REJECT, and
 * STALE_ATTEMPT only for a heartbeat or a report that named an attempt.
 */
export function refusalViolation(jobId: string, call: TransitionCall | "HeartbeatJob", attempt: string, error: RpcError): string | null {
  const FAILED_PRECONDITION = 9;
  const reason = error.errorInfo?.reason;
  const state = error.errorInfo?.metadata?.state ?? "";
  const what = `job ${jobId}: ${call} failed with code ${error.code} ${reason ?? "(no ErrorInfo)"} in ${state || "no state"}: ${error.details}`;
  if (error.code !== FAILED_PRECONDITION) return what;
  if (reason === "INVALID_TRANSITION" && call !== "HeartbeatJob" && specOutcome(call, state) === "REJECT") return null;
  if (reason === "STALE_ATTEMPT" && (call === "HeartbeatJob" || ((call === "CompleteJob" || call === "FailJob") && attempt !== "0"))) return null;
  return what;
}
