// decideBatch (src/domain/batch.ts): a batch of write calls decided together
// must answer and change exactly what the same calls would, decided one at a
// time in the same order with the single-call rules (applyTransition,
// applyHeartbeat, the reaper's expiry). Checked on random batches, plus the
// cases only a batch has: a repeated request_id, what is written, in which
// order.

import { describe, expect, test } from "@jest/globals";
import fc from "fast-check";
import { type CallOutcome, decideBatch, jobsNamed, type WriteCall } from "../../src/domain/batch.js";
import { DomainError, JobNotFound } from "../../src/domain/errors.js";
import { applyHeartbeat, applyTransition, type EventRecord, expiryTransition, type JobRecord, type TransitionArgs } from "../../src/domain/job.js";
import { canSee, type Principal, REAPER } from "../../src/domain/principal.js";
import { JOB_STATES, type JobStateName, LEASED_STATES } from "../../src/domain/states.js";

const SECOND = 1_000_000;
const NOW = 1_800_000_000 * SECOND;
const SERVICE: Principal = { type: "service", name: "executor-service" };
const USER_100: Principal = { type: "api_user", companyId: "100", userId: "1" };
const USER_200: Principal = { type: "api_user", companyId: "200", userId: "2" };

function jobIn(id: string, state: JobStateName, overrides: Partial<JobRecord> = {}): JobRecord {
  const ran = state !== "PENDING";
  return {
    id,
    type: "FORECAST",
    state,
    companyId: "100",
    createdBy: SERVICE,
    input: null,
    executorId: ran ? "ex-1" : "",
    attempt: ran ? 1 : 0,
    revision: ran ? 2 : 1,
    result: null,
    failures: [],
    cancellationReason: "",
    dataPlaneId: "",
    computePoolId: "",
    executionCluster: "UNSPECIFIED",
    leaseSeconds: ran ? 60 : 0,
    leaseExpiresAt: LEASED_STATES.has(state) ? NOW + 30 * SECOND : null,
    createdAt: NOW - 600 * SECOND,
    updatedAt: NOW - 300 * SECOND,
    startedAt: ran ? NOW - 300 * SECOND : null,
    finishedAt: null,
    ...overrides,
  };
}

/** The same calls one at a time: the reference every batch is held to. */
function oneAtATime(calls: readonly WriteCall[], jobs: ReadonlyMap<string, JobRecord>): { answers: unknown[]; jobs: Map<string, JobRecord>; events: EventRecord[] } {
  const current = new Map(jobs);
  const events: EventRecord[] = [];
  const answers = calls.map((call) => {
    if (call.kind === "create") throw new Error("creates are not part of this reference");
    try {
      const actor = call.kind === "expire" ? REAPER : call.actor;
      const job = current.get(call.jobId);
      if (!job || !canSee(actor, job.companyId)) {
        if (call.kind === "expire") return null;
        throw new JobNotFound(call.jobId, call.kind === "heartbeat" ? "HeartbeatJob" : call.args.call);
      }
      if (call.kind === "heartbeat") {
        const extended = applyHeartbeat(job, call.executorId, call.attempt, NOW);
        current.set(job.id, extended);
        return extended;
      }
      const expired = call.kind === "expire";
      if (expired && !(LEASED_STATES.has(job.state) && job.leaseExpiresAt !== null && job.leaseExpiresAt <= NOW)) return null;
      const result = applyTransition(job, expired ? expiryTransition(job, NOW) : call.args, actor, NOW);
      if (result.changed) {
        current.set(job.id, result.job);
        events.push(result.event);
      }
      return expired ? (result.changed ? result.event : null) : result;
    } catch (error) {
      if (error instanceof DomainError) return { refused: error.reason };
      throw error;
    }
  });
  return { answers, jobs: current, events };
}

/** A batch outcome in the reference's terms. */
function answerOf(outcome: CallOutcome): unknown {
  switch (outcome.kind) {
    case "refused":
      return { refused: outcome.error.reason };
    case "transition":
      return outcome.result;
    case "heartbeat":
      return outcome.job;
    case "expire":
      return outcome.event;
    default:
      throw new Error(`unexpected ${outcome.kind}`);
  }
}

const IDS = ["00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002", "00000000-0000-4000-8000-000000000003"];

const transitionArgs: fc.Arbitrary<TransitionArgs> = fc.oneof(
  fc.record({ call: fc.constant("RunJob" as const), executorId: fc.constantFrom("ex-1", "ex-2"), leaseSeconds: fc.constantFrom(0, 60) }),
  fc.record({
    call: fc.constant("CompleteJob" as const),
    result: fc.constant({ forecast: { cost: "1", rows: "2" } }),
    resultCase: fc.constantFrom("forecast", "datasetsExecuteDml"),
    attempt: fc.constantFrom(0, 1, 2, 3),
  }),
  fc.record({ call: fc.constant("FailJob" as const), message: fc.constant("broke"), diagnostic: fc.constant(null), attempt: fc.constantFrom(0, 1, 2) }),
  fc.record({ call: fc.constant("RequestJobCancellation" as const), reason: fc.constant("not needed") }),
  fc.record({ call: fc.constant("CancelJob" as const) }),
);

const call: fc.Arbitrary<WriteCall> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant("transition" as const), jobId: fc.constantFrom(...IDS), args: transitionArgs, actor: fc.constantFrom(SERVICE, USER_100, USER_200) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("heartbeat" as const),
      jobId: fc.constantFrom(...IDS),
      executorId: fc.constantFrom("ex-1", "ex-2"),
      attempt: fc.constantFrom(1, 2, 3),
      actor: fc.constantFrom(SERVICE, USER_100),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("expire" as const), jobId: fc.constantFrom(...IDS) }) },
);

/** Up to three jobs in any state (one maybe of another company, one maybe with a lease already run out, one maybe missing). */
const lockedJobs: fc.Arbitrary<Map<string, JobRecord>> = fc
  .tuple(fc.constantFrom(...JOB_STATES), fc.constantFrom(...JOB_STATES), fc.boolean(), fc.boolean(), fc.boolean())
  .map(([first, second, foreign, expired, missing]) => {
    const jobs = new Map<string, JobRecord>();
    jobs.set(IDS[0], jobIn(IDS[0], first, expired && LEASED_STATES.has(first) ? { leaseExpiresAt: NOW - SECOND } : {}));
    jobs.set(IDS[1], jobIn(IDS[1], second, foreign ? { companyId: "200" } : {}));
    if (!missing) jobs.set(IDS[2], jobIn(IDS[2], "PENDING"));
    return jobs;
  });

describe("decideBatch", () => {
  test("any batch answers and changes exactly what its calls would, one at a time in the same order", () => {
    fc.assert(
      fc.property(lockedJobs, fc.array(call, { minLength: 1, maxLength: 12 }), (jobs, calls) => {
        const expected = oneAtATime(calls, jobs);
        const decided = decideBatch(calls, jobs, NOW);
        expect(decided.outcomes.map(answerOf)).toEqual(expected.answers);
        expect(decided.events).toEqual(expected.events);
        // What is written is the last state of each job that changed, once each.
        const changed = new Map(decided.changedJobs.map((job) => [job.id, job]));
        expect(changed.size).toBe(decided.changedJobs.length);
        for (const [id, job] of expected.jobs) {
          if (job !== jobs.get(id)) expect(changed.get(id)).toEqual(job);
          else expect(changed.has(id)).toBe(false);
        }
      }),
      { numRuns: 2000 },
    );
  });

  test("a request_id its creator repeats within the batch is answered by the first call; another creator's is its own", () => {
    const create = (requestId: string | null, creatorKey: string, id: string): WriteCall => ({
      kind: "create",
      fields: { id, type: "FORECAST", companyId: "100", createdBy: SERVICE, input: null, dataPlaneId: "", computePoolId: "", executionCluster: "UNSPECIFIED" },
      creatorKey,
      requestId,
    });
    const rid = "7d1f3f4e-8f0a-4c55-9a43-5e9c3b2f6a10";
    const decided = decideBatch(
      [create(rid, "service:a", IDS[0]), create(rid, "service:a", IDS[1]), create(rid, "service:b", IDS[2]), create(null, "service:a", "x"), create(null, "service:a", "y")],
      new Map(),
      NOW,
    );
    expect(decided.outcomes.map((o) => o.kind)).toEqual(["create", "same-request", "create", "create", "create"]);
    expect(decided.outcomes[1]).toEqual({ kind: "same-request", as: 0 });
    expect(decided.creates.map((c) => c.job.id)).toEqual([IDS[0], IDS[2], "x", "y"]);
    expect(decided.events.map((e) => [e.jobId, e.type, e.revision])).toEqual(decided.creates.map((c) => [c.job.id, "CREATED", 1]));
    expect(decided.creates.every((c) => c.job.createdAt === NOW && c.job.state === "PENDING")).toBe(true);
  });

  test("the jobs a batch locks: every job named, once, none for creates", () => {
    const calls: WriteCall[] = [
      { kind: "expire", jobId: IDS[1] },
      { kind: "transition", jobId: IDS[0], args: { call: "CancelJob" }, actor: SERVICE },
      { kind: "heartbeat", jobId: IDS[1], executorId: "ex-1", attempt: 1, actor: SERVICE },
    ];
    expect(jobsNamed(calls).sort()).toEqual([IDS[0], IDS[1]]);
  });
});
