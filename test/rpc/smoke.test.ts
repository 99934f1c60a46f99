import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { jobsClient, type JobsClient } from "../support/grpc.js";
import { startServer, type TestServer } from "../support/harness.js";

let server: TestServer;
let client: JobsClient;

beforeAll(async () => {
  server = await startServer();
  client = jobsClient(server.address, server.tokens.service);
});
afterAll(async () => {
  client?.close();
  await server?.stop();
});

test("a job goes create → run → complete over gRPC", async () => {
  const { job } = await client.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "7" });
  expect(job.state).toBe("JOB_STATE_PENDING");
  const run = await client.call("RunJob", { job_id: job.id, executor_id: "ex" });
  expect(run.changed).toBe(true);
  const done = await client.call("CompleteJob", { job_id: job.id, result: { forecast: { cost: "1", rows: "2" } } });
  expect(done.job.state).toBe("JOB_STATE_COMPLETED");
  const err = await client.fail("CancelJob", { job_id: "nope" });
  expect(err.code).toBe(3);
  expect(err.errorInfo?.domain).toBe("jobs.v1");
});
