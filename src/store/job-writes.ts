// The write path: every call that changes a job (create, transition,
// heartbeat, lease expiry) joins a batch (./batcher.ts), and a batch is one
// transaction of a constant number of statements, however many calls it
// carries:
//   1. lock every job the batch names, in id order, so that two replicas
//      batching overlapping jobs cannot deadlock; the same statement reads
//      the rows, the database's clock and which transaction wrote each job's
//      latest event (the notifier keeps each job's events in order by it);
//   2. decide each call in arrival order (domain/batch.ts), in memory;
//   3. write every changed row, every new job and every new event in one
//      statement; a request_id its creator used before inserts nothing, and
//      a third statement reads the job it made;
//   4. COMMIT, then answer each call and tell the notifier.
// Nothing is answered before COMMIT's reply. A refused call is refused alone
// in step 2; a batch that PostgreSQL refuses as a whole is retried a call at
// a time, so one poisoned call cannot fail its neighbours.

import type { MikroORM } from "@mikro-orm/postgresql";
import { type BatchDecision, type CallOutcome, decideBatch, jobsNamed, type NewJobWrite, requestKey, type WriteCall } from "../domain/batch.js";
import { Unavailable } from "../domain/errors.js";
import type { EventRecord, JobRecord } from "../domain/job.js";
import type { JobLimits } from "../domain/job-size.js";
import { Batcher, type BatchReport, type Settled } from "./batcher.js";
import { JOB_COLUMNS, type JobRow, jobFromRow } from "./job-rows.js";
import { named } from "./named-statements.js";
import { asUnavailable, isConnectionError, micros, type QueryRunner, query, timestamp } from "./sql.js";

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

/** Told about every committed batch's events, right after its commit, in commit order. */
export type CommitListener = (events: readonly CommittedEvent[]) => void;

/** A call's answer, by kind of call. */
export type WriteAnswer = JobRecord | EventRecord | null | { job: JobRecord; created: boolean } | { changed: boolean };

export interface WriterOptions {
  /** The most calls per transaction; 1 gives each call its own. */
  readonly batchMaxCalls: number;
  /** Transactions in flight at once (each holds one pooled connection). */
  readonly batchesInFlight: number;
  /** The longest a call waits for a batch to take it (DB_ACQUIRE_TIMEOUT_MS). */
  readonly maxQueueMs: number;
  readonly onBatch?: (report: BatchReport) => void;
  /** Bounds on what a job may carry (domain/job-size.ts); none: unbounded. */
  readonly limits?: JobLimits;
}

/** The transaction that wrote a `jobs` row's latest event, as a select-list item. */
const PREVIOUS_XID = `(select e.xid::text from job_events e where e.job_id = jobs.id and e.revision = jobs.revision) as previous_xid`;

/**
 * Locks the batch's jobs (those `$2` or the companies `$3` may see) in id
 * order and reads them; always one row, so the clock comes back even when
 * nothing is locked.
 */
const LOCK_SQL = named(
  "jobs_lock",
  `with locked as (
     select ${JOB_COLUMNS}, ${PREVIOUS_XID} from jobs
     where id = any($1::uuid[]) and ($2::bool or company_id = any($3::int8[]))
     order by id for update
   )
   select ${micros("now()")} as now, locked.* from (select 1) as batch left join locked on true`,
);

type LockedRow = { now: string } & ({ id: null } | (JobRow & { previous_xid: string | null }));

/**
 * The batch's writes: changed rows ($1; a row without `failures` keeps its own), new jobs ($2) and
 * events ($3), each a JSON array; returns the transaction id and the new jobs written.
 */
const WRITE_SQL = named(
  "jobs_write",
  `with changed as (
     update jobs set state = c.state, executor_id = c."executorId", attempt = c.attempt, revision = c.revision,
       result = c.result, failures = coalesce(c.failures, jobs.failures), cancellation_reason = c."cancellationReason",
       lease_seconds = c."leaseSeconds", lease_expires_at = ${timestamp('c."leaseExpiresAt"')},
       updated_at = ${timestamp('c."updatedAt"')}, started_at = ${timestamp('c."startedAt"')},
       finished_at = ${timestamp('c."finishedAt"')}
     from jsonb_to_recordset($1::jsonb) as c(id uuid, state text, "executorId" text, attempt int, revision int,
       result jsonb, failures jsonb, "cancellationReason" text, "leaseSeconds" int, "leaseExpiresAt" int8,
       "updatedAt" int8, "startedAt" int8, "finishedAt" int8)
     where jobs.id = c.id
   ), inserted as (
     insert into jobs (id, type, state, company_id, created_by, creator_key, request_id, input, data_plane_id,
                       compute_pool_id, execution_cluster, revision, created_at, updated_at)
     select n.id, n.type, n.state, n."companyId", n."createdBy", n."creatorKey", n."requestId", n.input,
            n."dataPlaneId", n."computePoolId", n."executionCluster", n.revision, ${timestamp('n."createdAt"')},
            ${timestamp('n."updatedAt"')}
     from jsonb_to_recordset($2::jsonb) as n(id uuid, type text, state text, "companyId" int8, "createdBy" jsonb,
       "creatorKey" text, "requestId" uuid, input jsonb, "dataPlaneId" text, "computePoolId" text,
       "executionCluster" text, revision int, "createdAt" int8, "updatedAt" int8)
     on conflict on constraint jobs_creator_request_unique do nothing
     returning id
   ), appended as (
     insert into job_events (job_id, revision, type, from_state, to_state, actor, occurred_at, previous_executor_id, snapshot)
     select e."jobId", e.revision, e.type, e."fromState", e."toState", e.actor, ${timestamp('e."occurredAt"')},
            e."previousExecutorId", e.job
     from jsonb_to_recordset($3::jsonb) as e("jobId" uuid, revision int, type text, "fromState" text, "toState" text,
       actor jsonb, "occurredAt" int8, "previousExecutorId" text, job jsonb)
     where e.revision > 1 or e."jobId" in (select id from inserted)
   )
   select pg_current_xact_id()::text as xid, array(select id::text from inserted) as inserted`,
);

/** The jobs that earlier requests of these (creator, request_id) pairs made. */
const EARLIER_REQUESTS_SQL = named(
  "jobs_by_request",
  `select ${JOB_COLUMNS}, creator_key, request_id::text as request_id
   from jobs join unnest($1::text[], $2::uuid[]) as asked(creator_key, request_id) using (creator_key, request_id)`,
);

/**
 * The mutable part of a job row, as WRITE_SQL's `$1` reads it. The failure history, which may be
 * large, is left out when the batch did not change it (a heartbeat, a RunJob), so it is not sent back.
 */
function rowChanges(job: JobRecord, before: JobRecord | undefined) {
  const { id, state, executorId, attempt, revision, result, cancellationReason, leaseSeconds, leaseExpiresAt, updatedAt, startedAt, finishedAt } = job;
  const failures = job.failures === before?.failures ? undefined : job.failures;
  return { id, state, executorId, attempt, revision, result, failures, cancellationReason, leaseSeconds, leaseExpiresAt, updatedAt, startedAt, finishedAt };
}

export class JobWriter {
  private readonly batcher: Batcher<WriteCall, WriteAnswer>;

  constructor(
    private readonly orm: MikroORM,
    private readonly onCommit: CommitListener,
    private readonly options: WriterOptions,
  ) {
    this.batcher = new Batcher<WriteCall, WriteAnswer>((calls) => this.writeBatch(calls), {
      maxCalls: options.batchMaxCalls,
      maxInFlight: options.batchesInFlight,
      maxQueueMs: options.maxQueueMs,
      queueTimeout: () => new Unavailable("OVERLOADED", "the server is overloaded: too many writes are waiting for the database; retry with backoff"),
      // A lost connection is not the calls' fault: they would only lose it again.
      retryAlone: (error) => !(error instanceof Unavailable),
      failsWaiting: (error) => error instanceof Unavailable && noConnection.has(error),
      onBatch: options.onBatch,
      keyOf: (call) => (call.kind === "create" ? (call.requestId === null ? null : requestKey(call.creatorKey, call.requestId)) : call.jobId),
    });
  }

  submit<R extends WriteAnswer>(call: WriteCall): Promise<R> {
    return this.batcher.submit(call) as Promise<R>;
  }

  /** Calls waiting for a batch, and batches being written (metrics). */
  get queue(): { waiting: number; writing: number } {
    return { waiting: this.batcher.waiting, writing: this.batcher.writing };
  }

  private async writeBatch(calls: readonly WriteCall[]): Promise<Settled<WriteAnswer>[]> {
    // Kysely's transaction (on MikroORM's connection) gives the connection back to the pool whatever
    // happens, even when the connection died and ROLLBACK cannot be sent; where it failed tells what it means.
    const progress: { phase: "begin" | "statements" | "commit" } = { phase: "begin" };
    let written: Written;
    try {
      written = await this.orm.em
        .getConnection()
        .getClient()
        .transaction()
        .execute(async (trx) => {
          progress.phase = "statements";
          const result = await this.decideAndWrite(trx, calls);
          progress.phase = "commit";
          return result;
        });
    } catch (error) {
      // Nothing is in unless COMMIT was sent: a lost connection before it is certain failure.
      if (progress.phase === "commit" && isConnectionError(error)) throw commitUnknown();
      const unavailable = asUnavailable(error);
      if (unavailable === undefined) throw error;
      if (progress.phase === "begin") noConnection.add(unavailable);
      throw unavailable;
    }
    if (written.committed.length > 0) this.onCommit(written.committed);
    return written.answers;
  }

  private async decideAndWrite(trx: QueryRunner, calls: readonly WriteCall[]): Promise<Written> {
    const ids = jobsNamed(calls);
    const companies = new Set<string>();
    let anyService = false;
    for (const call of calls) {
      if (call.kind === "create") continue;
      if (call.kind === "expire" || call.actor.type === "service") anyService = true;
      else companies.add(call.actor.companyId);
    }
    const rows = await query<LockedRow>(trx, LOCK_SQL, [ids, anyService, [...companies]]);
    const now = Number(rows[0].now);
    const locked = new Map<string, JobRecord>();
    const previousXid = new Map<string, bigint | null>();
    for (const row of rows) {
      if (row.id === null) continue;
      locked.set(row.id, jobFromRow(row));
      previousXid.set(row.id, row.previous_xid === null ? null : BigInt(row.previous_xid));
    }
    const decision = decideBatch(calls, locked, now, this.options.limits);
    const nothingChanged = decision.changedJobs.length === 0 && decision.creates.length === 0;
    const { xid, inserted, earlier } = nothingChanged ? NOTHING_WRITTEN : await this.write(trx, decision, locked);

    const created = (create: NewJobWrite): Settled<WriteAnswer> => {
      if (inserted.has(create.job.id)) return { ok: true, value: { job: create.job, created: true } };
      const job = earlier.get(requestKey(create.creatorKey, create.requestId));
      // Only a request_id already used keeps a new job out, and its job is gone only if retention deleted it since.
      if (job === undefined) {
        return { ok: false, error: new Unavailable("CREATE_RACE", "the job this request_id made was deleted by retention while the call ran; retry the call") };
      }
      return { ok: true, value: { job, created: false } };
    };
    const answers: Settled<WriteAnswer>[] = [];
    for (const outcome of decision.outcomes) answers.push(outcome.kind === "create" ? created(outcome.create) : answerOf(outcome, answers));

    // Events in the order the calls made them; a job's later events in this batch follow the first, written by this transaction.
    const committed: CommittedEvent[] = [];
    const seen = new Set<string>();
    for (const event of decision.events) {
      if (event.revision === 1 && !inserted.has(event.jobId)) continue;
      const first = !seen.has(event.jobId);
      seen.add(event.jobId);
      committed.push({ event, xid, previousXid: event.revision === 1 ? null : first ? (previousXid.get(event.jobId) ?? null) : xid });
    }
    return { answers, committed };
  }

  /** The batch's one write statement, then the jobs that earlier requests made where a request_id inserted none. */
  private async write(trx: QueryRunner, decision: BatchDecision, locked: ReadonlyMap<string, JobRecord>): Promise<WriteResult> {
    const [{ xid, inserted: insertedIds }] = await query<{ xid: string; inserted: string[] }>(trx, WRITE_SQL, [
      JSON.stringify(decision.changedJobs.map((job) => rowChanges(job, locked.get(job.id)))),
      JSON.stringify(decision.creates.map(({ job, creatorKey, requestId }) => ({ ...job, creatorKey, requestId }))),
      JSON.stringify(decision.events),
    ]);
    const inserted = new Set(insertedIds);
    const earlier = await this.earlierRequests(trx, decision.creates.filter((create) => !inserted.has(create.job.id)));
    return { xid: BigInt(xid), inserted, earlier };
  }

  private async earlierRequests(trx: QueryRunner, creates: readonly NewJobWrite[]): Promise<Map<string, JobRecord>> {
    const found = new Map<string, JobRecord>();
    if (creates.length === 0) return found;
    const rows = await query<JobRow & { creator_key: string; request_id: string }>(trx, EARLIER_REQUESTS_SQL, [
      creates.map((create) => create.creatorKey),
      creates.map((create) => create.requestId),
    ]);
    for (const row of rows) found.set(requestKey(row.creator_key, row.request_id), jobFromRow(row));
    return found;
  }
}

interface WriteResult {
  /** The transaction's id. */
  readonly xid: bigint;
  /** The new jobs the insert wrote (a request_id used before inserts none). */
  readonly inserted: ReadonlySet<string>;
  /** The jobs earlier requests made, by requestKey, for the creates that inserted none. */
  readonly earlier: ReadonlyMap<string, JobRecord>;
}

/** What a batch that changes nothing (only refusals and no-ops) has written. */
const NOTHING_WRITTEN: WriteResult = { xid: 0n, inserted: new Set(), earlier: new Map() };

interface Written {
  readonly answers: Settled<WriteAnswer>[];
  readonly committed: CommittedEvent[];
}

/** The answer of a call that is not a create (`answers`: those of the calls before it, for a repeated request_id). */
function answerOf(outcome: Exclude<CallOutcome, { kind: "create" }>, answers: readonly Settled<WriteAnswer>[]): Settled<WriteAnswer> {
  switch (outcome.kind) {
    case "refused":
      return { ok: false, error: outcome.error };
    case "transition":
      return { ok: true, value: outcome.result };
    case "heartbeat":
      return { ok: true, value: outcome.job };
    case "expire":
      return { ok: true, value: outcome.event };
    case "same-request": {
      const first = answers[outcome.as];
      return first.ok ? { ok: true, value: { job: (first.value as { job: JobRecord }).job, created: false } } : first;
    }
  }
}

/** Failures of batches that got no connection: the calls waiting behind them fail with them. */
const noConnection = new WeakSet<object>();

/** The connection failed after COMMIT was sent: PostgreSQL may have committed. */
function commitUnknown(): Unavailable {
  return new Unavailable(
    "COMMIT_UNKNOWN",
    "the database connection was lost while committing, so the change may or may not have been applied; retrying is safe: a repeated transition returns changed=false once it is in",
  );
}
