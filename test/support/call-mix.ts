// The transition calls that executors and services make on a few shared
// jobs, as a fast-check arbitrary, and a sender that puts them on the wire
// through many clients at once and keeps every answer for the checks in
// invariants.ts. The races and crash proofs in test/e2e share both.

import fc from "fast-check";
import { FORECAST_RESULT } from "../rpc/jobs-fixture.js";
import type { JobsClient, Msg, RpcError } from "./grpc.js";
import type { Reply, TransitionCall } from "./invariants.js";
import { pool } from "./watching.js";

export type CallKind = TransitionCall | "HeartbeatJob";

export interface PlannedCall {
  readonly kind: CallKind;
  /** Which of the jobs. */
  readonly job: number;
  /** Which of the clients sends it. */
  readonly client: number;
  /** Which of a few executors claims (RunJob), or which one a stale heartbeat names. */
  readonly executor: number;
  /**
   * CompleteJob, FailJob, HeartbeatJob: the job's attempt as the sender last
   * saw it, another one (stale), or none (0: unfenced; a heartbeat, which
   * needs one, sends the seen one).
   */
  readonly attempt: "seen" | "stale" | "none";
  /** RunJob: 0 (the server's default), one short enough for the reaper to end the run mid-load, or a long one. */
  readonly leaseSeconds: number;
}

export const EXECUTORS = 4;

/**
 * Runs and failures dominate so that jobs keep cycling through retries;
 * completions and cancellations are rare because they end a job for good, and
 * the calls on an ended job are only no-ops.
 */
const KINDS: ReadonlyArray<{ arbitrary: fc.Arbitrary<CallKind>; weight: number }> = [
  { arbitrary: fc.constant("RunJob"), weight: 34 },
  { arbitrary: fc.constant("FailJob"), weight: 26 },
  { arbitrary: fc.constant("HeartbeatJob"), weight: 26 },
  { arbitrary: fc.constant("RequestJobCancellation"), weight: 5 },
  { arbitrary: fc.constant("CancelJob"), weight: 4 },
  { arbitrary: fc.constant("CompleteJob"), weight: 1 },
];

export function plannedCall(jobs: number, clients: number): fc.Arbitrary<PlannedCall> {
  return fc.record({
    kind: fc.oneof(...KINDS),
    job: fc.nat({ max: jobs - 1 }),
    client: fc.nat({ max: clients - 1 }),
    executor: fc.nat({ max: EXECUTORS - 1 }),
    attempt: fc.constantFrom("seen", "seen", "stale", "none"),
    leaseSeconds: fc.oneof(
      { arbitrary: fc.constant(0), weight: 1 },
      { arbitrary: fc.integer({ min: 1, max: 2 }), weight: 2 },
      { arbitrary: fc.integer({ min: 30, max: 86_400 }), weight: 1 },
    ),
  });
}

/** A generated storm: its calls, printed by fast-check as a count (the seed replays it; a thousand calls would drown the report). */
export class Storm {
  constructor(readonly calls: readonly PlannedCall[]) {}
  [fc.toStringMethod](): string {
    return `Storm(${this.calls.length} calls)`;
  }
}

export function storm(jobs: number, clients: number, count: number): fc.Arbitrary<Storm> {
  return fc.array(plannedCall(jobs, clients), { minLength: count, maxLength: count }).map((calls) => new Storm(calls));
}

/** One call as it went: its answer when it succeeded, its error otherwise. */
export interface Outcome {
  readonly call: PlannedCall;
  /** The client that sent it. */
  readonly client: JobsClient;
  readonly jobId: string;
  readonly request: Msg;
  readonly reply: Reply | null;
  readonly error: RpcError | null;
}

export interface SendOptions {
  /** Calls in flight at once, across all clients. */
  readonly concurrency: number;
  /** Told of each outcome as it arrives. */
  readonly onOutcome?: (outcome: Outcome, index: number) => void;
}

/**
 * Sends `plan` on `jobs`, each call through the client `clientFor` picks
 * when the call's turn comes (so a test can fail clients over). Attempts and
 * executors for the fenced calls come from the newest job any answer has
 * shown so far, as an executor would know them.
 */
export async function sendCalls(
  plan: readonly PlannedCall[],
  jobs: readonly Msg[],
  clientFor: (call: PlannedCall) => JobsClient,
  options: SendOptions,
): Promise<Outcome[]> {
  const seen = new Map<string, Msg>(jobs.map((job) => [job.id, job]));
  const remember = (job: Msg) => {
    const known = seen.get(job.id);
    if (!known || Number(job.revision) >= Number(known.revision)) seen.set(job.id, job);
  };
  return pool(plan, options.concurrency, async (call, index) => {
    const jobId = jobs[call.job].id as string;
    const request = requestFor(call, seen.get(jobId) as Msg, index);
    const client = clientFor(call);
    let outcome: Outcome;
    try {
      const answer = await client.call(call.kind, request);
      remember(answer.job);
      const reply: Reply = { jobId, call: call.kind, changed: call.kind !== "HeartbeatJob" && answer.changed === true, job: answer.job };
      outcome = { call, client, jobId, request, reply, error: null };
    } catch (error) {
      if ((error as RpcError).code === undefined) throw error;
      outcome = { call, client, jobId, request, reply: null, error: error as RpcError };
    }
    options.onOutcome?.(outcome, index);
    return outcome;
  });
}

function requestFor(call: PlannedCall, job: Msg, index: number): Msg {
  const seenAttempt = Number(job.attempt);
  const stale = String(seenAttempt > 1 ? seenAttempt - 1 : seenAttempt + 1);
  const attempt = call.attempt === "seen" ? String(seenAttempt) : call.attempt === "stale" ? stale : "0";
  const job_id = job.id;
  switch (call.kind) {
    case "RunJob":
      return { job_id, executor_id: `executor-${call.executor}`, lease_seconds: call.leaseSeconds };
    case "CompleteJob":
      return { job_id, result: FORECAST_RESULT, attempt };
    case "FailJob":
      return { job_id, message: `failure ${index}`, attempt };
    case "RequestJobCancellation":
      return { job_id, reason: `reason ${index}` };
    case "CancelJob":
      return { job_id };
    case "HeartbeatJob":
      return call.attempt === "stale"
        ? { job_id, executor_id: `executor-${call.executor}`, attempt: stale }
        : { job_id, executor_id: job.executor_id || `executor-${call.executor}`, attempt: String(Math.max(1, seenAttempt)) };
  }
}

/** The attempt a call named ("0" when none), for refusalViolation. */
export function attemptOf(outcome: Outcome): string {
  return String(outcome.request.attempt ?? "0");
}
