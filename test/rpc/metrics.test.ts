// Prometheus metrics at /metrics on METRICS_PORT (docs/contract.md §10): scraped before
// and after calls, the RPC and transition series move by exactly the calls made.

import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { freePort } from "../../src/store/embedded-postgres.js";
import { jobsClient, type JobsClient } from "../support/grpc.js";
import { endCallsFromTheClientSide } from "../support/hang-ups.js";
import { startServer, type TestServer } from "../support/harness.js";
import { eventually } from "../support/watching.js";

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

async function scrape(): Promise<string> {
  const res = await fetch(metricsUrl);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.text();
}

/** The value of one series (0 when absent), e.g. value(text, 'jobs_rpc_requests_total{method="RunJob",code="ok"}'). */
function value(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

const rpcs = (method: string, code: string) => `jobs_rpc_requests_total{method="${method}",code="${code}"}`;
const rpcSeconds = (method: string, code: string) => `jobs_rpc_duration_seconds_count{method="${method}",code="${code}"}`;
const transitions = (call: string, outcome: string) => `jobs_transitions_total{call="${call}",outcome="${outcome}"}`;
const events = (type: string) => `jobs_events_total{type="${type}"}`;

test("RPC and transition series move by the calls made between two scrapes", async () => {
  const before = await scrape();

  const { job } = await client.call("CreateJob", { type: "JOB_TYPE_HEALTH_CHECK", company_id: "1" });
  await client.call("RunJob", { job_id: job.id, executor_id: "ex" }); // changed
  await client.call("RunJob", { job_id: job.id, executor_id: "ex" }); // noop: already RUNNING
  await client.fail("CancelJob", { job_id: job.id }); // REJECT: RUNNING cannot be cancelled
  await client.fail("CompleteJob", { job_id: job.id, attempt: 7, result: { health_check: {} } }); // stale attempt
  await client.fail("GetJob", { job_id: "00000000-0000-0000-0000-000000000000" });

  const after = await scrape();
  const moved = (series: string) => value(after, series) - value(before, series);
  expect({
    create: moved(rpcs("CreateJob", "ok")),
    runOk: moved(rpcs("RunJob", "ok")),
    cancelRejected: moved(rpcs("CancelJob", "failed_precondition")),
    getNotFound: moved(rpcs("GetJob", "not_found")),
    runTimed: moved(rpcSeconds("RunJob", "ok")),
    changed: moved(transitions("RunJob", "changed")),
    noop: moved(transitions("RunJob", "noop")),
    rejected: moved(transitions("CancelJob", "rejected")),
    stale: moved(transitions("CompleteJob", "stale_attempt")),
    created: moved(events("CREATED")),
    started: moved(events("STARTED")),
  }).toEqual({
    create: 1,
    runOk: 2,
    cancelRejected: 1,
    getNotFound: 1,
    runTimed: 2,
    changed: 1,
    noop: 1,
    rejected: 1,
    stale: 1,
    created: 1,
    started: 1,
  });
  // Latency is a real histogram: its buckets and sum are there too.
  expect(after).toMatch(/^jobs_rpc_duration_seconds_bucket\{le="\+Inf",method="RunJob",code="ok"\} \d+$/m);
  expect(value(after, 'jobs_rpc_duration_seconds_sum{method="RunJob",code="ok"}')).toBeGreaterThan(0);
});

test("open watch streams, notifier lag, the pool, the reaper and the process are reported", async () => {
  const { job } = await client.call("CreateJob", { type: "JOB_TYPE_HEALTH_CHECK", company_id: "1" });
  const watch = client.stream("WatchJob", { job_id: job.id, after_revision: 1 });
  watch.on("error", () => {}); // cancelling reports CANCELLED to the client
  try {
    await eventually(async () => value(await scrape(), 'jobs_watch_streams_open{kind="WatchJob"}') === 1, "the stream to be counted");
    // A change while someone watches goes through the notifier, which reports its lag.
    await client.call("RunJob", { job_id: job.id, executor_id: "ex" });
    await eventually(async () => value(await scrape(), "jobs_notifier_lag_seconds_count") > 0, "a publication to be timed");
  } finally {
    watch.cancel();
  }
  await eventually(async () => value(await scrape(), 'jobs_watch_streams_open{kind="WatchJob"}') === 0, "the stream to be gone");

  await server.app.reaper.tick();
  const text = await scrape();
  expect(value(text, 'jobs_watch_streams_open{kind="WatchJobs"}')).toBe(0);
  expect(value(text, "jobs_db_pool_max")).toBe(20);
  expect(text).toMatch(/^jobs_db_pool_in_use \d+$/m);
  expect(text).toMatch(/^jobs_db_pool_waiting 0$/m);
  expect(value(text, "jobs_database_up")).toBe(1);
  expect(value(text, 'jobs_reaper_runs_total{outcome="ok"}')).toBeGreaterThanOrEqual(1);
  expect(text).toMatch(/^jobs_reaped_jobs_total 0$/m);
  // prom-client's process metrics, on this app's own registry.
  expect(text).toMatch(/^process_cpu_seconds_total \d/m);
  expect(text).toMatch(/^nodejs_eventloop_lag_seconds /m);
});

test("write transactions are reported: every write call in exactly one committed batch, each timed, none waiting afterwards", async () => {
  const jobs = await Promise.all([1, 2, 3].map(async () => (await client.call("CreateJob", { type: "JOB_TYPE_HEALTH_CHECK", company_id: "1" })).job));
  const before = await scrape();
  // Six write calls sent together: whatever batches they form, each is counted once.
  await Promise.all([
    ...jobs.map((job) => client.call("RunJob", { job_id: job.id, executor_id: "ex" })),
    ...jobs.map((job) => client.call("RequestJobCancellation", { job_id: job.id })),
  ]);
  await client.fail("CancelJob", { job_id: "00000000-0000-0000-0000-000000000000" }); // refused, but written as a batch of one
  const after = await scrape();
  const moved = (series: string) => value(after, series) - value(before, series);
  const batches = moved("jobs_write_batch_calls_count");
  expect(moved("jobs_write_batch_calls_sum")).toBe(7);
  expect(batches).toBeGreaterThanOrEqual(2);
  expect(batches).toBeLessThanOrEqual(7);
  expect(moved('jobs_write_batch_duration_seconds_count{outcome="committed"}')).toBe(batches);
  expect(moved('jobs_write_batch_duration_seconds_count{outcome="failed"}')).toBe(0);
  expect(value(after, 'jobs_write_queue{state="waiting"}')).toBe(0);
  expect(value(after, 'jobs_write_queue{state="writing"}')).toBe(0);
});

test("calls their clients end are counted CANCELLED or DEADLINE_EXCEEDED, on every kind of RPC, and nothing as INTERNAL", async () => {
  const { job } = await client.call("CreateJob", { type: "JOB_TYPE_HEALTH_CHECK", company_id: "1" });
  const before = await scrape();
  const ended = await endCallsFromTheClientSide(server.url, server.address, server.tokens.service, job.id);
  const expected = new Map<string, number>();
  for (const c of ended) expected.set(rpcs(c.method, c.code), (expected.get(rpcs(c.method, c.code)) ?? 0) + 1);
  const moved = (text: string) => [...expected.keys()].map((series) => [series, value(text, series) - value(before, series)]);
  await eventually(async () => JSON.stringify(moved(await scrape())) === JSON.stringify([...expected]), "every ended call to be counted");
  const internal = (text: string) => text.split("\n").filter((line) => line.startsWith("jobs_rpc_requests_total{") && line.includes('code="internal"'));
  expect(internal(await scrape())).toEqual([]);
});

test("METRICS_HOST binds the metrics port apart from HOST: metrics answer there and not on the API's address", async () => {
  const port = await freePort();
  const other = await startServer({ env: { HOST: "127.0.0.1", METRICS_HOST: "127.0.0.2", METRICS_PORT: String(port) } });
  try {
    expect((await fetch(`http://127.0.0.2:${port}/metrics`)).status).toBe(200);
    await expect(fetch(`http://127.0.0.1:${port}/metrics`)).rejects.toThrow();
  } finally {
    await other.stop();
  }
});

test("answers 404 off /metrics", async () => {
  const res = await fetch(metricsUrl.replace("/metrics", "/other"));
  expect(res.status).toBe(404);
});
