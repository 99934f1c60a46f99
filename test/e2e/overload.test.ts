// Bursts that used to empty the connection pool (issue: thousands of
// lookups of unknown tokens; thousands of CreateJob calls with one
// request_id) while a legitimate client and the reaper go on working. Each
// kind of work has its own share of the pool, so the flood waits, and is
// shed, in its own share: the legitimate calls and the reaper succeed, and
// nobody is told the database is unavailable while it is up.

import { randomBytes, randomUUID } from "node:crypto";
import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { jobsClient, type JobsClient, type RpcError } from "../support/grpc.js";
import { sql, startServer, type TestServer } from "../support/harness.js";
import { range } from "../support/watching.js";

let server: TestServer;
let legit: JobsClient;
let flood: JobsClient;

beforeAll(async () => {
  // A small pool makes the shares small: 6 connections = 2 for writes, 1 for token lookups, 1 for the notifier, 2 for reads.
  server = await startServer({ env: { DB_POOL_SIZE: "6", REAPER_INTERVAL_SECONDS: "1", REAPER_GRACE_SECONDS: "0" } });
  legit = jobsClient(server.address, server.tokens.service, { "grpc.use_local_subchannel_pool": 1 });
  flood = jobsClient(server.address, null, { "grpc.use_local_subchannel_pool": 1 });
});
afterAll(async () => {
  legit?.close();
  flood?.close();
  await server?.stop();
});

/** The failures' reasons, counted. */
function reasons(outcomes: PromiseSettledResult<unknown>[]): Record<string, number> {
  const counted: Record<string, number> = {};
  for (const outcome of outcomes) {
    const key = outcome.status === "fulfilled" ? "ok" : ((outcome.reason as RpcError).errorInfo?.reason ?? String((outcome.reason as RpcError).code));
    counted[key] = (counted[key] ?? 0) + 1;
  }
  return counted;
}

/** A job whose lease ran out a minute ago, for the reaper to find. */
async function expiredJob(): Promise<string> {
  const { job } = await legit.call("CreateJob", { type: "JOB_TYPE_HEALTH_CHECK", company_id: "1" });
  await legit.call("RunJob", { job_id: job.id, executor_id: "gone", lease_seconds: 3600 });
  await sql(server.databaseUrl, "update jobs set lease_expires_at = now() - interval '1 minute' where id = $1", [job.id]);
  return job.id;
}

/** Sequential calls of a legitimate executor until `done` settles; every one must succeed. */
async function legitimateWork(done: Promise<unknown>): Promise<number> {
  let finished = false;
  void done.finally(() => (finished = true));
  let calls = 0;
  while (!finished || calls < 5) {
    const { job } = await legit.call("CreateJob", { type: "JOB_TYPE_HEALTH_CHECK", company_id: "1" });
    await legit.call("GetJob", { job_id: job.id });
    await legit.call("RunJob", { job_id: job.id, executor_id: "legit" });
    calls += 3;
  }
  return calls;
}

async function reaped(jobId: string): Promise<boolean> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const [{ state }] = await sql<{ state: string }>(server.databaseUrl, "select state from jobs where id = $1", [jobId]);
    if (state === "FAILED") return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

test("a flood of calls with random well-formed tokens: each refused UNAUTHENTICATED or shed OVERLOADED, never DATABASE_UNAVAILABLE; a legitimate client and the reaper keep working", async () => {
  const expiring = await expiredJob();
  const floodDone = Promise.allSettled(
    range(1, 3000).map(() => flood.call("GetJob", { job_id: randomUUID() }, `jobs_${randomBytes(32).toString("base64url")}`)),
  );
  const legitCalls = await legitimateWork(floodDone);
  const counted = reasons(await floodDone);
  expect(Object.keys(counted).filter((reason) => reason !== "INVALID_TOKEN" && reason !== "OVERLOADED")).toEqual([]);
  expect(counted.INVALID_TOKEN).toBeGreaterThan(0);
  expect(legitCalls).toBeGreaterThanOrEqual(5);
  expect(await reaped(expiring)).toBe(true);
});

test("a flood of CreateJob calls with one request_id: one job, every call answered with it or shed OVERLOADED, never DATABASE_UNAVAILABLE; the legitimate client and the reaper keep working", async () => {
  const expiring = await expiredJob();
  const requestId = randomUUID();
  const floodDone = Promise.allSettled(
    range(1, 3000).map(() => legit.call("CreateJob", { type: "JOB_TYPE_HEALTH_CHECK", company_id: "1", request_id: requestId })),
  );
  const legitCalls = await legitimateWork(floodDone);
  const outcomes = await floodDone;
  const counted = reasons(outcomes);
  expect(Object.keys(counted).filter((reason) => reason !== "ok" && reason !== "OVERLOADED")).toEqual([]);
  const ids = new Set(outcomes.flatMap((outcome) => (outcome.status === "fulfilled" ? [(outcome.value as { job: { id: string } }).job.id] : [])));
  expect(ids.size).toBe(1);
  const [{ count }] = await sql<{ count: string }>(server.databaseUrl, "select count(*) from jobs where request_id = $1", [requestId]);
  expect(Number(count)).toBe(1);
  expect(legitCalls).toBeGreaterThanOrEqual(5);
  expect(await reaped(expiring)).toBe(true);
});
