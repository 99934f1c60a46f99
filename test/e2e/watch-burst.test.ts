// Many events committed at once are not a slow watcher (docs/contract.md §5,
// WATCH_BUFFER_EVENTS: "a client further behind is cut off"). The reaper
// fails every expired lease of a batch in one transaction, so the notifier
// publishes them together; a watcher that keeps reading must get them all,
// even when there are more than WATCH_BUFFER_EVENTS of them. (The leases are
// made to expire together by setting lease_expires_at in the database.)

import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { jobsClient, type JobsClient, type Msg, reader } from "../support/grpc.js";
import { sql, startServer, type TestServer } from "../support/harness.js";
import { brief, drainToMarker, newJobMarkers, range, readUntil } from "../support/watching.js";

const BUFFER = 20;
const JOBS = 100;

let server: TestServer;
let client: JobsClient;

beforeAll(async () => {
  server = await startServer({
    env: {
      WATCH_BUFFER_EVENTS: String(BUFFER),
      REAPER_INTERVAL_SECONDS: "1",
      REAPER_GRACE_SECONDS: "0",
      REAPER_BATCH_SIZE: String(JOBS * 2),
      LOG_LEVEL: "warn",
    },
  });
  client = jobsClient(server.address, server.tokens.service);
});
afterAll(async () => {
  client?.close();
  await server?.stop();
});

test(`a watcher that keeps reading gets a burst of ${JOBS} events committed in one transaction (buffer ${BUFFER})`, async () => {
  const company = "55";
  const watch = reader(client.stream("WatchJobs", { company_id: company }));
  expect((await readUntil(watch, (m) => m.kind === "synced")).map((m) => m.kind)).toEqual(["synced"]);
  // Read all along, as a watcher that keeps up does.
  const seen = new Map<string, Msg[]>();
  const reading = (async () => {
    for (let failed = 0; failed < JOBS; ) {
      const m = await watch.next(30_000);
      if (m === null) throw new Error("WatchJobs ended OK; it never ends by itself");
      if (m.kind !== "event") continue;
      seen.set(m.event.job_id, [...(seen.get(m.event.job_id) ?? []), m.event]);
      if (m.event.to_state === "JOB_STATE_FAILED") failed++;
    }
  })();
  reading.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile

  // One at a time, so that these arrive in small batches.
  const jobs: Msg[] = [];
  for (const i of range(1, JOBS)) {
    const { job } = await client.call("CreateJob", { type: "JOB_TYPE_HEALTH_CHECK", company_id: company });
    await client.call("RunJob", { job_id: job.id, executor_id: `ex-${i}`, lease_seconds: 3600 });
    jobs.push(job);
  }
  // Every lease runs out at the same moment (one statement), so the reaper's next tick fails them
  // all in one transaction: one batch of JOBS events.
  await sql(server.databaseUrl, "update jobs set lease_expires_at = now() - interval '1 second' where company_id = $1", [company]);
  await reading;
  for (const job of jobs) {
    const events = seen.get(job.id) ?? [];
    expect(events.map((e) => Number(e.revision))).toEqual([1, 2, 3]);
    expect(events[2]).toMatchObject({ to_state: "JOB_STATE_FAILED", actor: { name: "reaper" } });
  }
  // The burst really was one: the reaper's events share a transaction, and so its timestamp.
  const reapedAt = new Set(jobs.map((job) => JSON.stringify(seen.get(job.id)?.[2].occurred_at)));
  expect(reapedAt.size).toBe(1);
  // And nothing after the burst: no event of it came twice.
  const markers = newJobMarkers([client], { type: "JOB_TYPE_HEALTH_CHECK", company_id: company });
  expect((await drainToMarker([watch], markers))[0].map(brief)).toEqual([]);
});
