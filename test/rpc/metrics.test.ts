// Prometheus metrics at /metrics on METRICS_PORT (SPEC §10).

import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { freePort } from "../../src/store/embedded-postgres.js";
import { jobsClient, type JobsClient } from "../support/grpc.js";
import { startServer, type TestServer } from "../support/harness.js";

let server: TestServer;
let client: JobsClient;
let metricsUrl: string;

beforeAll(async () => {
  const port = await freePort();
  metricsUrl = `http://127.0.0.1:${port}/metrics`;
  server = await startServer({ env: { METRICS_PORT: String(port) } });
  client = jobsClient(server.address, server.tokens.service);
});
afterAll(async () => {
  client?.close();
  await server?.stop();
});

test("counts RPCs by method and code, transitions by type, and reports streams and the pool", async () => {
  const { job } = await client.call("CreateJob", { type: "JOB_TYPE_HEALTH_CHECK", company_id: "1" });
  await client.call("RunJob", { job_id: job.id, executor_id: "ex" });
  await client.fail("GetJob", { job_id: "00000000-0000-0000-0000-000000000000" });
  const watch = client.stream("WatchJob", { job_id: job.id, after_revision: 2 });
  // Wait until the server has registered the stream.
  let text = "";
  for (let i = 0; i < 50 && !/^jobs_watch_streams 1$/m.test(text); i++) {
    await new Promise((r) => setTimeout(r, 50));
    text = await (await fetch(metricsUrl)).text();
  }
  watch.on("error", () => {}); // cancelling reports CANCELLED to the client
  watch.cancel();

  expect(text).toMatch(/^jobs_rpc_requests_total\{method="CreateJob",code="ok"\} 1$/m);
  expect(text).toMatch(/^jobs_rpc_requests_total\{method="RunJob",code="ok"\} 1$/m);
  expect(text).toMatch(/^jobs_rpc_requests_total\{method="GetJob",code="not_found"\} 1$/m);
  expect(text).toMatch(/^jobs_rpc_duration_seconds_count\{method="CreateJob"\} 1$/m);
  expect(text).toMatch(/^jobs_transitions_total\{type="CREATED"\} 1$/m);
  expect(text).toMatch(/^jobs_transitions_total\{type="STARTED"\} 1$/m);
  expect(text).toMatch(/^jobs_watch_streams 1$/m);
  expect(text).toMatch(/^jobs_db_pool_connections\{state="total"\} \d+$/m);
  expect(text).toMatch(/^jobs_database_up 1$/m);
  expect(text).toMatch(/^jobs_notifier_lag_milliseconds \d+/m);
});

test("answers 404 off /metrics", async () => {
  const res = await fetch(metricsUrl.replace("/metrics", "/other"));
  expect(res.status).toBe(404);
});
