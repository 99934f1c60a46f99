// Rows of `jobs` and `job_events` ↔ the domain's JobRecord / EventRecord.

import type { EventRecord, FailureRecord, JobRecord, JsonValue } from "../domain/job.js";
import type { Principal } from "../domain/principal.js";
import type { EventTypeName, ExecutionClusterName, JobStateName, JobTypeName } from "../domain/states.js";
import { micros } from "./sql.js";

/** The select list that every job read uses, so every read maps the same way. */
export const JOB_COLUMNS = `id, type, state, company_id::text as company_id, created_by, input, executor_id, attempt,
  revision, result, failures, cancellation_reason, data_plane_id, compute_pool_id, execution_cluster, lease_seconds,
  ${micros("lease_expires_at")} as lease_expires_at, ${micros("created_at")} as created_at,
  ${micros("updated_at")} as updated_at, ${micros("started_at")} as started_at, ${micros("finished_at")} as finished_at`;

export interface JobRow {
  id: string;
  type: string;
  state: string;
  company_id: string;
  created_by: Principal;
  input: JsonValue | null;
  executor_id: string;
  attempt: number;
  revision: number;
  result: JsonValue | null;
  failures: FailureRecord[];
  cancellation_reason: string;
  data_plane_id: string;
  compute_pool_id: string;
  execution_cluster: string;
  lease_seconds: number;
  lease_expires_at: string | null;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
}

const orNull = (value: string | null): number | null => (value === null ? null : Number(value));

export function jobFromRow(row: JobRow): JobRecord {
  return {
    id: row.id,
    type: row.type as JobTypeName,
    state: row.state as JobStateName,
    companyId: row.company_id,
    createdBy: row.created_by,
    input: row.input,
    executorId: row.executor_id,
    attempt: row.attempt,
    revision: row.revision,
    result: row.result,
    failures: row.failures,
    cancellationReason: row.cancellation_reason,
    dataPlaneId: row.data_plane_id,
    computePoolId: row.compute_pool_id,
    executionCluster: row.execution_cluster as ExecutionClusterName,
    leaseSeconds: row.lease_seconds,
    leaseExpiresAt: orNull(row.lease_expires_at),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    startedAt: orNull(row.started_at),
    finishedAt: orNull(row.finished_at),
  };
}

/** The select list of every event read; `table` qualifies the columns when a query joins. */
export const eventColumns = (table = "") =>
  `${table}job_id, ${table}revision, ${table}type, ${table}from_state, ${table}to_state, ${table}actor,
  ${micros(`${table}occurred_at`)} as occurred_at, ${table}previous_executor_id, ${table}snapshot`;

export const EVENT_COLUMNS = eventColumns();

export interface EventRow {
  job_id: string;
  revision: number;
  type: string;
  from_state: string | null;
  to_state: string;
  actor: Principal;
  occurred_at: string;
  previous_executor_id: string;
  snapshot: JobRecord;
}

export function eventFromRow(row: EventRow): EventRecord {
  return {
    jobId: row.job_id,
    revision: row.revision,
    type: row.type as EventTypeName,
    fromState: row.from_state as JobStateName | null,
    toState: row.to_state as JobStateName,
    actor: row.actor,
    occurredAt: Number(row.occurred_at),
    previousExecutorId: row.previous_executor_id,
    job: row.snapshot,
  };
}
