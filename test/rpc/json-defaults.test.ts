// JSON answers carry every field, defaults included (proto JSON would leave
// them out): a person repeating a CompleteJob over Connect JSON, as the
// README's curl does, reads `"changed": false`, not a missing key.

import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { startServer, type TestServer } from "../support/harness.js";

let server: TestServer;

beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server?.stop();
});

/** One Connect unary call with a JSON body, as curl sends it. */
async function post(method: string, body: unknown): Promise<Record<string, any>> {
  const res = await fetch(`${server.url}/jobs.v1.JobService/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${server.tokens.service}` },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, any>;
}

test("a repeated CompleteJob answers changed: false, and the job's zero-valued fields are present", async () => {
  const { job } = await post("CreateJob", { type: "JOB_TYPE_FORECAST", companyId: "5", input: { forecast: { nql: "n" } } });
  expect(job).toMatchObject({ state: "JOB_STATE_PENDING", attempt: "0", executorId: "", failures: [] });
  const result = { forecast: { cost: "1", rows: "2" } };
  expect(await post("CompleteJob", { jobId: job.id, result })).toMatchObject({ changed: true });
  const again = await post("CompleteJob", { jobId: job.id, result });
  expect(again.changed).toBe(false);
  expect(again.job).toMatchObject({ state: "JOB_STATE_COMPLETED", revision: "2" });
});
