// Losing the database and getting it back (docs/contract.md §10, §11), in one process:
// health goes NOT_SERVING within 5 s, calls fail UNAVAILABLE instead of
// hanging, the server stays up, and once PostgreSQL is back health returns
// to SERVING and calls work again, with no restart.
//
// This file runs its own PostgreSQL (the shared one must stay up for every
// other file) and stops and restarts it on the same data directory and port.

import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { status } from "@grpc/grpc-js";
import { generateSecret } from "../../src/auth/tokens.js";
import { attempt, authorizationMetadata, bearer, eventually } from "../support/auth-calls.js";
import { jobsClient, type JobsClient, reader, type RpcError, withErrorInfo } from "../support/grpc.js";
import { type HealthClient, healthClient } from "../support/health-client.js";
import { sql, startServer, type TestServer } from "../support/harness.js";
import { type OwnPostgres, startOwnPostgres } from "../support/own-postgres.js";
import { readToEnd, readUntil } from "../support/watching.js";

/** Long enough that a reaper without it would have reaped well before (within about two seconds of the restart). */
const GRACE_SECONDS = 5;

let postgres: OwnPostgres;
let server: TestServer | null = null;
let client: JobsClient;
let health: HealthClient;

beforeAll(async () => {
  postgres = await startOwnPostgres();
  server = await startServer({
    databaseUrl: postgres.url,
    env: { DB_ACQUIRE_TIMEOUT_MS: "1000", REAPER_INTERVAL_SECONDS: "1", REAPER_GRACE_SECONDS: String(GRACE_SECONDS) },
  });
  client = jobsClient(server.address, server.tokens.service);
  health = healthClient(server.address);
});

afterAll(async () => {
  client?.close();
  health?.close();
  await server?.stop();
  await postgres?.destroy();
});

/** A unary call with a deadline: a call that hung would end DEADLINE_EXCEEDED, not with the server's answer. */
function getJob(jobId: string, token: string, deadlineMs = 15_000): Promise<RpcError | null> {
  return new Promise((resolve) => {
    // biome-ignore lint: dynamic method on the untyped grpc-js client
    (client.raw as any).getJob({ job_id: jobId }, authorizationMetadata(bearer(token)), { deadline: Date.now() + deadlineMs }, (err: RpcError | null) =>
      resolve(err && withErrorInfo(err)),
    );
  });
}

test("the database goes away and comes back: NOT_SERVING and UNAVAILABLE, then SERVING again in the same process", async () => {
  if (!server) throw new Error("setup failed");
  const { job } = await client.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "1" });
  expect(await health.check("")).toBe("SERVING");

  // Watchers of both names, reading every status they are sent.
  const watches = ["", "jobs.v1.JobService"].map((service) => {
    const watch = health.watch(service);
    const seen: string[] = [];
    const done = (async () => {
      for (;;) {
        const s = await watch.next(60_000).catch(() => null);
        if (s === null) return;
        seen.push(s);
      }
    })();
    return { watch, seen, done };
  });
  await eventually(async () => watches.every((w) => w.seen.length > 0), 5_000);

  // --- the database goes away
  await postgres.stop();

  // docs/contract.md §11: NOT_SERVING within 5 s of losing the database (lost before stop() returns, so this bound is the looser one).
  const notServing = await eventually(async () => (await health.checkOutcome("")) === "NOT_SERVING", 5_000, 100);
  expect(notServing).toBe(true);
  expect(await health.check("jobs.v1.JobService")).toBe("NOT_SERVING");

  // Calls fail UNAVAILABLE (not a hang, not INTERNAL): with a token the server has cached, and with one it must look up.
  for (const token of [server.tokens.service, generateSecret()]) {
    const error = await getJob(job.id, token);
    expect(error && status[error.code]).toBe("UNAVAILABLE");
    expect(error?.errorInfo).toMatchObject({ domain: "jobs.v1", reason: "DATABASE_UNAVAILABLE" });
    // Nothing of the driver's message or SQL reaches the caller.
    expect(error?.details).not.toMatch(/ECONNREFUSED|select|127\.0\.0\.1/i);
  }
  const create = await attempt(client, "CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "1" }, bearer(server.tokens.service));
  expect(create.ok ? "OK" : status[create.error.code]).toBe("UNAVAILABLE");

  // The server is still up and answering.
  expect(await health.check("")).toBe("NOT_SERVING");

  // --- the database comes back, on the same data directory and port
  await postgres.start();
  const serving = await eventually(async () => (await health.checkOutcome("")) === "SERVING", 20_000, 100);
  expect(serving).toBe(true);
  expect(await health.check("jobs.v1.JobService")).toBe("SERVING");

  // Calls work again; the job made before the outage is still there.
  const back = await eventually(async () => (await getJob(job.id, server!.tokens.service)) === null, 10_000, 100);
  expect(back).toBe(true);
  for (let i = 0; i < 5; i++) expect(await getJob(job.id, server.tokens.service)).toBeNull();
  const again = await client.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "1" });
  expect(again.job.state).toBe("JOB_STATE_PENDING");
  const run = await client.call("RunJob", { job_id: job.id, executor_id: "after-outage" });
  expect(run.changed).toBe(true);

  // Both watchers saw the whole story, in order.
  await eventually(async () => watches.every((w) => w.seen.at(-1) === "SERVING" && w.seen.length >= 3), 5_000);
  for (const w of watches) {
    w.watch.stream.cancel();
    await w.done;
    const changes = w.seen.filter((s, i) => s !== w.seen[i - 1]);
    expect(changes).toEqual(["SERVING", "NOT_SERVING", "SERVING"]);
  }
});

test("after the database returns, the reaper waits REAPER_GRACE_SECONDS before failing expired leases", async () => {
  if (!server || !postgres.up) throw new Error("setup failed");
  const { job } = await client.call("CreateJob", { type: "JOB_TYPE_HEALTH_CHECK", company_id: "1" });
  await client.call("RunJob", { job_id: job.id, executor_id: "ex-outage", lease_seconds: 3600 });

  await postgres.stop();
  expect(await eventually(async () => (await health.checkOutcome("")) === "NOT_SERVING", 6_000, 100)).toBe(true);
  await postgres.start();
  // The lease runs out the moment the database is back (the executor could not reach us): it
  // deserves a chance to heartbeat. The server cannot have seen the database back before it started.
  const [{ started }] = await sql<{ started: string }>(
    postgres.url,
    `update jobs set lease_expires_at = now() - interval '1 second' where id = $1
     returning (extract(epoch from pg_postmaster_start_time()) * 1e6)::bigint::text as started`,
    [job.id],
  );
  // The reaper fails it in the end (it ticks every second)…
  expect(
    await eventually(async () => (await client.call("GetJob", { job_id: job.id })).job.state === "JOB_STATE_FAILED", 20_000, 200),
  ).toBe(true);
  // …but not before the grace had passed, by the database's clock: stalls here can only make it later.
  const { events } = await client.call("ListJobEvents", { job_id: job.id });
  const reaped = events.at(-1);
  expect(reaped.actor.name).toBe("reaper");
  const reapedAt = BigInt(reaped.occurred_at.seconds) * 1_000_000n + BigInt(Math.floor(reaped.occurred_at.nanos / 1000));
  expect(reapedAt - BigInt(started)).toBeGreaterThanOrEqual(BigInt(GRACE_SECONDS) * 1_000_000n);
});

test("a database that stops answering (its processes frozen, connections open) ends watch streams UNAVAILABLE instead of leaving them silent", async () => {
  if (!server) throw new Error("setup failed");
  const { job } = await client.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "1" });
  const watchJob = reader(client.stream("WatchJob", { job_id: job.id, after_revision: 0 }));
  expect((await watchJob.next())?.event.revision).toBe("1");
  const watchJobs = reader(client.stream("WatchJobs", {}));
  await readUntil(watchJobs, (m) => m.kind === "synced");
  postgres.pause();
  try {
    for (const stream of [watchJob, watchJobs]) {
      const end = await readToEnd(stream, 20_000);
      expect(end.error?.code).toBe(status.UNAVAILABLE);
      expect(end.error?.errorInfo).toMatchObject({ reason: "DATABASE_UNAVAILABLE" });
    }
  } finally {
    postgres.resume();
  }
  // Back: a client resuming from its last revision loses nothing.
  await eventually(async () => (await health.check("")) === "SERVING", 15_000);
  await client.call("RunJob", { job_id: job.id, executor_id: "after-the-stall" });
  const resumed = reader(client.stream("WatchJob", { job_id: job.id, after_revision: 1 }));
  expect((await resumed.next(15_000))?.event).toMatchObject({ revision: "2", to_state: "JOB_STATE_RUNNING" });
});
