// Executor liveness (SPEC §9): leases, HeartbeatJob and the reaper, over the wire.

import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { jobsClient, type JobsClient, type Msg, reader } from "../support/grpc.js";
import { sql, startServer, type TestServer } from "../support/harness.js";
import { spawnServer } from "../support/processes.js";

let server: TestServer;
let client: JobsClient;

beforeAll(async () => {
  server = await startServer({ env: { REAPER_INTERVAL_SECONDS: "1", REAPER_GRACE_SECONDS: "0" } });
  client = jobsClient(server.address, server.tokens.service);
});
afterAll(async () => {
  client?.close();
  await server?.stop();
});

async function runningJob(executorId: string, leaseSeconds: number): Promise<Msg> {
  const { job } = await client.call("CreateJob", { type: "JOB_TYPE_HEALTH_CHECK", company_id: "1" });
  const run = await client.call("RunJob", { job_id: job.id, executor_id: executorId, lease_seconds: leaseSeconds });
  return run.job;
}

async function waitForState(jobId: string, state: string, timeoutMs = 15_000): Promise<Msg> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { job } = await client.call("GetJob", { job_id: jobId });
    if (job.state === state) return job;
    if (Date.now() > deadline) throw new Error(`job ${jobId} is still ${job.state}, expected ${state}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const seconds = (ts: Msg) => Number(ts.seconds) + ts.nanos / 1e9;

describe("RunJob lease", () => {
  test("sets lease_seconds and lease_expires_at from the database clock", async () => {
    const job = await runningJob("ex-lease", 30);
    expect(job.lease_seconds).toBe(30);
    const [{ now }] = await sql<{ now: number }>(server.databaseUrl, "select extract(epoch from now())::float8 as now");
    const expires = seconds(job.lease_expires_at);
    // The lease runs from the transition's own transaction time, which is just before `now` here.
    expect(expires).toBeGreaterThan(now + 25);
    expect(expires).toBeLessThanOrEqual(now + 30);
  });

  test("lease_seconds 0 means LEASE_DEFAULT_SECONDS (60)", async () => {
    const job = await runningJob("ex-default", 0);
    expect(job.lease_seconds).toBe(60);
  });

  test("completing a job clears its lease", async () => {
    const job = await runningJob("ex-done", 30);
    const done = await client.call("CompleteJob", {
      job_id: job.id,
      result: { health_check: { healthy: true } },
      attempt: job.attempt,
    });
    expect(done.job.lease_expires_at).toBeNull();
  });
});

describe("the reaper", () => {
  test("fails a RUNNING job whose executor stopped heartbeating, and a watcher sees it", async () => {
    const job = await runningJob("ex-silent", 1);
    const watch = reader(client.stream("WatchJob", { job_id: job.id, after_revision: job.revision }));
    const message = await watch.next(15_000);
    expect(message?.event.type).toBe("JOB_EVENT_TYPE_FAILED");
    expect(message?.event.to_state).toBe("JOB_STATE_FAILED");
    expect(message?.event.actor).toMatchObject({ type: "PRINCIPAL_TYPE_SERVICE", name: "reaper" });
    const failure = message?.event.job.failures.at(-1);
    expect(failure.message).toMatch(/lease expired/);
    expect(failure.message).toContain("ex-silent");
    expect(failure.attempt).toBe("1");
    expect(failure.executor_id).toBe("ex-silent");
    // The stream ends OK after the terminal event.
    expect(await watch.next()).toBeNull();
  });

  test("heartbeats keep a job RUNNING past its lease span", async () => {
    const job = await runningJob("ex-alive", 1);
    for (let i = 0; i < 12; i++) {
      await new Promise((r) => setTimeout(r, 250));
      const beat = await client.call("HeartbeatJob", { job_id: job.id, executor_id: "ex-alive", attempt: job.attempt });
      expect(beat.job.state).toBe("JOB_STATE_RUNNING");
    }
    const { job: after } = await client.call("GetJob", { job_id: job.id });
    expect(after.state).toBe("JOB_STATE_RUNNING");
    expect(after.revision).toBe(job.revision);
  });

  test("cancels a PENDING_CANCELLATION job whose lease expired", async () => {
    const job = await runningJob("ex-cancel", 1);
    await client.call("RequestJobCancellation", { job_id: job.id, reason: "not needed" });
    const cancelled = await waitForState(job.id, "JOB_STATE_CANCELLED");
    const { events } = await client.call("ListJobEvents", { job_id: job.id });
    const last = events.at(-1);
    expect(last.type).toBe("JOB_EVENT_TYPE_CANCELLED");
    expect(last.actor.name).toBe("reaper");
    expect(cancelled.revision).toBe(last.revision);
  });

  test("a stale executor is told STALE_ATTEMPT after a re-run, and its late reports change nothing", async () => {
    const job = await runningJob("ex-old", 1);
    await waitForState(job.id, "JOB_STATE_FAILED");
    const rerun = await client.call("RunJob", { job_id: job.id, executor_id: "ex-new", lease_seconds: 60 });
    expect(rerun.changed).toBe(true);
    expect(rerun.job.attempt).toBe("2");
    expect(rerun.job.finished_at).toBeNull();

    const before = (await client.call("GetJob", { job_id: job.id })).job;
    const stale = [
      await client.fail("HeartbeatJob", { job_id: job.id, executor_id: "ex-old", attempt: "1" }),
      await client.fail("CompleteJob", { job_id: job.id, result: { health_check: { healthy: true } }, attempt: "1" }),
      await client.fail("FailJob", { job_id: job.id, message: "late failure", attempt: "1" }),
    ];
    for (const error of stale) {
      expect(error.code).toBe(9); // FAILED_PRECONDITION
      expect(error.errorInfo?.reason).toBe("STALE_ATTEMPT");
      expect(error.errorInfo?.metadata.state).toBe("JOB_STATE_RUNNING");
    }
    const after = (await client.call("GetJob", { job_id: job.id })).job;
    expect(after).toEqual(before);
  });

  test("leases live in the database: a job expired while no server ran is reaped by the next one", async () => {
    const job = await runningJob("ex-restart", 3600);
    const other = await startServer({
      databaseUrl: server.databaseUrl,
      env: { REAPER_INTERVAL_SECONDS: "1", REAPER_GRACE_SECONDS: "0" },
    });
    try {
      // Lapse the lease as if time had passed while servers were down.
      await sql(server.databaseUrl, "update jobs set lease_expires_at = now() - interval '1 second' where id = $1", [job.id]);
      const failed = await waitForState(job.id, "JOB_STATE_FAILED");
      expect(failed.failures.at(-1).message).toMatch(/lease expired/);
    } finally {
      await other.stop();
    }
  });
});

describe("two replicas reaping one batch", () => {
  test("every expired job gets exactly one reaping event, with two server processes", async () => {
    const reaperEnv = { REAPER_INTERVAL_SECONDS: "1", REAPER_GRACE_SECONDS: "0", REAPER_BATCH_SIZE: "7" };
    const a = await startServer({ env: reaperEnv });
    // The second replica is a real process of its own.
    const b = await spawnServer({ databaseUrl: a.databaseUrl, env: reaperEnv });
    const clientA = jobsClient(a.address, a.tokens.service);
    try {
      const ids: string[] = [];
      for (let i = 0; i < 60; i++) {
        const { job } = await clientA.call("CreateJob", { type: "JOB_TYPE_HEALTH_CHECK", company_id: "1" });
        await clientA.call("RunJob", { job_id: job.id, executor_id: `ex-${i}`, lease_seconds: 3600 });
        ids.push(job.id);
      }
      await sql(a.databaseUrl, "update jobs set lease_expires_at = now() - interval '1 second' where id = any($1::uuid[])", [ids]);
      const deadline = Date.now() + 20_000;
      for (;;) {
        const [{ n }] = await sql<{ n: string }>(a.databaseUrl, "select count(*) as n from jobs where state = 'FAILED' and id = any($1::uuid[])", [ids]);
        if (Number(n) === ids.length) break;
        if (Date.now() > deadline) throw new Error(`only ${n} of ${ids.length} jobs reaped`);
        await new Promise((r) => setTimeout(r, 200));
      }
      const rows = await sql<{ job_id: string; reaps: string; revisions: number[] }>(
        a.databaseUrl,
        `select job_id, count(*) filter (where actor->>'name' = 'reaper') as reaps, array_agg(revision order by revision) as revisions
         from job_events where job_id = any($1::uuid[]) group by job_id`,
        [ids],
      );
      expect(rows).toHaveLength(ids.length);
      for (const row of rows) {
        expect(Number(row.reaps)).toBe(1);
        expect(row.revisions).toEqual([1, 2, 3]);
      }
      // A reaped job runs again as attempt 2.
      const rerun = await clientA.call("RunJob", { job_id: ids[0], executor_id: "ex-again" });
      expect(rerun.job.attempt).toBe("2");
      expect(rerun.job.state).toBe("JOB_STATE_RUNNING");
    } finally {
      clientA.close();
      await b.stop();
      await a.stop();
    }
  });
});
