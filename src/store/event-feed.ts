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

import { EVENT_COLUMNS, type EventRow, eventFromRow } from "./job-rows.js";
import type { EventRecord } from "../domain/job.js";
import { type QueryRunner, query } from "./sql.js";

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

/** Every event whose transaction may not have been visible at `watermark`'s read, in (job, revision) order. */
export async function readFeed(runner: QueryRunner, watermark: bigint): Promise<FeedPage> {
  const rows = await query<Partial<EventRow> & { watermark: string; xid: string | null }>(
    runner,
    `with snapshot as (select pg_snapshot_xmin(pg_current_snapshot())::text as watermark)
     select snapshot.watermark, e.xid::text as xid, ${EVENT_COLUMNS}
     from snapshot left join job_events e on e.xid >= $1::xid8
     order by e.job_id, e.revision`,
    [watermark.toString()],
  );
  const events: FeedEvent[] = [];
  for (const row of rows) {
    if (row.xid === null) continue;
    events.push({ xid: BigInt(row.xid), event: eventFromRow(row as EventRow) });
  }
  return { watermark: BigInt(rows[0].watermark), events };
}
