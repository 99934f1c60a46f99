// The database schema, as MikroORM entities. Migrations are generated from
// these and committed (src/store/migrations); the server never syncs schema.
// The job store reads and writes these tables with hand-written statements on
// its hot path (see job-store.ts for why), so column names here are the
// contract between the two.

import { defineEntity, p } from "@mikro-orm/core";

const STATE_CHECK = "state in ('PENDING','RUNNING','PENDING_CANCELLATION','COMPLETED','FAILED','CANCELLED')";

export const JobEntity = defineEntity({
  name: "Job",
  tableName: "jobs",
  properties: {
    id: p.uuid().primary(),
    type: p.text(),
    state: p.text().check(STATE_CHECK),
    companyId: p.bigint(),
    createdBy: p.json(),
    /** Who created the job, as a stable key: request_id idempotency is per principal. */
    creatorKey: p.text(),
    requestId: p.uuid().nullable(),
    input: p.json().nullable(),
    executorId: p.text().default(""),
    attempt: p.integer().default(0),
    revision: p.integer(),
    result: p.json().nullable(),
    failures: p.json().defaultRaw("'[]'::jsonb"),
    cancellationReason: p.text().default(""),
    dataPlaneId: p.text().default(""),
    computePoolId: p.text().default(""),
    executionCluster: p.text().default("UNSPECIFIED"),
    leaseSeconds: p.integer().default(0),
    leaseExpiresAt: p.datetime().columnType("timestamptz").nullable(),
    createdAt: p.datetime().columnType("timestamptz"),
    updatedAt: p.datetime().columnType("timestamptz"),
    startedAt: p.datetime().columnType("timestamptz").nullable(),
    finishedAt: p.datetime().columnType("timestamptz").nullable(),
  },
  uniques: [{ name: "jobs_creator_request_unique", properties: ["creatorKey", "requestId"] }],
  indexes: [
    // ListJobs: newest first, keyset-paged on (created_at, id), optionally per company.
    {
      name: "jobs_created_idx",
      columns: [
        { name: "created_at", sort: "DESC" },
        { name: "id", sort: "DESC" },
      ],
    },
    {
      name: "jobs_company_created_idx",
      // Raw, because MikroORM 7.2.1 reads this index back wrong (its sort-order
      // regex finds "id" inside "company_id") and would rebuild it on every diff.
      expression: 'create index "jobs_company_created_idx" on "jobs" ("company_id", "created_at" desc, "id" desc)',
    },
    // WatchJobs snapshots and the reaper read only unfinished jobs.
    {
      name: "jobs_unfinished_idx",
      properties: ["state"],
      where: "state in ('PENDING','RUNNING','PENDING_CANCELLATION')",
    },
    {
      name: "jobs_lease_expiry_idx",
      properties: ["leaseExpiresAt"],
      where: "lease_expires_at is not null",
    },
    { name: "jobs_executor_idx", properties: ["executorId"], where: "executor_id <> ''" },
  ],
});

export const JobEventEntity = defineEntity({
  name: "JobEvent",
  tableName: "job_events",
  properties: {
    job: () => p.manyToOne(JobEntity).primary().deleteRule("cascade"),
    revision: p.integer().primary(),
    type: p.text(),
    fromState: p.text().nullable(),
    toState: p.text(),
    actor: p.json(),
    occurredAt: p.datetime().columnType("timestamptz"),
    previousExecutorId: p.text().default(""),
    /** The job as of this revision (the JobRecord, as JSON). */
    snapshot: p.json(),
    /**
     * The id of the transaction that wrote the event. Watchers read new
     * events by it (events/event-feed.ts): unlike a sequence, it tells which
     * events a snapshot may not yet see.
     */
    xid: p.string().columnType("xid8").defaultRaw("pg_current_xact_id()"),
  },
  indexes: [{ name: "job_events_xid_idx", properties: ["xid"] }],
});

export const TokenEntity = defineEntity({
  name: "Token",
  tableName: "tokens",
  properties: {
    id: p.uuid().primary(),
    /** SHA-256 of the secret, hex. The secret itself is never stored. */
    secretHash: p.text().unique("tokens_secret_hash_unique"),
    principalType: p.text().check("principal_type in ('service','api_user')"),
    serviceName: p.text().nullable(),
    companyId: p.bigint().nullable(),
    userId: p.bigint().nullable(),
    scopes: p.array(),
    description: p.text().default(""),
    createdAt: p.datetime().columnType("timestamptz"),
    revokedAt: p.datetime().columnType("timestamptz").nullable(),
  },
});

export const ENTITIES = [JobEntity, JobEventEntity, TokenEntity];
