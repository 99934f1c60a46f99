// One tenant cannot make jobs that stock clients cannot read: what a job may
// carry is bounded (JOB_PAYLOAD_MAX_BYTES per input, result and diagnostic;
// JOB_MAX_BYTES for the whole job, failures included), and list pages are
// bounded by bytes as well as count. Jobs as large as the limits allow (their
// payloads arrays of numbers, the most costly JSON to carry as protobuf) are
// read back by a grpc-js client with the stock 4 MiB receive limit: GetJob,
// every ListJobs and ListJobEvents page, WatchJob and WatchJobs.

import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { jobsClient, type JobsClient, type Msg, reader } from "../support/grpc.js";
import { sql, startServer, type TestServer } from "../support/harness.js";
import { readToEnd, readUntil } from "../support/watching.js";

const STOCK_RECEIVE_LIMIT = 4 * 1024 * 1024;

let server: TestServer;
let client: JobsClient;
let stock: JobsClient;

beforeAll(async () => {
  server = await startServer();
  client = jobsClient(server.address, server.tokens.service);
  stock = jobsClient(server.address, server.tokens.service, { "grpc.max_receive_message_length": STOCK_RECEIVE_LIMIT });
});
afterAll(async () => {
  client?.close();
  stock?.close();
  await server?.stop();
});

/** A list of `count` numbers as a google.protobuf.Value (protobufjs spells its fields in camelCase). */
const numbers = (count: number) => ({ listValue: { values: Array.from({ length: count }, (_, i) => ({ numberValue: i })) } });
/** About as many numbers as JOB_PAYLOAD_MAX_BYTES (256 KiB) lets a payload carry. */
const FITS = 15_000;

const createLarge = (count = FITS, requestId?: string) =>
  client.call("CreateJob", { type: "JOB_TYPE_DATASETS_DELIVER_DATA", company_id: "9", input: { other: { fields: { rows: numbers(count) } } }, request_id: requestId });

test("an input over JOB_PAYLOAD_MAX_BYTES is INVALID_ARGUMENT FIELD_TOO_LARGE naming the field and the limit, and creates nothing", async () => {
  const requestId = randomUUID();
  const error = await client.fail("CreateJob", {
    type: "JOB_TYPE_DATASETS_DELIVER_DATA",
    company_id: "9",
    input: { other: { fields: { rows: numbers(20_000) } } },
    request_id: requestId,
  });
  expect(error.code).toBe(3);
  expect(error.errorInfo).toMatchObject({ reason: "FIELD_TOO_LARGE", metadata: { field: "input", limit: "262144" } });
  expect(error.details).toContain("JOB_PAYLOAD_MAX_BYTES");
  expect(await sql(server.databaseUrl, "select 1 from jobs where request_id = $1", [requestId])).toEqual([]);
});

test("a job grown to its limit (largest input, a failure with the largest diagnostic and message) refuses another attempt with JOB_FULL, and every reply that holds it fits the stock limit", async () => {
  const { job } = await createLarge();
  await client.call("RunJob", { job_id: job.id, executor_id: "big" });
  const diagnostic = numbers(FITS);
  await client.call("FailJob", { job_id: job.id, message: "é".repeat(64 * 1024), diagnostic });
  const refused = await client.fail("RunJob", { job_id: job.id, executor_id: "again" });
  expect(refused.code).toBe(9);
  expect(refused.errorInfo).toMatchObject({ reason: "JOB_FULL", metadata: { job_id: job.id, state: "JOB_STATE_FAILED" } });
  // Nothing changed, and the job is readable by a stock client.
  const read = (await stock.call("GetJob", { job_id: job.id })).job;
  expect([read.state, read.revision, read.failures.length]).toEqual(["JOB_STATE_FAILED", "3", 1]);
  const events = await stock.call("ListJobEvents", { job_id: job.id });
  expect(events.events.map((e: Msg) => e.revision)).toEqual(["1", "2", "3"]);
  const watched = await readToEnd(reader(stock.stream("WatchJob", { job_id: job.id, after_revision: "0" })));
  expect(watched.error).toBeNull();
  expect(watched.messages.filter((m) => m.kind === "event").map((m) => m.event.revision)).toEqual(["1", "2", "3"]);
});

test("thirty large jobs (five times what one reply may hold): ListJobs pages end early rather than outgrow the stock limit, and together hold every job once; WatchJobs' snapshot too", async () => {
  const ids = new Set<string>();
  for (let i = 0; i < 30; i++) ids.add((await createLarge()).job.id);
  const listed: string[] = [];
  let pages = 0;
  let token = "";
  do {
    const page = await stock.call("ListJobs", { company_id: "9", types: ["JOB_TYPE_DATASETS_DELIVER_DATA"], page_size: 1000, page_token: token });
    pages++;
    expect(page.jobs.length).toBeGreaterThan(0);
    listed.push(...page.jobs.map((j: Msg) => j.id));
    token = page.next_page_token;
  } while (token !== "");
  for (const id of ids) expect(listed.filter((listedId) => listedId === id)).toEqual([id]);
  expect(new Set(listed).size).toBe(listed.length);
  expect(pages).toBeGreaterThan(1);
  // The unfiltered snapshot of a service token holds all of them, one message each.
  const stream = stock.stream("WatchJobs", {});
  stream.on("error", () => {}); // the cancel below ends it CANCELLED
  try {
    const snapshot = await readUntil(reader(stream), (m) => m.kind === "synced");
    const inSnapshot = new Set(snapshot.filter((m) => m.kind === "snapshot").map((m) => m.snapshot.id));
    for (const id of ids) expect(inSnapshot.has(id)).toBe(true);
  } finally {
    stream.cancel();
  }
});
