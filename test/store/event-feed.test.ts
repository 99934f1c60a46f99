// The notifier's feed (src/store/event-feed.ts): reading job_events by the
// writing transaction's id, from a watermark that is the oldest transaction
// still running at the previous read. The property the design relies on is
// that no committed event is ever skipped, however late its transaction
// commits relative to others that started after it.

import { afterAll, beforeAll, expect, test } from "@jest/globals";
import pg from "pg";
import type { JobRecord } from "../../src/domain/job.js";
import { currentWatermark, type FeedPage, readFeed } from "../../src/store/event-feed.js";
import { createJob, SERVICE, type StoreBundle, storeBundle } from "./store-bundle.js";

let bundle: StoreBundle;

beforeAll(async () => {
  bundle = await storeBundle(5);
});
afterAll(async () => {
  await bundle?.close();
});

const read = (watermark: bigint) => readFeed(bundle.runner(), watermark);

/** The (job, revision) pairs a feed page carries, as "jobId#revision". */
function keys(page: FeedPage): string[] {
  return page.events.map((f) => `${f.event.jobId}#${f.event.revision}`);
}
const key = (jobId: string, revision: number) => `${jobId}#${revision}`;

/**
 * A transaction on its own connection that appends revision 2 of `job`
 * (a cancellation request), written by hand so that the test decides when it
 * commits.
 */
async function openWriter(): Promise<{ client: pg.Client; appendRevision2(job: JobRecord): Promise<void> }> {
  const client = new pg.Client({ connectionString: bundle.databaseUrl });
  await client.connect();
  await client.query("begin");
  return {
    client,
    async appendRevision2(job: JobRecord) {
      const [{ now }] = (
        await client.query<{ now: string }>(
          `update jobs set state = 'PENDING_CANCELLATION', revision = 2, cancellation_reason = 'held open', updated_at = now()
           where id = $1 returning (extract(epoch from now()) * 1000000)::int8::text as now`,
          [job.id],
        )
      ).rows;
      const snapshot = { ...job, state: "PENDING_CANCELLATION", revision: 2, cancellationReason: "held open", updatedAt: Number(now) };
      await client.query(
        `insert into job_events (job_id, revision, type, from_state, to_state, actor, occurred_at, snapshot)
         values ($1, 2, 'CANCELLATION_REQUESTED', 'PENDING', 'PENDING_CANCELLATION', $2::jsonb, now(), $3::jsonb)`,
        [job.id, JSON.stringify(SERVICE), JSON.stringify(snapshot)],
      );
    },
  };
}

test("events committed after a watermark are returned by the next read, in (job, revision) order", async () => {
  const w0 = await currentWatermark(bundle.runner());
  const job = await createJob(bundle.store);
  await bundle.store.transition(job.id, { call: "RunJob", executorId: "ex", leaseSeconds: 600 }, SERVICE);

  const page = await read(w0);
  const mine = page.events.filter((f) => f.event.jobId === job.id).map((f) => f.event);
  expect(mine).toEqual(await bundle.store.events(job.id, 0, 100));
  expect(mine.map((e) => e.revision)).toEqual([1, 2]);
  // Each carries the id of the transaction that wrote it, at or above the watermark read from.
  for (const f of page.events) expect(f.xid).toBeGreaterThanOrEqual(w0);

  // The next read, from the watermark this one returned, finds what commits next.
  await bundle.store.transition(job.id, { call: "RequestJobCancellation", reason: "" }, SERVICE);
  const next = await read(page.watermark);
  expect(keys(next)).toContain(key(job.id, 3));
  expect(next.watermark).toBeGreaterThanOrEqual(page.watermark);
});

test("a transaction that wrote before a read and commits after it is returned by a later read", async () => {
  const early = await createJob(bundle.store);
  const w0 = await currentWatermark(bundle.runner());
  const writer = await openWriter();
  try {
    await writer.appendRevision2(early);

    // Later transactions commit while the early one stays open; each read sees them, not it.
    let watermark = w0;
    for (let i = 0; i < 3; i++) {
      const later = await createJob(bundle.store);
      const page = await read(watermark);
      expect(keys(page)).toContain(key(later.id, 1));
      expect(keys(page)).not.toContain(key(early.id, 2));
      watermark = page.watermark;
    }

    await writer.client.query("commit");
    const after = await read(watermark);
    expect(keys(after)).toContain(key(early.id, 2));
    const event = after.events.find((f) => f.event.jobId === early.id && f.event.revision === 2)!.event;
    expect(event).toMatchObject({ type: "CANCELLATION_REQUESTED", fromState: "PENDING", toState: "PENDING_CANCELLATION" });
  } finally {
    await writer.client.end();
  }
});

test("a transaction that began before a read but wrote and committed after it is returned by the next read", async () => {
  const job = await createJob(bundle.store);
  const w0 = await currentWatermark(bundle.runner());
  const writer = await openWriter(); // BEGIN only: no transaction id yet
  try {
    const first = await read(w0);
    expect(keys(first)).not.toContain(key(job.id, 2));
    // Another transaction commits in between, moving the watermark on.
    const other = await createJob(bundle.store);
    const second = await read(first.watermark);
    expect(keys(second)).toContain(key(other.id, 1));

    await writer.appendRevision2(job);
    await writer.client.query("commit");
    const third = await read(second.watermark);
    expect(keys(third)).toContain(key(job.id, 2));
  } finally {
    await writer.client.end();
  }
});

test("a rolled-back transaction's event never appears", async () => {
  const job = await createJob(bundle.store);
  const w0 = await currentWatermark(bundle.runner());
  const writer = await openWriter();
  try {
    await writer.appendRevision2(job);
    await writer.client.query("rollback");
  } finally {
    await writer.client.end();
  }
  const page = await read(w0);
  expect(keys(page)).not.toContain(key(job.id, 2));
});
