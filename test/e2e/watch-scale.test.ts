// 1,000 WatchJob streams open at once on one process (docs/contract.md §5: one LISTEN
// connection per process, fanned out in process): every stream gets its own
// job's events and ends OK. Memory and latency belong to the benchmark, not
// here.

import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { jobsClient, type JobsClient, type Msg, reader } from "../support/grpc.js";
import { startServer, type TestServer } from "../support/harness.js";
import { eventsOf, eventually, pool, range, type Reader, readToEnd } from "../support/watching.js";

const STREAMS = 1000;
const OPEN_WAVE = 100;

let server: TestServer;
let clients: JobsClient[];

beforeAll(async () => {
  // A generous acquire timeout: this file is about many open streams, not about a database that is
  // slow to hand out connections while CI runs other files alongside.
  server = await startServer({ env: { LOG_LEVEL: "warn", DB_ACQUIRE_TIMEOUT_MS: "15000" } });
  clients = range(1, 4).map(() => jobsClient(server.address, server.tokens.service));
});
afterAll(async () => {
  for (const c of clients ?? []) c.close();
  await server?.stop();
});

test(`${STREAMS} concurrent WatchJob streams each receive their job's events and end OK`, async () => {
  const client = clients[0];
  const jobs = await pool(range(1, STREAMS), 32, async () => (await client.call("CreateJob", { type: "JOB_TYPE_HEALTH_CHECK", company_id: "9" })).job as Msg);

  // Opened in waves: each open costs a few queries, and a burst of a thousand at once would queue
  // past DB_ACQUIRE_TIMEOUT_MS on a small machine (UNAVAILABLE by design, docs/contract.md §11). What is
  // tested here is that many streams stay open and are served together.
  const readers: Reader[] = [];
  for (let wave = 0; wave < STREAMS; wave += OPEN_WAVE) {
    const opened = jobs
      .slice(wave, wave + OPEN_WAVE)
      .map((job, i) => reader(clients[i % clients.length].stream("WatchJob", { job_id: job.id, after_revision: "0" })));
    // Each stream replays its CREATED event: from then on it is live.
    const first = await Promise.all(opened.map((r) => r.next(30_000)));
    first.forEach((m, i) => expect(m?.event).toMatchObject({ job_id: jobs[wave + i].id, revision: "1", type: "JOB_EVENT_TYPE_CREATED" }));
    readers.push(...opened);
  }
  expect(server.app.hub.size).toBe(STREAMS);

  await pool(jobs, 32, async (job, i) => {
    await client.call("RunJob", { job_id: job.id, executor_id: `ex-${i % 10}` });
    await client.call("CompleteJob", { job_id: job.id, result: { health_check: { healthy: true } } });
  });

  const ends = await Promise.all(readers.map((r) => readToEnd(r, 60_000)));
  ends.forEach((end, i) => {
    expect(end.error).toBeNull();
    expect(eventsOf(end.messages).map((e) => [e.job_id, e.revision, e.to_state])).toEqual([
      [jobs[i].id, "2", "JOB_STATE_RUNNING"],
      [jobs[i].id, "3", "JOB_STATE_COMPLETED"],
    ]);
  });
  // Every stream unsubscribed once it ended.
  await eventually(() => server.app.hub.size === 0, "subscriptions to close");
}, 120_000); // generous for a loaded CI machine; the work itself takes ~10 s
