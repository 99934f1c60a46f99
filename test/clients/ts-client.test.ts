// examples/ts-client.ts — the documented way for another Node service to use
// the generated Connect client — run against a live server.

import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { Code, ConnectError } from "@connectrpc/connect";
import { JobEventType, JobType, type JobEvent } from "../../src/gen/jobs/v1/job_pb.js";
import { errorInfo, jobsClient, runExample, watchJob } from "../../examples/ts-client.js";
import { startServer, type TestServer } from "../support/harness.js";
import { type ServerProcess, spawnServer } from "../support/processes.js";
import { eventually } from "../support/watching.js";

let server: TestServer;

beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server?.stop();
});

test("the example creates, claims, watches, heartbeats and completes a job", async () => {
  const summary = await runExample(server.url, server.tokens.service, "ts-worker");

  expect(summary.finalState).toBe("COMPLETED");
  expect(summary.attempt).toBe(1n);
  expect(summary.heartbeats).toBe(2);
  expect(summary.watched).toEqual([
    { revision: 1n, type: "CREATED", toState: "PENDING" },
    { revision: 2n, type: "STARTED", toState: "RUNNING" },
    { revision: 3n, type: "COMPLETED", toState: "COMPLETED" },
  ]);
  expect(summary.missingJob).toEqual({ code: "NotFound", reason: "JOB_NOT_FOUND", domain: "jobs.v1" });

  const { job } = await jobsClient(server.url, server.tokens.service).getJob({ jobId: summary.jobId });
  expect(job?.executorId).toBe("ts-worker");
  expect(job?.result?.kind).toEqual({ case: "forecast", value: expect.objectContaining({ cost: 42n, rows: 1000n }) });
});

test("errorInfo reads the reason and metadata of a rejected transition", async () => {
  const client = jobsClient(server.url, server.tokens.service);
  const { job } = await client.createJob({ type: JobType.HEALTH_CHECK, companyId: 7n });
  const error = await client.cancelJob({ jobId: job!.id }).then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
  expect(error?.code).toBe(Code.FailedPrecondition);
  const info = errorInfo(error);
  expect(info?.reason).toBe("INVALID_TRANSITION");
  expect(info?.metadata.job_id).toBe(job!.id);
  expect(info?.metadata.state).toBe("JOB_STATE_PENDING");
});

test("watchJob resumes after the last revision when its server restarts", async () => {
  // A second server on the same database and its own port; the first one takes the writes.
  const watched = await startServer({ databaseUrl: server.databaseUrl });
  const port = watched.port;
  const writer = jobsClient(server.url, server.tokens.service);
  const { job } = await writer.createJob({ type: JobType.HEALTH_CHECK, companyId: 7n });
  const jobId = job!.id;

  const seen: JobEvent[] = [];
  const reconnects: [bigint, Code][] = [];
  let restarted: TestServer | undefined;
  let watchError: unknown;
  const waitFor = async (n: number) => {
    for (let i = 0; seen.length < n; i++) {
      if (watchError) throw watchError;
      if (i > 1500) throw new Error(`gave up waiting for event ${n}; saw ${seen.length}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  try {
    const watching = (async () => {
      const client = jobsClient(watched.url, server.tokens.service);
      for await (const event of watchJob(client, jobId, {
        initialBackoffMs: 50,
        maxBackoffMs: 500,
        onReconnect: (after, err) => reconnects.push([after, err.code]),
      })) {
        seen.push(event);
      }
    })().catch((error: unknown) => {
      watchError = error;
    });
    await waitFor(1);
    await writer.runJob({ jobId, executorId: "ts-worker" });
    await waitFor(2);

    await watched.stop(); // what SIGTERM does: drain, watch streams end with UNAVAILABLE
    await writer.requestJobCancellation({ jobId, reason: "restart test" });
    expect(seen).toHaveLength(2);
    restarted = await startServer({ databaseUrl: server.databaseUrl, env: { PORT: String(port) } });
    expect(restarted.port).toBe(port);
    await waitFor(3);
    await writer.cancelJob({ jobId });
    await watching;
    if (watchError) throw watchError;
  } finally {
    await restarted?.stop();
  }

  expect(seen.map((e) => e.revision)).toEqual([1n, 2n, 3n, 4n]);
  expect(seen.map((e) => JobEventType[e.type])).toEqual(["CREATED", "STARTED", "CANCELLATION_REQUESTED", "CANCELLED"]);
  expect(reconnects.length).toBeGreaterThan(0);
  expect(reconnects[0]).toEqual([2n, Code.Unavailable]);
  expect(reconnects.every(([after]) => after === 2n)).toBe(true);
});

test("watchJob resumes after the last revision when its server is killed with SIGKILL and started again", async () => {
  // A real process this time (SIGKILL cannot stop an in-process server), on the same database as `server`,
  // which takes the writes, also while the watched one is down.
  let watched: ServerProcess | undefined = await spawnServer({ databaseUrl: server.databaseUrl });
  const port = watched.port;
  const writer = jobsClient(server.url, server.tokens.service);
  const { job } = await writer.createJob({ type: JobType.HEALTH_CHECK, companyId: 7n });
  const jobId = job!.id;

  const seen: JobEvent[] = [];
  const reconnects: bigint[] = [];
  let watchError: unknown;
  const waitFor = (n: number) =>
    eventually(() => {
      if (watchError) throw watchError;
      return seen.length >= n;
    }, `event ${n}`, 30_000);
  const watching = (async () => {
    for await (const event of watchJob(jobsClient(watched!.url, server.tokens.service), jobId, {
      initialBackoffMs: 50,
      maxBackoffMs: 500,
      onReconnect: (after) => reconnects.push(after),
    })) {
      seen.push(event);
    }
  })().catch((error: unknown) => {
    watchError = error;
  });
  try {
    await waitFor(1);
    await writer.runJob({ jobId, executorId: "ts-worker" });
    await waitFor(2);

    watched.child.kill("SIGKILL"); // no drain: the connection just breaks
    expect(await watched.exited).toEqual({ code: null, signal: "SIGKILL" });
    watched = undefined;
    await writer.requestJobCancellation({ jobId, reason: "kill test" });
    expect(seen).toHaveLength(2);
    watched = await spawnServer({ databaseUrl: server.databaseUrl, port });
    await waitFor(3);
    await writer.cancelJob({ jobId });
    await watching; // ends by itself after CANCELLED
    if (watchError) throw watchError;
  } finally {
    await watched?.stop();
  }

  expect(seen.map((e) => e.revision)).toEqual([1n, 2n, 3n, 4n]);
  expect(seen.map((e) => JobEventType[e.type])).toEqual(["CREATED", "STARTED", "CANCELLATION_REQUESTED", "CANCELLED"]);
  expect(reconnects.length).toBeGreaterThan(0);
  expect(reconnects.every((after) => after === 2n)).toBe(true);
}, 90_000);

test("watchJob ends with the caller's signal: an AbortSignal.timeout is the watch's deadline", async () => {
  const client = jobsClient(server.url, server.tokens.service);
  const { job } = await client.createJob({ type: JobType.HEALTH_CHECK, companyId: 7n });
  const seen: bigint[] = [];
  const error = await (async () => {
    for await (const event of watchJob(client, job!.id, { signal: AbortSignal.timeout(500) })) seen.push(event.revision);
  })().then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
  // The job never finishes: only the deadline ends the watch (after CREATED, unless that took longer).
  expect([[], [1n]]).toContainEqual(seen);
  expect(error?.code).toBe(Code.Canceled);
});
