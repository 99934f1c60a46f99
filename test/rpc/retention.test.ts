// Retention (SPEC §10): with RETENTION_DAYS set, finished jobs older than that
// are deleted with their events; everything else stays.

import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { jobsClient, type JobsClient } from "../support/grpc.js";
import { sql, startServer, type TestServer } from "../support/harness.js";

let server: TestServer;
let client: JobsClient;

beforeAll(async () => {
  server = await startServer({ env: { RETENTION_DAYS: "1", RETENTION_INTERVAL_SECONDS: "1" } });
  client = jobsClient(server.address, server.tokens.service);
});
afterAll(async () => {
  client?.close();
  await server?.stop();
});

const create = async () => (await client.call("CreateJob", { type: "JOB_TYPE_HEALTH_CHECK", company_id: "1" })).job;
const complete = (id: string) => client.call("CompleteJob", { job_id: id, result: { health_check: { healthy: true } } });

test("finished jobs older than RETENTION_DAYS go, with their events; younger and unfinished ones stay", async () => {
  const old = await create();
  await complete(old.id);
  const recent = await create();
  await complete(recent.id);
  const oldButPending = await create();
  await sql(server.databaseUrl, "update jobs set finished_at = now() - interval '2 days' where id = $1", [old.id]);
  await sql(server.databaseUrl, "update jobs set created_at = now() - interval '30 days' where id = $1", [oldButPending.id]);

  const deadline = Date.now() + 15_000;
  while ((await sql(server.databaseUrl, "select 1 from jobs where id = $1", [old.id])).length > 0) {
    if (Date.now() > deadline) throw new Error("the old finished job was not deleted");
    await new Promise((r) => setTimeout(r, 200));
  }
  expect((await client.fail("GetJob", { job_id: old.id })).code).toBe(5); // NOT_FOUND
  expect(await sql(server.databaseUrl, "select 1 from job_events where job_id = $1", [old.id])).toEqual([]);
  expect((await client.call("GetJob", { job_id: recent.id })).job.state).toBe("JOB_STATE_COMPLETED");
  expect((await client.call("GetJob", { job_id: oldButPending.id })).job.state).toBe("JOB_STATE_PENDING");
});
