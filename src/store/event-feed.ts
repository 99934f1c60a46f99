// Reads newly committed events for the notifier, gap-free, without a global
// sequence.
//
// A sequence number is handed out at insert, not at commit, so "seq > last
// seen" misses a transaction that took a small number and committed late.
// Instead each event row carries the id of the transaction that wrote it
// (xid8), and each read also returns the oldest transaction still running
// when its snapshot was taken (the snapshot's xmin). Any event that read did
// not see belongs to a transaction that was running then or started later, so
// its xid is >= that xmin: reading `xid >= previous xmin` next time finds it.
// The window re-reads a few events already seen; the notifier drops those.

import { type EventRow, eventColumns, eventFromRow } from "./job-rows.js";
import type { EventRecord } from "../domain/job.js";
import { named } from "./named-statements.js";
import { type QueryRunner, query } from "./sql.js";

/** The window since `$1`: the ids of the events it holds, and the next watermark (always one row). */
const FEED_WINDOW_SQL = named(
  "feed_window",
  `with snapshot as (select pg_snapshot_xmin(pg_current_snapshot())::text as watermark)
   select snapshot.watermark, e.job_id, e.revision, e.xid::text as xid
   from snapshot left join job_events e on e.xid >= $1::xid8`,
);

/** The whole events for these (job, revision) keys: driven by the keys, so each is a primary-key lookup whatever the table's size. */
const FEED_EVENTS_SQL = named(
  "feed_events",
  `select ${eventColumns("e.")}, e.xid::text as xid
   from unnest($1::uuid[], $2::int[]) as wanted(job_id, revision)
   join job_events e on e.job_id = wanted.job_id and e.revision = wanted.revision
   order by e.job_id, e.revision`,
);

export interface FeedEvent {
  readonly xid: bigint;
  readonly event: EventRecord;
}

export interface FeedPage {
  /** Pass to the next read. */
  readonly watermark: bigint;
  readonly events: readonly FeedEvent[];
}

/** The watermark to start from: events committed before now are the replay's business, not the feed's. */
export async function currentWatermark(runner: QueryRunner): Promise<bigint> {
  const rows = await query<{ xmin: string }>(runner, "select pg_snapshot_xmin(pg_current_snapshot())::text as xmin");
  return BigInt(rows[0].xmin);
}

/**
 * Every event whose transaction may not have been visible at `watermark`'s
 * read, in (job, revision) order. Two steps: which events the window holds
 * (ids only), then the whole events for those the caller does not know yet —
 * most of a window is events this process committed and published already, and
 * their snapshots need not cross the wire again.
 */
export async function readFeed(
  runner: QueryRunner,
  watermark: bigint,
  isKnown: (jobId: string, revision: number) => boolean = () => false,
): Promise<FeedPage> {
  const window = await query<{ watermark: string; job_id: string | null; revision: number; xid: string }>(
    runner,
    FEED_WINDOW_SQL,
    [watermark.toString()],
  );
  const unknown = window.filter((row) => row.job_id !== null && !isKnown(row.job_id, row.revision));
  const events: FeedEvent[] = [];
  if (unknown.length > 0) {
    const rows = await query<EventRow & { xid: string }>(
      runner,
      FEED_EVENTS_SQL,
      [unknown.map((row) => row.job_id), unknown.map((row) => row.revision)],
    );
    for (const row of rows) events.push({ xid: BigInt(row.xid), event: eventFromRow(row) });
  }
  return { watermark: BigInt(window[0].watermark), events };
}
