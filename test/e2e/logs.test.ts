// Logs of a real `jobsctl serve` at LOG_LEVEL=debug (docs/contract.md §10): stdout is
// JSON lines only, every RPC line says method, code, duration, principal and
// job id, transitions say from and to which state, and no token — nor its
// secret part — appears anywhere the process writes, whatever callers send.

import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { generateSecret } from "../../src/auth/tokens.js";
import { LOG_LEVELS } from "../../src/log.js";
import { jobsClient, type JobsClient, reader } from "../support/grpc.js";
import { endCallsFromTheClientSide } from "../support/hang-ups.js";
import { freshDatabase } from "../support/harness.js";
import { createServiceToken, runCli, type ServerProcess, spawnServer } from "../support/processes.js";
import { eventually, readToEnd } from "../support/watching.js";

let server: ServerProcess;
let client: JobsClient;
let service: string;
let reader_: string;
const tokens: string[] = [];

beforeAll(async () => {
  const databaseUrl = await freshDatabase();
  service = await createServiceToken(databaseUrl, "logs-test");
  const created = await runCli(["tokens", "create", "--principal", "api_user", "--company", "7", "--user", "3", "--scopes", "jobs:read"], {
    DATABASE_URL: databaseUrl,
  });
  expect(created.code).toBe(0);
  reader_ = created.stdout.trim();
  tokens.push(service, reader_);
  server = await spawnServer({ databaseUrl, env: { LOG_LEVEL: "debug" } });
  client = jobsClient(server.address, service);
});
afterAll(async () => {
  client?.close();
  await server?.stop();
});

/** A Connect (HTTP/1.1 JSON) call with whatever authorization header the test wants. */
async function connectCall(method: string, body: unknown, authorization?: string): Promise<number> {
  const res = await fetch(`${server.url}/jobs.v1.JobService/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(authorization === undefined ? {} : { authorization }) },
    body: JSON.stringify(body),
  });
  await res.arrayBuffer();
  return res.status;
}

test("stdout is JSON lines with level, time and msg; RPC and transition lines carry their facts; no token anywhere", async () => {
  // Accepted calls of every kind: unary, a transition or two, a stream to its end.
  const { job } = await client.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "7" });
  const watch = reader(client.stream("WatchJob", { job_id: job.id, after_revision: 0 }));
  await client.call("RunJob", { job_id: job.id, executor_id: "ex-logs" });
  await client.call("CompleteJob", { job_id: job.id, result: { forecast: { cost: "1", rows: "2" } } });
  await client.call("CompleteJob", { job_id: job.id, result: { forecast: { cost: "1", rows: "2" } } }); // no-op
  expect((await readToEnd(watch)).error).toBeNull();
  await client.call("GetJob", { job_id: job.id }, reader_);
  await client.call("ListJobs", {});
  expect(await connectCall("GetJob", { jobId: job.id }, `Bearer ${service}`)).toBe(200);

  // Refused calls, each carrying a token (or something like one) in a different way.
  const unknown = generateSecret();
  tokens.push(unknown);
  await client.fail("GetJob", { job_id: job.id }, unknown);
  await client.fail("RunJob", { job_id: job.id, executor_id: "x" }, reader_); // scope missing
  await client.fail("CancelJob", { job_id: job.id }, `${service}x`);
  tokens.push(`${service}x`);
  expect(await connectCall("GetJob", { jobId: job.id }, `Basic ${service}`)).toBe(401);
  expect(await connectCall("GetJob", { jobId: job.id }, service)).toBe(401);
  expect(await connectCall("GetJob", { jobId: job.id }, `Bearer ${service}, Bearer ${reader_}`)).toBe(401);
  expect(await connectCall("GetJob", { jobId: job.id })).toBe(401);
  // A token pasted by mistake where a job id goes, on a call that is itself authenticated.
  const pasted = await client.fail("GetJob", { job_id: service });
  expect(pasted.details).not.toContain(service);

  // Lines reach the pipe in the order the calls finished: once this last call's line is in, all are.
  const marker = "00000000-0000-4000-8000-00000000109e";
  await client.fail("GetJob", { job_id: marker });
  await eventually(() => server.stdout().includes(marker), "the last call's log line");

  const lines = server.stdout().split("\n").filter((line) => line !== "");
  const entries = lines.map((line) => {
    const entry = JSON.parse(line); // throws on anything that is not one JSON object a line
    expect(entry).toEqual(expect.objectContaining({ level: expect.any(String), time: expect.any(String), msg: expect.any(String) }));
    expect(LOG_LEVELS).toContain(entry.level);
    expect(Number.isNaN(Date.parse(entry.time))).toBe(false);
    return entry;
  });

  const rpcs = entries.filter((e) => e.msg === "rpc");
  expect(rpcs.length).toBeGreaterThanOrEqual(16);
  for (const rpc of rpcs) {
    expect(rpc).toEqual(expect.objectContaining({ method: expect.any(String), code: expect.any(String), duration_ms: expect.any(Number) }));
    // Every JobService call that got past authentication names its principal and token id.
    if (!rpc.method.startsWith("grpc.") && rpc.code !== "unauthenticated") {
      expect(rpc).toEqual(expect.objectContaining({ principal: expect.any(String), token_id: expect.any(String) }));
    }
  }
  // Every call about one job names it, refused or not; except a call refused for its token or scope, whose body is never decoded.
  const unread = (e: { code: string }) => e.code === "unauthenticated" || e.code === "permission_denied";
  const pastedLine = rpcs.filter((e) => e.code === "invalid_argument");
  expect(pastedLine.map((e) => [e.method, e.job_id])).toEqual([["GetJob", undefined]]);
  const aboutTheJob = rpcs.filter((e) => !["ListJobs", "CreateJob"].includes(e.method) && !e.method.startsWith("grpc.") && !unread(e) && e.code !== "invalid_argument");
  expect(aboutTheJob.map((e) => e.job_id)).toEqual([...Array(aboutTheJob.length - 1).fill(job.id), marker]);
  expect(rpcs.filter(unread).map((e) => e.job_id)).toEqual(Array(7).fill(undefined));
  expect(rpcs.find((e) => e.method === "CreateJob")?.job_id).toBe(job.id);

  const byMethod = (method: string) => rpcs.filter((e) => e.method === method && e.code === "ok");
  expect(byMethod("RunJob")[0]).toMatchObject({ principal: "service:logs-test", changed: true, from_state: "PENDING", to_state: "RUNNING" });
  expect(byMethod("CompleteJob").map((e) => [e.changed, e.from_state, e.to_state])).toEqual([
    [true, "RUNNING", "COMPLETED"],
    [false, "COMPLETED", "COMPLETED"],
  ]);
  expect(byMethod("GetJob").map((e) => e.principal)).toContain("api_user:7:3");
  expect(rpcs.find((e) => e.method === "RunJob" && e.code === "permission_denied")).toMatchObject({ reason: "MISSING_SCOPE" });
  const refused = rpcs.filter((e) => e.code === "unauthenticated");
  expect(refused).toHaveLength(6);
  for (const e of refused) expect(e.principal).toBeUndefined();

  // Committed transitions, at debug, with from and to state.
  const transitions = entries.filter((e) => e.msg === "transition" && e.job_id === job.id);
  expect(transitions.map((e) => [e.level, e.from_state ?? null, e.to_state])).toEqual([
    ["debug", null, "PENDING"],
    ["debug", "PENDING", "RUNNING"],
    ["debug", "RUNNING", "COMPLETED"],
  ]);

  const everything = server.output();
  for (const token of tokens) {
    expect(everything).not.toContain(token);
    expect(everything).not.toContain(token.slice("jobs_".length));
  }
});

test("a call its client ends is CANCELLED or DEADLINE_EXCEEDED at info, on every kind of RPC: no error line", async () => {
  const { job } = await client.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "7" });
  const from = server.stdout().length;
  const ended = await endCallsFromTheClientSide(server.url, server.address, service, job.id);
  const lines = () =>
    server
      .stdout()
      .slice(from)
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => JSON.parse(line));
  const logged = () => lines().filter((e) => e.msg === "rpc" && e.code !== "ok");
  await eventually(() => logged().length >= ended.length, "a line for each ended call").catch((error: Error) => {
    throw new Error(`${error.message}; logged: ${JSON.stringify(logged().map((e) => [e.method, e.code, e.level]))}`);
  });
  expect(logged().map((e) => [e.method, e.code, e.level])).toEqual(expect.arrayContaining(ended.map((c) => [c.method, c.code, "info"])));
  expect(logged()).toHaveLength(ended.length);
  expect(lines().filter((e) => e.level === "error" || e.level === "fatal")).toEqual([]);
});
