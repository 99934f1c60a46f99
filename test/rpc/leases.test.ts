// Executor liveness (docs/contract.md §9): leases, HeartbeatJob and the reaper, over the wire.
//
// Time is the test's to drive, so that no stall of a loaded machine can change
// an outcome: leases are long (an hour), a lease runs out when the test moves
// lease_expires_at in the database (the reaper compares it with the database's
// clock), and the file's server never reaps by itself (its interval is an
// hour): the test runs a reaper pass (`reaper.tick()`) when it wants one. The
// last two tests let replicas reap on their own timers and wait for the
// effect, with a bound.

import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { jobsClient, type JobsClient, type Msg, reader } from "../support/grpc.js";
import { sql, startServer, type TestServer } from "../support/harness.js";
import { spawnServer } from "../support/processes.js";
import { eventually } from "../support/watching.js";

const HOUR = 3600;

let server: TestServer;
let client: JobsClient;

beforeAll(async () => {
  server = await startServer({ env: { REAPER_INTERVAL_SECONDS: String(HOUR), REAPER_GRACE_SECONDS: "0" } });
  client = jobsClient(server.address, server.tokens.service);
});
afterAll(async () => {
  client?.close();
  await server?.stop();
});

async function runningJob(executorId: string, leaseSeconds = HOUR): Promise<Msg> {
  const { job } = await client.call("CreateJob", { type: "JOB_TYPE_HEALTH_CHECK", company_id: "1" });
  const run = await client.call("RunJob", { job_id: job.id, executor_id: executorId, lease_seconds: leaseSeconds });
  return run.job;
}

const getJob = async (jobId: string): Promise<Msg> => (await client.call("GetJob", { job_id: jobId })).job;

/** Moves the job's lease `seconds` earlier, as if that much time had passed for it. */
const age = (jobId: string, seconds: number) =>
  sql(server.databaseUrl, "update jobs set lease_expires_at = lease_expires_at - make_interval(secs => $2) where id = $1", [jobId, seconds]);

/** Lets the job's lease run out now (by the database's clock). */
const expire = (jobId: string) => sql(server.databaseUrl, "update jobs set lease_expires_at = now() - interval '1 second' where id = $1", [jobId]);

/** One reaper pass on the file's server. */
const reap = () => server.app.reaper.tick();

/** The database's clock, in microseconds. */
const databaseNow = async () => BigInt((await sql<{ now: string }>(server.databaseUrl, "select (extract(epoch from now()) * 1e6)::bigint::text as now"))[0].now);
const micros = (ts: Msg) => BigInt(ts.seconds) * 1_000_000n + BigInt(Math.floor(ts.nanos / 1000));

describe("RunJob lease", () => {
  test("sets lease_seconds, and lease_expires_at that many seconds after the start, from the database clock", async () => {
    const before = await databaseNow();
    const job = await runningJob("ex-lease", 30);
    const after = await databaseNow();
    expect(job.lease_seconds).toBe(30);
    expect(micros(job.lease_expires_at) - micros(job.started_at)).toBe(30_000_000n);
    // The start is the transition's transaction time: between two readings of the database's clock.
    expect(micros(job.started_at)).toBeGreaterThanOrEqual(before);
    expect(micros(job.started_at)).toBeLessThanOrEqual(after);
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
  test("fails a RUNNING job whose lease ran out, and a watcher sees it", async () => {
    const job = await runningJob("ex-silent");
    const watch = reader(client.stream("WatchJob", { job_id: job.id, after_revision: job.revision }));
    await expire(job.id);
    expect(await reap()).toBeGreaterThanOrEqual(1);
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

  test("heartbeats keep a job RUNNING past its lease span; once they stop, it is reaped", async () => {
    // A 60 s lease that ages 40 s between heartbeats: three rounds are twice its span.
    const job = await runningJob("ex-alive", 60);
    for (let round = 0; round < 3; round++) {
      await age(job.id, 40);
      const beat = await client.call("HeartbeatJob", { job_id: job.id, executor_id: "ex-alive", attempt: job.attempt });
      expect(beat.job.state).toBe("JOB_STATE_RUNNING");
      await reap();
      expect(await getJob(job.id)).toMatchObject({ state: "JOB_STATE_RUNNING", revision: job.revision });
    }
    // No heartbeat: 40 s, still within the span…
    await age(job.id, 40);
    await reap();
    expect((await getJob(job.id)).state).toBe("JOB_STATE_RUNNING");
    // …and 40 s more, past it.
    await age(job.id, 40);
    await reap();
    const reaped = await getJob(job.id);
    expect(reaped.state).toBe("JOB_STATE_FAILED");
    expect(reaped.failures.at(-1).message).toMatch(/lease expired/);
  });

  test("cancels a PENDING_CANCELLATION job whose lease ran out", async () => {
    const job = await runningJob("ex-cancel");
    await client.call("RequestJobCancellation", { job_id: job.id, reason: "not needed" });
    await expire(job.id);
    await reap();
    const cancelled = await getJob(job.id);
    expect(cancelled.state).toBe("JOB_STATE_CANCELLED");
    const { events } = await client.call("ListJobEvents", { job_id: job.id });
    const last = events.at(-1);
    expect(last.type).toBe("JOB_EVENT_TYPE_CANCELLED");
    expect(last.actor.name).toBe("reaper");
    expect(cancelled.revision).toBe(last.revision);
  });

  test("a stale executor is told STALE_ATTEMPT after a re-run, and its late reports change nothing", async () => {
    const job = await runningJob("ex-old");
    await expire(job.id);
    await reap();
    expect((await getJob(job.id)).state).toBe("JOB_STATE_FAILED");
    const rerun = await client.call("RunJob", { job_id: job.id, executor_id: "ex-new", lease_seconds: 60 });
    expect(rerun.changed).toBe(true);
    expect(rerun.job.attempt).toBe("2");
    expect(rerun.job.finished_at).toBeNull();

    const before = await getJob(job.id);
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
    expect(await getJob(job.id)).toEqual(before);
  });

  test("leases live in the database: a job whose lease ran out while no server ran is reaped by the next one", async () => {
    const first = await startServer({ env: { REAPER_INTERVAL_SECONDS: String(HOUR) } });
    const firstClient = jobsClient(first.address, first.tokens.service);
    let job: Msg;
    try {
      ({ job } = await firstClient.call("CreateJob", { type: "JOB_TYPE_HEALTH_CHECK", company_id: "1" }));
      await firstClient.call("RunJob", { job_id: job.id, executor_id: "ex-restart", lease_seconds: HOUR });
    } finally {
      firstClient.close();
      await first.stop();
    }
    // No server runs: the lease runs out meanwhile.
    await sql(first.databaseUrl, "update jobs set lease_expires_at = now() - interval '1 second' where id = $1", [job.id]);
    const next = await startServer({ databaseUrl: first.databaseUrl, env: { REAPER_INTERVAL_SECONDS: "1", REAPER_GRACE_SECONDS: "0" } });
    const nextClient = jobsClient(next.address, next.tokens.service);
    try {
      let now: Msg = job;
      await eventually(async () => (now = (await nextClient.call("GetJob", { job_id: job.id })).job).state === "JOB_STATE_FAILED", "the next server to reap the job");
      expect(now.failures.at(-1).message).toMatch(/lease expired/);
      expect(now.revision).toBe("3");
    } finally {
      nextClient.close();
      await next.stop();
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
      await eventually(async () => {
        const [{ n }] = await sql<{ n: string }>(a.databaseUrl, "select count(*) as n from jobs where state = 'FAILED' and id = any($1::uuid[])", [ids]);
        return Number(n) === ids.length;
      }, "both replicas to reap every job", 20_000);
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
