// The job store: the only code that reads and writes jobs and their events.
//
// Reads go straight to the pool. Every write (CreateJob, the transitions,
// heartbeats, the reaper's lease expiries) goes through the batched writer
// (./job-writes.ts): many calls per transaction, each answered exactly as it
// would have been alone. The statements are hand-written rather than ORM
// unit-of-work flushes: a batch writes all its rows and events in one
// statement, which the unit of work cannot express.

import { randomUUID } from "node:crypto";
import type { MikroORM } from "@mikro-orm/postgresql";
import { JobNotFound } from "../domain/errors.js";
import type { EventRecord, JobRecord, TransitionArgs, TransitionResult } from "../domain/job.js";
import type { JobLimits } from "../domain/job-size.js";
import { type Principal, principalKey } from "../domain/principal.js";
import { FINISHED_STATES, LEASED_STATES, UNFINISHED_STATES } from "../domain/states.js";
import type { BatchReport } from "./batcher.js";
import { EVENT_COLUMNS, type EventRow, eventFromRow, JOB_COLUMNS, type JobRow, jobFromRow } from "./job-rows.js";
import { type CommitListener, JobWriter } from "./job-writes.js";
import { Lane } from "./lane.js";
import { named } from "./named-statements.js";
import { type QueryRunner, query, sqlList, timestamp } from "./sql.js";

export type { CommitListener, CommittedEvent } from "./job-writes.js";

export interface NewJobFields {
  readonly type: JobRecord["type"];
  readonly companyId: string;
  readonly input: JobRecord["input"];
  readonly dataPlaneId: string;
  readonly computePoolId: string;
  readonly executionCluster: JobRecord["executionCluster"];
  /** AIP-155 idempotency key, unique per principal; null when the caller gave none. */
  readonly requestId: string | null;
}

export interface JobFilter {
  readonly states: readonly string[];
  readonly types: readonly string[];
  readonly executorId: string;
  readonly dataPlaneId: string;
  /** null: every company (service principals only). */
  readonly companyId: string | null;
  readonly createdAfter: number | null;
  readonly createdBefore: number | null;
}

/** Where the previous page ended: jobs are ordered by (created_at, id) descending. */
export interface JobCursor {
  readonly createdAt: number;
  readonly id: string;
}

export interface JobStoreOptions {
  /** Reads at once (the reads' share of the pool); more wait, and are shed as OVERLOADED after `maxQueueMs`. */
  readonly readSlots?: number;
  /** The most write calls per transaction; 1 gives each call a transaction of its own. */
  readonly batchMaxCalls?: number;
  /** Write transactions in flight at once. */
  readonly batchesInFlight?: number;
  /** The longest a write waits for a batch, or a read for a slot, before it is shed. */
  readonly maxQueueMs?: number;
  /** Told of every write transaction (metrics, debug log). */
  readonly onBatch?: (report: BatchReport) => void;
  /** Bounds on what a job may carry: a RunJob that could take a job past them is refused (JOB_FULL). */
  readonly limits?: JobLimits;
}

const UNFINISHED = sqlList(UNFINISHED_STATES);

const GET_SQL = named("jobs_get", `select ${JOB_COLUMNS} from jobs where id = $1 and ($2::int8 is null or company_id = $2)`);
const EVENTS_SQL = named(
  "jobs_events",
  `select ${EVENT_COLUMNS} from job_events where job_id = $1 and revision > $2 order by revision limit $3`,
);
const EXPIRED_SQL = named(
  "jobs_expired",
  `select id from jobs where state in ${sqlList(LEASED_STATES)} and lease_expires_at <= now()
   order by lease_expires_at limit $1`,
);

export class JobStore {
  private readonly writer: JobWriter;
  private readonly reads: Lane;

  constructor(
    private readonly orm: MikroORM,
    onCommit: CommitListener = () => {},
    options: JobStoreOptions = {},
  ) {
    this.reads = new Lane("reads", options.readSlots ?? 16, options.maxQueueMs ?? 2000);
    this.writer = new JobWriter(orm, onCommit, {
      batchMaxCalls: options.batchMaxCalls ?? 100,
      batchesInFlight: options.batchesInFlight ?? 1,
      maxQueueMs: options.maxQueueMs ?? 2000,
      onBatch: options.onBatch,
      limits: options.limits,
    });
  }

  /** A read, in the reads' share of the pool. */
  private read<R>(text: string, params: readonly unknown[]): Promise<R[]> {
    return this.reads.run(() => query<R>(this.orm.em.getConnection().getClient() as QueryRunner, text, params));
  }

  /** Reads waiting for a slot in the reads' share of the pool. */
  get readsWaiting(): number {
    return this.reads.waiting;
  }

  /** Write calls waiting for a batch, and write transactions in flight. */
  get writeQueue(): { waiting: number; writing: number } {
    return this.writer.queue;
  }

  /** A new job; or, for a request_id this creator used before, the job that request made, as it is now. */
  create(fields: NewJobFields, creator: Principal): Promise<{ job: JobRecord; created: boolean }> {
    const { requestId, ...chosen } = fields;
    return this.writer.submit({
      kind: "create",
      fields: { ...chosen, id: randomUUID(), createdBy: creator },
      creatorKey: principalKey(creator),
      requestId,
    });
  }

  /** The job, if `viewer` may see it. */
  async get(jobId: string, viewer: Principal, call: string): Promise<JobRecord> {
    const rows = await this.read<JobRow>(GET_SQL, [jobId, companyScope(viewer)]);
    if (rows.length === 0) throw new JobNotFound(jobId, call);
    return jobFromRow(rows[0]);
  }

  /** Up to `limit` jobs matching `filter`, newest first, after `cursor`. */
  async list(filter: JobFilter, cursor: JobCursor | null, limit: number): Promise<JobRecord[]> {
    const { where, params, param } = matching(filter);
    if (cursor) {
      where.push(`(created_at, id) < (${timestamp(param(cursor.createdAt))}, ${param(cursor.id)}::uuid)`);
    }
    const rows = await this.read<JobRow>(
      `select ${JOB_COLUMNS} from jobs ${where.length ? `where ${where.join(" and ")}` : ""}
       order by created_at desc, id desc limit ${param(limit)}`,
      params,
    );
    return rows.map(jobFromRow);
  }

  /** How many jobs matching `filter` are in each state; states without a job are absent. */
  async countByState(filter: JobFilter): Promise<Map<string, number>> {
    const { where, params } = matching(filter);
    const rows = await this.read<{ state: string; count: string }>(
      `select state, count(*) as count from jobs ${where.length ? `where ${where.join(" and ")}` : ""} group by state`,
      params,
    );
    return new Map(rows.map((row) => [row.state, Number(row.count)]));
  }

  /** Up to `limit` events of a job with revision > `afterRevision`, oldest first. Visibility is the caller's check. */
  async events(jobId: string, afterRevision: number, limit: number): Promise<EventRecord[]> {
    const rows = await this.read<EventRow>(EVENTS_SQL, [jobId, afterRevision, limit]);
    return rows.map(eventFromRow);
  }

  /** Every unfinished job matching `filter` (the WatchJobs snapshot). */
  async unfinished(filter: Pick<JobFilter, "states" | "types" | "executorId" | "companyId">): Promise<JobRecord[]> {
    const rows = await this.read<JobRow>(
      `select ${JOB_COLUMNS} from jobs
       where state in ${UNFINISHED}
         and (cardinality($1::text[]) = 0 or state = any($1::text[]))
         and (cardinality($2::text[]) = 0 or type = any($2::text[]))
         and ($3 = '' or executor_id = $3)
         and ($4::int8 is null or company_id = $4)
       order by created_at, id`,
      [filter.states, filter.types, filter.executorId, filter.companyId],
    );
    return rows.map(jobFromRow);
  }

  /** Applies one transition call under the job's row lock (docs/contract.md, transition rules). */
  transition(jobId: string, args: TransitionArgs, actor: Principal): Promise<TransitionResult> {
    return this.writer.submit({ kind: "transition", jobId, args, actor });
  }

  /** Extends the lease of the executor's current run: no revision, no event. */
  heartbeat(jobId: string, executorId: string, attempt: number, actor: Principal): Promise<JobRecord> {
    return this.writer.submit({ kind: "heartbeat", jobId, executorId, attempt, actor });
  }

  /**
   * Fails (RUNNING) or cancels (PENDING_CANCELLATION) up to `limit` jobs whose
   * lease ran out by the database's clock. Each expiry is a write call like
   * any other: under the row lock it re-checks the lease, so with several
   * replicas each job is reaped once, and a heartbeat that got in first wins.
   */
  async reapExpired(limit: number): Promise<EventRecord[]> {
    const expired = await this.read<{ id: string }>(EXPIRED_SQL, [limit]);
    const events = await Promise.all(expired.map(({ id }) => this.writer.submit<EventRecord | null>({ kind: "expire", jobId: id })));
    return events.filter((event): event is EventRecord => event !== null);
  }

  /** Deletes up to `limit` jobs (and, by cascade, their events) that finished more than `days` ago. */
  async deleteFinishedBefore(days: number, limit: number): Promise<number> {
    const rows = await this.read<{ id: string }>(
      `delete from jobs where id in (
         select id from jobs
         where state in ${sqlList(FINISHED_STATES)} and finished_at < now() - $1 * interval '1 day'
         limit $2 for update skip locked)
       returning id`,
      [days, limit],
    );
    return rows.length;
  }
}

/** The company an API user is confined to; null for services, which see every company. */
function companyScope(viewer: Principal): string | null {
  return viewer.type === "api_user" ? viewer.companyId : null;
}

/** The conditions (and their parameters) that select the jobs matching `filter`, for list and count. */
function matching(filter: JobFilter): { where: string[]; params: unknown[]; param: (value: unknown) => string } {
  const where: string[] = [];
  const params: unknown[] = [];
  const param = (value: unknown) => {
    params.push(value);
    return `$${params.length}`;
  };
  if (filter.states.length) where.push(`state = any(${param(filter.states)}::text[])`);
  if (filter.types.length) where.push(`type = any(${param(filter.types)}::text[])`);
  if (filter.executorId) where.push(`executor_id = ${param(filter.executorId)}`);
  if (filter.dataPlaneId) where.push(`data_plane_id = ${param(filter.dataPlaneId)}`);
  if (filter.companyId !== null) where.push(`company_id = ${param(filter.companyId)}::int8`);
  if (filter.createdAfter !== null) where.push(`created_at >= ${timestamp(param(filter.createdAfter))}`);
  if (filter.createdBefore !== null) where.push(`created_at < ${timestamp(param(filter.createdBefore))}`);
  return { where, params, param };
}
