// SIGTERM drains a real `jobsctl serve` process (docs/contract.md §7): it stops
// accepting connections, ends watch streams with UNAVAILABLE (reason
// SERVER_DRAINING) so clients reconnect elsewhere, lets in-flight unary calls
// finish, closes the pool, and exits 0.
//
// The unary calls are kept in flight deterministically: the test holds the
// row locks of their jobs in its own transaction, so the calls wait inside the
// server until the test commits.

import { createConnection } from "node:net";
import { afterAll, beforeAll, expect, test } from "@jest/globals";
import pg from "pg";
import { jobsClient, type JobsClient, type Msg, reader } from "../support/grpc.js";
import { freshDatabase, sql } from "../support/harness.js";
import { createServiceToken, type ServerProcess, spawnServer } from "../support/processes.js";
import { eventually, readToEnd, readUntil, streamOnOwnConnection } from "../support/watching.js";

let databaseUrl: string;
let token: string;
let server: ServerProcess | undefined;
let client: JobsClient | undefined;
let locker: pg.Client | undefined;

beforeAll(async () => {
  databaseUrl = await freshDatabase();
  token = await createServiceToken(databaseUrl, "drain-test");
});
afterAll(async () => {
  client?.close();
  await locker?.end().catch(() => undefined);
  await server?.stop(5_000);
});

/** Resolves with the error code of a connection attempt ("connected" if it was accepted). */
function connectOutcome(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve("connected");
    });
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

test("SIGTERM: watch streams end UNAVAILABLE/SERVER_DRAINING, in-flight calls finish, new connections are refused, exit 0", async () => {
  server = await spawnServer({ databaseUrl, env: { LOG_LEVEL: "info", SHUTDOWN_TIMEOUT_SECONDS: "60" } });
  client = jobsClient(server.address, token);
  const create = async () => (await client!.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "5" })).job as Msg;

  // Two open watch streams, past their replay and snapshot.
  const watched = await create();
  const watchJob = reader(client.stream("WatchJob", { job_id: watched.id, after_revision: "0" }));
  expect((await watchJob.next())?.event.type).toBe("JOB_EVENT_TYPE_CREATED");
  const watchJobs = reader(client.stream("WatchJobs", {}));
  await readUntil(watchJobs, (m) => m.kind === "synced");

  // Three unary calls in flight, waiting on row locks the test holds (in one or two write batches, so one or
  // two transactions wait; the calls went out on one connection before the first of them reached the database).
  const [a, b, c] = [await create(), await create(), await create()];
  locker = new pg.Client({ connectionString: databaseUrl });
  await locker.connect();
  await locker.query("begin");
  await locker.query("select id from jobs where id = any($1::uuid[]) for update", [[a.id, b.id, c.id]]);
  const inFlight = Promise.allSettled([
    client.call("RunJob", { job_id: a.id, executor_id: "ex-drain" }),
    client.call("CompleteJob", { job_id: b.id, result: { forecast: { cost: "3", rows: "4" } } }),
    client.call("RequestJobCancellation", { job_id: c.id, reason: "draining" }),
  ]);
  await eventually(async () => {
    const rows = await sql<{ n: string }>(
      databaseUrl,
      "select count(*)::text as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
    );
    return Number(rows[0].n) >= 1;
  }, "the calls to wait on their row locks");

  server.child.kill("SIGTERM");

  // Watch streams end at once, telling clients to go elsewhere.
  for (const stream of [watchJob, watchJobs]) {
    const end = await readToEnd(stream);
    expect(end.error?.code).toBe(14); // UNAVAILABLE
    expect(end.error?.errorInfo).toMatchObject({ domain: "jobs.v1", reason: "SERVER_DRAINING" });
  }
  // No longer accepting, though still running: the calls are in flight.
  expect(await connectOutcome(server.port)).toBe("ECONNREFUSED");
  expect(server.child.exitCode).toBeNull();

  await locker.query("commit");
  const results = await inFlight;
  const values = results.map((r) => {
    if (r.status === "rejected") throw r.reason;
    return r.value;
  });
  expect(values.map((v) => [v.changed, v.job.state])).toEqual([
    [true, "JOB_STATE_RUNNING"],
    [true, "JOB_STATE_COMPLETED"],
    [true, "JOB_STATE_PENDING_CANCELLATION"],
  ]);

  const exit = await server.exited;
  expect(exit).toEqual({ code: 0, signal: null });
  // It went through its whole shutdown (pool and listening connection closed), not a crash.
  const logged = server.output().split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line).msg);
  expect(logged).toEqual(expect.arrayContaining(["signal received", "draining", "stopped"]));
  expect(logged.indexOf("stopped")).toBeGreaterThan(logged.indexOf("draining"));
  // The calls' changes are in.
  const states = await sql<{ id: string; state: string }>(databaseUrl, "select id, state from jobs where id = any($1::uuid[])", [
    [a.id, b.id, c.id],
  ]);
  expect(Object.fromEntries(states.map((r) => [r.id, r.state]))).toEqual({
    [a.id]: "RUNNING",
    [b.id]: "COMPLETED",
    [c.id]: "PENDING_CANCELLATION",
  });
});

test("SIGTERM on an idle server exits 0", async () => {
  const idle = await spawnServer({ databaseUrl });
  idle.child.kill("SIGTERM");
  expect(await idle.exited).toEqual({ code: 0, signal: null });
  expect(await connectOutcome(idle.port)).toBe("ECONNREFUSED");
});

test("SIGTERM does not wait SHUTDOWN_TIMEOUT_SECONDS for a client that stopped reading", async () => {
  const stalledServer = await spawnServer({ databaseUrl, env: { SHUTDOWN_TIMEOUT_SECONDS: "600" } });
  const stalledClient = jobsClient(stalledServer.address, token);
  const { stream, close } = streamOnOwnConnection(stalledServer.address, token, "WatchJobs", { company_id: "808" });
  try {
    const stalled = reader(stream);
    await readUntil(stalled, (m) => m.kind === "synced");
    stream.pause(); // nothing reads it from here on: its flow-control window fills and the server's writes block
    // Far more than any HTTP/2 window: ~16 KiB a job, two events each.
    const padding = { other: { fields: { padding: { stringValue: "x".repeat(16_000) } } } };
    for (let i = 0; i < 120; i++) {
      const { job } = await stalledClient.call("CreateJob", { type: "JOB_TYPE_HEALTH_CHECK", company_id: "808", input: padding });
      await stalledClient.call("CancelJob", { job_id: job.id }).catch(() => undefined);
      await stalledClient.call("FailJob", { job_id: job.id, message: "filler" });
    }
    stalledServer.child.kill("SIGTERM");
    // With a 600 s timeout, only not waiting for the stalled stream lets it exit within the test's time.
    expect(await stalledServer.exited).toEqual({ code: 0, signal: null });
  } finally {
    stream.on("error", () => {});
    close();
    stalledClient.close();
    await stalledServer.stop(1_000);
  }
});
