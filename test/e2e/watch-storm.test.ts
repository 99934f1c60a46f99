// A reconnect storm: every executor's stream reopens at the same moment (a
// replica drained, a network blip). With the default DB_ACQUIRE_TIMEOUT_MS,
// all of them must open and replay — none may fail UNAVAILABLE because the
// others hold the pool.

import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { jobsClient, type JobsClient, type Msg, reader } from "../support/grpc.js";
import { startServer, type TestServer } from "../support/harness.js";
import { cancelStream, eventually, pool, range } from "../support/watching.js";

const STREAMS = 1000;

let server: TestServer;
let clients: JobsClient[];

beforeAll(async () => {
  server = await startServer({ env: { LOG_LEVEL: "warn" } });
  clients = range(1, 4).map(() => jobsClient(server.address, server.tokens.service));
});
afterAll(async () => {
  for (const c of clients ?? []) c.close();
  await server?.stop();
});

test(`${STREAMS} WatchJob streams opened at once all open and replay`, async () => {
  const jobs = await pool(range(1, STREAMS), 32, async () => (await clients[0].call("CreateJob", { type: "JOB_TYPE_HEALTH_CHECK", company_id: "9" })).job as Msg);
  const streams = jobs.map((job, i) => clients[i % clients.length].stream("WatchJob", { job_id: job.id, after_revision: "0" }));
  const first = await Promise.allSettled(streams.map((s) => reader(s).next(60_000)));
  const failures = first.filter((r) => r.status === "rejected").map((r) => String((r as PromiseRejectedResult).reason));
  expect(failures).toEqual([]);
  first.forEach((r, i) => expect((r as PromiseFulfilledResult<Msg | null>).value?.event).toMatchObject({ job_id: jobs[i].id, revision: "1" }));
  expect(server.app.hub.size).toBe(STREAMS);
  await Promise.all(streams.map(cancelStream));
  await eventually(() => server.app.hub.size === 0, "subscriptions to close");
}, 120_000);
