// Requests over MAX_MESSAGE_BYTES are RESOURCE_EXHAUSTED with an ErrorInfo,
// before authentication (docs/contract.md §4's order), on every protocol; the server keeps serving.

import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { collect, jobsClient, type JobsClient } from "../support/grpc.js";
import { startServer, type TestServer } from "../support/harness.js";
import { grpcStatusAtEnd } from "../support/raw-calls.js";

let server: TestServer;
let client: JobsClient;

beforeAll(async () => {
  server = await startServer({ env: { MAX_MESSAGE_BYTES: "2048" } });
  client = jobsClient(server.address, server.tokens.service);
});
afterAll(async () => {
  client?.close();
  await server?.stop();
});

const big = "x".repeat(4096);

test("gRPC: an oversized request is RESOURCE_EXHAUSTED with reason MESSAGE_TOO_LARGE", async () => {
  const error = await client.fail("FailJob", { job_id: "00000000-0000-0000-0000-000000000000", message: big });
  expect(error.code).toBe(8);
  expect(error.details).toMatch(/over this server's limit of 2048 bytes/);
  expect(error.errorInfo).toMatchObject({ reason: "MESSAGE_TOO_LARGE", domain: "jobs.v1" });
  expect(error.errorInfo?.metadata.call).toBe("FailJob");
});

test("the size check comes before authentication", async () => {
  const error = await client.fail("FailJob", { job_id: "00000000-0000-0000-0000-000000000000", message: big }, null);
  expect(error.code).toBe(8);
});

// A stream's request is read when the handler asks for it, after the interceptors that authenticate: the order must still hold.
test.each([
  ["WatchJob", { job_id: big }],
  ["WatchJobs", { executor_id: big }],
])("%s: an oversized request is RESOURCE_EXHAUSTED before authentication and scope", async (method, request) => {
  for (const token of [null, "not-a-token", server.tokens.writer, server.tokens.service]) {
    const { messages, error } = await collect(client.stream(method, request, token));
    expect(messages).toEqual([]);
    expect(error?.code).toBe(8);
    expect(error?.errorInfo).toMatchObject({ reason: "MESSAGE_TOO_LARGE", domain: "jobs.v1", metadata: { call: method } });
  }
});

// (With no token the call is refused UNAUTHENTICATED without waiting for its message.)
test("a watch stream whose request message never completes ends at the call's deadline, DEADLINE_EXCEEDED, not held open", async () => {
  // The first 3 of the 5 envelope bytes, and the request side left open.
  const status = await grpcStatusAtEnd(server.url, server.tokens.service, "WatchJob", "300m", (stream) => stream.write(Buffer.from([0, 0, 0])));
  expect(status).toBe("4");
});

test("Connect JSON: an oversized body is resource_exhausted with the same detail", async () => {
  const res = await fetch(`${server.url}/jobs.v1.JobService/FailJob`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${server.tokens.service}` },
    body: JSON.stringify({ jobId: "00000000-0000-0000-0000-000000000000", message: big }),
  });
  const body = (await res.json()) as { code: string; details: Array<{ debug: { reason: string } }> };
  expect(body.code).toBe("resource_exhausted");
  expect(body.details[0].debug.reason).toBe("MESSAGE_TOO_LARGE");
});

test("a request under the limit still works afterwards", async () => {
  const { job } = await client.call("CreateJob", { type: "JOB_TYPE_HEALTH_CHECK", company_id: "1" });
  expect(job.state).toBe("JOB_STATE_PENDING");
});
