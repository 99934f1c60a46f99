// The ceiling: what PostgreSQL alone can do with the statements the service
// sends for a lifecycle, from C connections, with no service in between.
//
// The SQL below mirrors src/store/job-store.ts statement for statement
// (JobStore.create, lockJob, appendTransition; begin/commit as Kysely sends
// them), unnamed statements with $n parameters as Kysely's pg dialect sends
// them, and the same parameter values: the job and event records come from
// the same domain functions (newJob, applyTransition) the store uses. Keep
// it in step with the store when the store's SQL changes.

import { randomUUID } from "node:crypto";
import pg from "pg";
import { applyTransition, type JobRecord, newJob } from "../src/domain/job.js";
import type { Principal } from "../src/domain/principal.js";
import { principalKey } from "../src/domain/principal.js";
import { JOB_COLUMNS, type JobRow, jobFromRow } from "../src/store/job-rows.js";
import { micros, timestamp } from "../src/store/sql.js";
import { Load } from "./load.js";
import type { Recorder } from "./stats.js";
import { COMPANY_ID, COMPUTE_POOL_ID, DATA_PLANE_ID, INPUT_JSON, LEASE_SECONDS, RESULT_JSON } from "./workload.js";

const ACTOR: Principal = { type: "service", name: "bench" };

// JobStore.create
const CREATE_SQL = `with inserted as (
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
       )
       select * from inserted`;

// lockJob
const LOCK_SQL = `select ${JOB_COLUMNS}, ${micros("now()")} as now from jobs
     where id = $1 and ($2::int8 is null or company_id = $2) for update`;

// appendTransition
const APPEND_SQL = `with updated as (
       update jobs set state = $2, executor_id = $3, attempt = $4, revision = $5, result = $6::jsonb,
         failures = $7::jsonb, cancellation_reason = $8, lease_seconds = $9,
         lease_expires_at = ${timestamp("$10")}, updated_at = ${timestamp("$11")},
         started_at = ${timestamp("$12")}, finished_at = ${timestamp("$13")}
       where id = $1
     )
     insert into job_events (job_id, revision, type, from_state, to_state, actor, occurred_at, previous_executor_id, snapshot)
     values ($1, $5, $14, $15, $2, $16::jsonb, ${timestamp("$11")}, $17, $18::jsonb)`;

const jsonOrNull = (value: unknown) => (value === null || value === undefined ? null : JSON.stringify(value));

async function createJob(client: pg.Client): Promise<JobRecord> {
  const { job, event } = newJob(
    {
      id: randomUUID(),
      type: "FORECAST",
      companyId: COMPANY_ID,
      createdBy: ACTOR,
      input: INPUT_JSON,
      dataPlaneId: DATA_PLANE_ID,
      computePoolId: COMPUTE_POOL_ID,
      executionCluster: "SHARED",
    },
    0,
  );
  const result = await client.query<JobRow>(CREATE_SQL, [
    job.id,
    job.type,
    job.companyId,
    JSON.stringify(ACTOR),
    principalKey(ACTOR),
    randomUUID(),
    jsonOrNull(job.input),
    job.dataPlaneId,
    job.computePoolId,
    job.executionCluster,
    JSON.stringify(event.job),
  ]);
  if (result.rows.length !== 1) throw new Error("create inserted no row");
  return jobFromRow(result.rows[0]);
}

/** One transition transaction, as JobStore.transition sends it. */
async function transition(client: pg.Client, jobId: string, args: Parameters<typeof applyTransition>[1]): Promise<JobRecord> {
  await client.query("begin");
  try {
    const rows = (await client.query<JobRow & { now: string }>(LOCK_SQL, [jobId, null])).rows;
    if (rows.length !== 1) throw new Error(`job ${jobId} not found`);
    const decided = applyTransition(jobFromRow(rows[0]), args, ACTOR, Number(rows[0].now));
    if (!decided.changed) throw new Error(`${args.call} changed nothing`);
    const job = decided.event.job;
    await client.query(APPEND_SQL, [
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
      decided.event.type,
      decided.event.fromState,
      JSON.stringify(decided.event.actor),
      decided.event.previousExecutorId,
      JSON.stringify(job),
    ]);
    await client.query("commit");
    return job;
  } catch (error) {
    await client.query("rollback").catch(() => undefined);
    throw error;
  }
}

/** `concurrency` connections, each running lifecycles back to back while the load runs. */
export async function createCeilingLoad(url: string, concurrency: number, recorder: Recorder): Promise<{ load: Load; close(): Promise<void> }> {
  const clients: pg.Client[] = [];
  for (let i = 0; i < concurrency; i++) {
    const client = new pg.Client({ connectionString: url, application_name: "jobs-bench-ceiling" });
    await client.connect();
    clients.push(client);
  }
  const lifecycle = async (index: number) => {
    const client = clients[index];
    const executorId = `executor-${index}`;
    let started = performance.now();
    const job = await createJob(client);
    recorder.done("create", performance.now() - started, 1);
    started = performance.now();
    const running = await transition(client, job.id, { call: "RunJob", executorId, leaseSeconds: LEASE_SECONDS });
    recorder.done("run", performance.now() - started, 1);
    started = performance.now();
    await transition(client, job.id, { call: "CompleteJob", result: RESULT_JSON, resultCase: "forecast", attempt: running.attempt });
    recorder.done("complete", performance.now() - started, 1);
  };
  const load = new Load(concurrency, lifecycle, recorder, "ceiling");
  return {
    load,
    async close() {
      await load.stop();
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    },
  };
}
