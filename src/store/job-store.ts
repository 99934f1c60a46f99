// The job store: the only code that reads and writes jobs and their events.
//
// Every change runs in one MikroORM transaction that holds the job's row lock
// (SELECT … FOR UPDATE); the domain decides (domain/job.ts) and the store
// writes exactly what it decided: the job row and its event, in one statement.
// The statements are hand-written rather than ORM unit-of-work flushes because
// a transition is on every executor's hot path: lock-and-read is one round
// trip, update-and-append another, and entity hydration would cost CPU for
// nothing (see the benchmark notes in README.md).

import { randomUUID } from "node:crypto";
import type { MikroORM } from "@mikro-orm/postgresql";
import type { Transaction } from "kysely";
import { JobNotFound, Unavailable } from "../domain/errors.js";
import {
  applyHeartbeat,
  applyTransition,
  type EventRecord,
  expiryTransition,
  type JobRecord,
  newJob,
  type TransitionArgs,
  type TransitionResult,
} from "../domain/job.js";
import { type Principal, principalKey, REAPER } from "../domain/principal.js";
import { KeyedQueue } from "./keyed-queue.js";
import { prepared, thenCommit } from "./prepared-client.js";
import { EVENT_COLUMNS, type EventRow, eventFromRow, JOB_COLUMNS, type JobRow, jobFromRow } from "./job-rows.js";
import { asUnavailable, commitUnknown, isConnectionError, micros, type QueryRunner, query, timestamp } from "./sql.js";

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

/** An event this process committed, with the id of the transaction that wrote it. */
export interface CommittedEvent {
  readonly event: EventRecord;
  readonly xid: bigint;
  /**
   * The id of the transaction that wrote the job's previous event: null for
   * CREATED, and also when the lock waited for that very transaction (the
   * lock statement's snapshot predates it; see Notifier.committed).
   */
  readonly previousXid: bigint | null;
}

/** Told about every committed change, right after its commit; the notifier listens here. */
export type CommitListener = (events: readonly CommittedEvent[]) => void;

const UNFINISHED = "('PENDING','RUNNING','PENDING_CANCELLATION')";

/** The transaction that wrote a `jobs` row's latest event, as a select-list item. */
const PREVIOUS_XID = `(select e.xid::text from job_events e where e.job_id = jobs.id and e.revision = jobs.revision) as previous_xid`;

// The statements of the hot path, exported so that the benchmark's ceiling
// (bench/ceiling.ts) sends exactly these, with exactly these parameters.

/** CreateJob: one statement, so atomic without BEGIN/COMMIT: the job, and its CREATED event whose snapshot takes the database's clock for created_at. */
export const CREATE_JOB_SQL = prepared(
  "jobs_create",
  `with inserted as (
     insert into jobs (id, type, state, company_id, created_by, creator_key, request_id, input, data_plane_id,
                       compute_pool_id, execution_cluster, revision, created_at, updated_at)
     values ($1, $2, 'PENDING', $3, $4::jsonb, $5, $6, $7::jsonb, $8, $9, $10, 1, now(), now())
     on conflict on constraint jobs_creator_request_unique do nothing
     returning ${JOB_COLUMNS}
   ), appended as (
     insert into job_events (job_id, revision, type, from_state, to_state, actor, occurred_at, snapshot)
     select id, 1, 'CREATED', null, 'PENDING', $4::jsonb, now(),
            $11::jsonb || jsonb_build_object('createdAt', created_at, 'updatedAt', updated_at)
     from inserted
     returning xid::text
   )
   select inserted.*, appended.xid from inserted, appended`,
);

export function createJobParams(event: EventRecord, creatorKey: string, requestId: string | null): unknown[] {
  const job = event.job;
  return [
    job.id,
    job.type,
    job.companyId,
    JSON.stringify(job.createdBy),
    creatorKey,
    requestId,
    jsonOrNull(job.input),
    job.dataPlaneId,
    job.computePoolId,
    job.executionCluster,
    JSON.stringify(job),
  ];
}

/**
 * Lock and read in one round trip: the row (if the viewer may see it), the
 * database's clock, and which transaction wrote the job's latest event (the
 * notifier needs it to keep each job's events in order).
 */
export const LOCK_JOB_SQL = prepared(
  "jobs_lock",
  `select ${JOB_COLUMNS}, ${micros("now()")} as now, ${PREVIOUS_XID}
   from jobs where id = $1 and ($2::int8 is null or company_id = $2) for update`,
);

/** A decided transition: the job row and its event in one statement; returns the writing transaction's id. */
export const APPEND_TRANSITION_SQL = prepared(
  "jobs_transition",
  `with updated as (
     update jobs set state = $2, executor_id = $3, attempt = $4, revision = $5, result = $6::jsonb,
       failures = $7::jsonb, cancellation_reason = $8, lease_seconds = $9,
       lease_expires_at = ${timestamp("$10")}, updated_at = ${timestamp("$11")},
       started_at = ${timestamp("$12")}, finished_at = ${timestamp("$13")}
     where id = $1
   )
   insert into job_events (job_id, revision, type, from_state, to_state, actor, occurred_at, previous_executor_id, snapshot)
   values ($1, $5, $14, $15, $2, $16::jsonb, ${timestamp("$11")}, $17, $18::jsonb)
   returning xid::text`,
);

export function appendTransitionParams(event: EventRecord): unknown[] {
  const job = event.job;
  return [
    job.id,
    job.state,
    job.executorId,
    job.attempt,
    job.revision,
    jsonOrNull(job.result),
    JSON.stringify(job.failures),
    job.cancellationReason,
    job.leaseSeconds,
    job.leaseExpiresAt,
    job.updatedAt,
    job.startedAt,
    job.finishedAt,
    event.type,
    event.fromState,
    JSON.stringify(event.actor),
    event.previousExecutorId,
    JSON.stringify(job),
  ];
}

export class JobStore {
  private readonly perJob = new KeyedQueue();

  constructor(
    private readonly orm: MikroORM,
    private readonly onCommit: CommitListener = () => {},
  ) {}

  private get client(): QueryRunner {
    return this.orm.em.getConnection().getClient() as QueryRunner;
  }

  async create(fields: NewJobFields, creator: Principal): Promise<{ job: JobRecord; created: boolean }> {
    const { job, event } = newJob(
      {
        id: randomUUID(),
        type: fields.type,
        companyId: fields.companyId,
        createdBy: creator,
        input: fields.input,
        dataPlaneId: fields.dataPlaneId,
        computePoolId: fields.computePoolId,
        executionCluster: fields.executionCluster,
      },
      0,
    );
    const creatorKey = principalKey(creator);
    // Its own transaction: a connection lost once it is sent leaves the outcome unknown (COMMIT_UNKNOWN).
    const rows = await query<JobRow & { xid: string }>(this.client, thenCommit(CREATE_JOB_SQL), createJobParams(event, creatorKey, fields.requestId));
    if (rows.length === 1) {
      const created = jobFromRow(rows[0]);
      this.onCommit([
        { event: { ...event, occurredAt: created.createdAt, job: created }, xid: BigInt(rows[0].xid), previousXid: null },
      ]);
      return { job: created, created: true };
    }
    // The request_id was used before by this principal: the job it made, whatever state it is in now.
    const existing = await query<JobRow>(
      this.client,
      prepared("jobs_by_request", `select ${JOB_COLUMNS} from jobs where creator_key = $1 and request_id = $2`),
      [creatorKey, fields.requestId],
    );
    if (existing.length !== 1) {
      throw new Unavailable("CREATE_RACE", "the job for this request_id was created concurrently; retry the call");
    }
    return { job: jobFromRow(existing[0]), created: false };
  }

  /** The job, if `viewer` may see it. */
  async get(jobId: string, viewer: Principal, call: string): Promise<JobRecord> {
    const rows = await query<JobRow>(
      this.client,
      prepared("jobs_get", `select ${JOB_COLUMNS} from jobs where id = $1 and ($2::int8 is null or company_id = $2)`),
      [jobId, companyScope(viewer)],
    );
    if (rows.length === 0) throw new JobNotFound(jobId, call);
    return jobFromRow(rows[0]);
  }

  /** Up to `limit` jobs matching `filter`, newest first, after `cursor`. */
  async list(filter: JobFilter, cursor: JobCursor | null, limit: number): Promise<JobRecord[]> {
    const { where, params, param } = matching(filter);
    if (cursor) {
      where.push(`(created_at, id) < (${timestamp(param(cursor.createdAt))}, ${param(cursor.id)}::uuid)`);
    }
    const rows = await query<JobRow>(
      this.client,
      `select ${JOB_COLUMNS} from jobs ${where.length ? `where ${where.join(" and ")}` : ""}
       order by created_at desc, id desc limit ${param(limit)}`,
      params,
    );
    return rows.map(jobFromRow);
  }

  /** How many jobs matching `filter` are in each state; states without a job are absent. */
  async countByState(filter: JobFilter): Promise<Map<string, number>> {
    const { where, params } = matching(filter);
    const rows = await query<{ state: string; count: string }>(
      this.client,
      `select state, count(*) as count from jobs ${where.length ? `where ${where.join(" and ")}` : ""} group by state`,
      params,
    );
    return new Map(rows.map((row) => [row.state, Number(row.count)]));
  }

  /** Up to `limit` events of a job with revision > `afterRevision`, oldest first. Visibility is the caller's check. */
  async events(jobId: string, afterRevision: number, limit: number): Promise<EventRecord[]> {
    const rows = await query<EventRow>(
      this.client,
      prepared(
        "jobs_events",
        `select ${EVENT_COLUMNS} from job_events where job_id = $1 and revision > $2 order by revision limit $3`,
      ),
      [jobId, afterRevision, limit],
    );
    return rows.map(eventFromRow);
  }

  /** Every unfinished job matching `filter` (the WatchJobs snapshot). */
  async unfinished(filter: Pick<JobFilter, "states" | "types" | "executorId" | "companyId">): Promise<JobRecord[]> {
    const rows = await query<JobRow>(
      this.client,
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

  /** Applies one transition call under the job's row lock (SPEC §4). */
  async transition(jobId: string, args: TransitionArgs, actor: Principal): Promise<TransitionResult> {
    const { result, xid, previousXid } = await this.perJob.run(jobId, () =>
      this.inTransaction(async (trx) => {
        const { job, now, previousXid } = await lockJob(trx, jobId, actor, args.call);
        const decided = applyTransition(job, args, actor, now);
        return { result: decided, xid: decided.changed ? await appendTransition(trx, decided.event, { endsTransaction: true }) : null, previousXid };
      }),
      gotNoConnection,
    );
    if (result.changed && xid !== null) this.onCommit([{ event: result.event, xid, previousXid }]);
    return result;
  }

  /** Extends the lease of the executor's current run (SPEC §9): no revision, no event. */
  async heartbeat(jobId: string, executorId: string, attempt: number, actor: Principal): Promise<JobRecord> {
    return this.perJob.run(jobId, () =>
      this.inTransaction(async (trx) => {
        const { job, now } = await lockJob(trx, jobId, actor, "HeartbeatJob");
        const extended = applyHeartbeat(job, executorId, attempt, now);
        await query(
          trx,
          thenCommit(
            prepared(
              "jobs_heartbeat",
              `update jobs set lease_expires_at = ${timestamp("$2")}, updated_at = ${timestamp("$3")} where id = $1`,
            ),
          ),
          [jobId, extended.leaseExpiresAt, extended.updatedAt],
        );
        return extended;
      }),
      gotNoConnection,
    );
  }

  /**
   * Fails (RUNNING) or cancels (PENDING_CANCELLATION) up to `limit` jobs whose
   * lease ran out by the database's clock. SKIP LOCKED lets several replicas
   * reap at once without waiting on each other or on live transitions; the
   * lock re-checks the expiry, so each job is reaped once.
   */
  async reapExpired(limit: number): Promise<EventRecord[]> {
    const events = await this.inTransaction(async (trx) => {
      const rows = await query<LockedRow>(
        trx,
        `select ${JOB_COLUMNS}, ${micros("now()")} as now, ${PREVIOUS_XID} from jobs
         where state in ('RUNNING','PENDING_CANCELLATION') and lease_expires_at <= now()
         order by lease_expires_at limit $1
         for update skip locked`,
        [limit],
      );
      const reaped: CommittedEvent[] = [];
      for (const row of rows) {
        const job = jobFromRow(row);
        const now = Number(row.now);
        const result = applyTransition(job, expiryTransition(job, now), REAPER, now);
        if (result.changed) {
          const xid = await appendTransition(trx, result.event);
          reaped.push({ event: result.event, xid, previousXid: orNull(row.previous_xid) });
        }
      }
      return reaped;
    });
    if (events.length) this.onCommit(events);
    return events.map((e) => e.event);
  }

  /** Deletes up to `limit` jobs (and, by cascade, their events) that finished more than `days` ago. */
  async deleteFinishedBefore(days: number, limit: number): Promise<number> {
    const rows = await query<{ id: string }>(
      this.client,
      `delete from jobs where id in (
         select id from jobs
         where state in ('COMPLETED','FAILED','CANCELLED') and finished_at < now() - $1 * interval '1 day'
         limit $2 for update skip locked)
       returning id`,
      [days, limit],
    );
    return rows.length;
  }

  /**
   * Runs `work` in one transaction. A connection lost while committing leaves
   * the outcome unknown (SPEC §11): the caller is told so, and may retry,
   * since every transition is idempotent by state.
   */
  private async inTransaction<T>(work: (trx: QueryRunner) => Promise<T>): Promise<T> {
    const connection = this.orm.em.getConnection();
    let trx: Transaction<unknown>;
    try {
      trx = (await connection.begin()) as unknown as Transaction<unknown>;
    } catch (error) {
      const unavailable = asUnavailable(error);
      if (unavailable === undefined) throw error;
      noConnection.add(unavailable);
      throw unavailable;
    }
    let result: T;
    try {
      // The statements go to the transaction's own connection: Kysely's executor around each one
      // (its plugins, a connection provider that queues statements) adds nothing to a transaction
      // that sends one statement at a time, and cost a few async steps per statement.
      const statements = await trx.getExecutor().provideConnection(async (held) => held);
      result = await work(statements);
    } catch (error) {
      await connection.rollback(trx as never).catch(() => undefined);
      throw error;
    }
    try {
      await connection.commit(trx as never);
    } catch (error) {
      // Kysely gives the connection back only once a COMMIT or ROLLBACK succeeds (kysely#1990): without this ROLLBACK it would stay lent out for good.
      await connection.rollback(trx as never).catch(() => undefined);
      if (isConnectionError(error)) throw commitUnknown();
      throw error;
    }
    return result;
  }
}

/** Locks the job's row if `viewer` may see it; returns it with the database's clock. */
async function lockJob(
  trx: QueryRunner,
  jobId: string,
  viewer: Principal,
  call: string,
): Promise<{ job: JobRecord; now: number; previousXid: bigint | null }> {
  const rows = await query<LockedRow>(trx, LOCK_JOB_SQL, [jobId, companyScope(viewer)]);
  if (rows.length === 0) throw new JobNotFound(jobId, call);
  return { job: jobFromRow(rows[0]), now: Number(rows[0].now), previousXid: orNull(rows[0].previous_xid) };
}

type LockedRow = JobRow & { now: string; previous_xid: string | null };

/** The failures of calls that got no connection: the calls queued behind them on the same job share them. */
const noConnection = new WeakSet<object>();
const gotNoConnection = (error: unknown) => typeof error === "object" && error !== null && noConnection.has(error);

const orNull = (xid: string | null) => (xid === null ? null : BigInt(xid));

/** Writes a decided transition: the job row and its event, in one statement; returns the writing transaction's id. */
async function appendTransition(trx: QueryRunner, event: EventRecord, { endsTransaction = false } = {}): Promise<bigint> {
  const sql = endsTransaction ? thenCommit(APPEND_TRANSITION_SQL) : APPEND_TRANSITION_SQL;
  const rows = await query<{ xid: string }>(trx, sql, appendTransitionParams(event));
  return BigInt(rows[0].xid);
}

/** The company an API user is confined to; null for services, which see every company. */
function companyScope(viewer: Principal): string | null {
  return viewer.type === "api_user" ? viewer.companyId : null;
}

function jsonOrNull(value: unknown): string | null {
  return value === null || value === undefined ? null : JSON.stringify(value);
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
