// The transition rules under concurrency, over the wire: racing claims have
// one winner, racing reports have one winner, and after any storm each job's
// event log is 1, 2, 3, … with no gap or duplicate, and the job row equals
// the last event's snapshot. All of it goes through one server, whose batched
// writer puts a job's calls in arrival order before they reach the database
// (store/batcher.ts): this proves that order and what the batches write. The
// row lock, which orders calls from different replicas, is proved across
// processes by test/e2e/races.test.ts and, deterministically, by
// test/store/job-store.concurrency.test.ts.

import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { jobsClient, type JobsClient, type Msg, type RpcError } from "../support/grpc.js";
import { startServer, type TestServer } from "../support/harness.js";
import { checkJobs, type Reply, refusalViolation, type TransitionCall } from "../support/invariants.js";
import { FORECAST_RESULT, inParallel, jobIn, Status } from "./jobs-fixture.js";

let server: TestServer;
// One client: its HTTP/2 connection carries every racing call as its own
// stream, and the server handles them all at once.
let client: JobsClient;

beforeAll(async () => {
  // 40 racing calls outnumber the pool's 20 connections, and on a loaded
  // 2-core CI machine the queue for a connection may outlast the default 2 s.
  // This file is about serialization, not the pool's time limit.
  server = await startServer({ env: { DB_ACQUIRE_TIMEOUT_MS: "15000" } });
  client = jobsClient(server.address, server.tokens.service);
});
afterAll(async () => {
  client?.close();
  await server?.stop();
});

const replyOf = (call: string, answer: Msg): Reply => ({ jobId: answer.job.id, call: call as TransitionCall, changed: answer.changed, job: answer.job });

/**
 * docs/contract.md §4's invariants (support/invariants.ts): revisions 1..n, a from→to
 * chain of legal moves, the row equal to the last snapshot, and each reply's
 * job the snapshot of its revision, a changed one claiming its revision alone.
 * No heartbeats are sent here, so every field must match, lease ones too.
 * `complete`: the replies account for every event after CREATED.
 */
async function expectConsistentLog(jobId: string, replies: Reply[] = [], complete = false): Promise<Msg[]> {
  const checked = await checkJobs(client, [jobId], replies, { heartbeats: false, complete });
  expect(checked.violations).toEqual([]);
  return checked.logs.get(jobId) as Msg[];
}

describe("racing claims", () => {
  test("40 simultaneous RunJob calls from different executors: one wins, all see the winner", async () => {
    const job = await jobIn(client, "PENDING");
    const replies = await Promise.all(
      Array.from({ length: 40 }, (_, i) => client.call("RunJob", { job_id: job.id, executor_id: `executor-${i}` })),
    );
    const winners = replies.filter((r) => r.changed);
    expect(winners).toHaveLength(1);
    const winner = winners[0].job.executor_id;
    expect(replies.map((r) => r.job.executor_id)).toEqual(replies.map(() => winner));
    expect(replies.every((r) => r.job.attempt === "1" && r.job.revision === "2")).toBe(true);

    const events = await expectConsistentLog(job.id, replies.map((r) => replyOf("RunJob", r)), true);
    expect(events.map((e) => e.type)).toEqual(["JOB_EVENT_TYPE_CREATED", "JOB_EVENT_TYPE_STARTED"]);
    expect(events[1].job.executor_id).toBe(winner);
  });

  test("40 simultaneous RunJob calls on a FAILED job start exactly one retry", async () => {
    const job = await jobIn(client, "FAILED");
    const replies = await Promise.all(
      Array.from({ length: 40 }, (_, i) => client.call("RunJob", { job_id: job.id, executor_id: `retry-${i}` })),
    );
    expect(replies.filter((r) => r.changed)).toHaveLength(1);
    const winner = replies.find((r) => r.changed)?.job;
    expect(winner).toMatchObject({ attempt: "2", state: "JOB_STATE_RUNNING", revision: "4" });
    expect(replies.every((r) => r.job.executor_id === winner?.executor_id && r.job.attempt === "2")).toBe(true);
    await expectConsistentLog(job.id, replies.map((r) => replyOf("RunJob", r)));
  });
});

describe("racing reports", () => {
  test("20 CompleteJob and 20 FailJob at once: exactly one wins, the rest are no-ops", async () => {
    const job = await jobIn(client, "RUNNING");
    const calls = Array.from({ length: 40 }, (_, i) =>
      i % 2 === 0
        ? client.call("CompleteJob", { job_id: job.id, result: { forecast: { cost: String(i), rows: "1" } } })
        : client.call("FailJob", { job_id: job.id, message: `failure ${i}`, attempt: i % 4 === 1 ? "1" : "0" }),
    );
    const replies = await Promise.all(calls);
    const winners = replies.filter((r) => r.changed);
    expect(winners).toHaveLength(1);
    const final = winners[0].job;
    expect(["JOB_STATE_COMPLETED", "JOB_STATE_FAILED"]).toContain(final.state);
    // The losers all saw the job as the winner left it.
    for (const reply of replies) expect(reply.job).toEqual(final);
    if (final.state === "JOB_STATE_COMPLETED") expect(final.failures).toEqual([]);
    else {
      expect(final.result).toBeNull();
      expect(final.failures).toHaveLength(1);
    }

    const events = await expectConsistentLog(job.id, replies.map((r, i) => replyOf(i % 2 === 0 ? "CompleteJob" : "FailJob", r)));
    expect(events).toHaveLength(3);
    expect(events[2].job).toEqual(final);
  });

  test("racing cancellation requests and acknowledgements: one request, at most one cancel, never out of order", async () => {
    const job = await jobIn(client, "RUNNING");
    const outcomes = await Promise.all(
      Array.from({ length: 40 }, (_, i) => {
        const method = i % 2 === 0 ? "RequestJobCancellation" : "CancelJob";
        return client
          .call(method, { job_id: job.id, reason: `reason ${i}` })
          .then(
            (reply) => ({ method, reply, error: null as RpcError | null }),
            (error: RpcError) => ({ method, reply: null as Msg | null, error }),
          );
      }),
    );
    for (const o of outcomes) {
      if (o.error) {
        // Only a CancelJob decided before any request may be refused.
        expect(o.method).toBe("CancelJob");
        expect(o.error.code).toBe(Status.FAILED_PRECONDITION);
        expect(o.error.errorInfo).toMatchObject({ reason: "INVALID_TRANSITION", metadata: { state: "JOB_STATE_RUNNING" } });
      }
    }
    const changed = outcomes.filter((o) => o.reply?.changed);
    expect(changed.filter((o) => o.method === "RequestJobCancellation")).toHaveLength(1);
    expect(changed.filter((o) => o.method === "CancelJob").length).toBeLessThanOrEqual(1);

    const events = await expectConsistentLog(
      job.id,
      outcomes.flatMap((o) => (o.reply ? [replyOf(o.method, o.reply)] : [])),
    );
    expect(events.map((e) => e.type).slice(0, 3)).toEqual([
      "JOB_EVENT_TYPE_CREATED",
      "JOB_EVENT_TYPE_STARTED",
      "JOB_EVENT_TYPE_CANCELLATION_REQUESTED",
    ]);
    expect(events.length).toBe(3 + changed.filter((o) => o.method === "CancelJob").length);
  });
});

/** mulberry32: a small seeded generator, so a failing storm can be replayed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("a storm of random transition calls", () => {
  const SEED = 20_240_611;
  const JOBS = 6;
  const CALLS = 400;

  test(`${CALLS} random calls on ${JOBS} jobs (seed ${SEED}) leave every log contiguous and every row equal to its last event`, async () => {
    const random = seeded(SEED);
    const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)];
    const jobs = await Promise.all(Array.from({ length: JOBS }, () => jobIn(client, "PENDING")));

    // Run and fail often so that jobs keep cycling; complete and cancel rarely, since they end a job.
    const weighted: Array<[string, number]> = [
      ["RunJob", 45],
      ["FailJob", 42],
      ["RequestJobCancellation", 5],
      ["CancelJob", 5],
      ["CompleteJob", 3],
    ];
    const total = weighted.reduce((sum, [, w]) => sum + w, 0);
    const method = () => {
      let r = random() * total;
      for (const [name, w] of weighted) if ((r -= w) < 0) return name;
      return "RunJob";
    };
    const attempt = () => (random() < 0.7 ? "0" : String(1 + Math.floor(random() * 4)));

    const plan = Array.from({ length: CALLS }, (_, i) => {
      const job = pick(jobs);
      const name = method();
      const request: Msg = { job_id: job.id };
      if (name === "RunJob") Object.assign(request, { executor_id: `executor-${Math.floor(random() * 5)}` });
      if (name === "CompleteJob") Object.assign(request, { result: FORECAST_RESULT, attempt: attempt() });
      if (name === "FailJob") Object.assign(request, { message: `failure ${i}`, attempt: attempt() });
      if (name === "RequestJobCancellation") Object.assign(request, { reason: `reason ${i}` });
      return { jobId: job.id as string, name, request };
    });

    const outcomes = await inParallel(
      plan.map((p) => () =>
        client.call(p.name, p.request).then(
          (reply) => ({ ...p, reply, error: null as RpcError | null }),
          (error: RpcError) => ({ ...p, reply: null as Msg | null, error }),
        ),
      ),
      16,
    );

    // The only refusals the table and fencing allow.
    const refusals = outcomes.flatMap((o) => {
      const violation = o.error && refusalViolation(o.jobId, o.name as TransitionCall, String(o.request.attempt ?? "0"), o.error);
      return violation ? [violation] : [];
    });
    expect(refusals).toEqual([]);

    // Every job's log and row, and one changed reply per event after CREATED, one revision each.
    const replies = outcomes.flatMap((o) => (o.reply ? [replyOf(o.name, o.reply)] : []));
    const checked = await checkJobs(client, jobs.map((j) => j.id), replies, { heartbeats: false, complete: true });
    expect(checked.violations).toEqual([]);
    // The storm really moved the jobs, more than once each on average.
    expect(checked.events - JOBS).toBeGreaterThan(JOBS * 2);
  });
});
