// The ceiling: what PostgreSQL alone can do with a job lifecycle sent one
// transition per transaction, as pgbench sends it, from C connections with no
// service in between. CreateJob is one statement (the job and its CREATED
// event); RunJob and CompleteJob are BEGIN, a lock-and-read, one statement
// writing the row and its event, COMMIT — each waiting for the previous
// reply. The statements are named (prepared once per connection), and the
// rows they write are built by the same domain functions the service uses
// (newJob, applyTransition), so both write the same data. The service batches
// many calls per transaction; the ceiling is the per-transaction cost that
// batching is measured against.

import { randomUUID } from "node:crypto";
import pg from "pg";
import { applyTransition, type EventRecord, type JobRecord, newJob } from "../src/domain/job.js";
import type { Principal } from "../src/domain/principal.js";
import { principalKey } from "../src/domain/principal.js";
import { JOB_COLUMNS, type JobRow, jobFromRow } from "../src/store/job-rows.js";
import { micros, timestamp } from "../src/store/sql.js";
import { Load } from "./load.js";
import type { Recorder } from "./stats.js";
import { COMPANY_ID, COMPUTE_POOL_ID, DATA_PLANE_ID, INPUT_JSON, LEASE_SECONDS, RESULT_JSON } from "./workload.js";

/** Who the benchmark's jobs are created and changed by. */
export const ACTOR: Principal = { type: "service", name: "bench" };

export type NewJob = Pick<JobRecord, "type" | "companyId" | "input" | "dataPlaneId" | "computePoolId" | "executionCluster">;

/** The bench's job: a forecast as bench/workload.ts's CreateJob request describes it. */
const BENCH_JOB: NewJob = {
  type: "FORECAST",
  companyId: COMPANY_ID,
  input: INPUT_JSON,
  dataPlaneId: DATA_PLANE_ID,
  computePoolId: COMPUTE_POOL_ID,
  executionCluster: "SHARED",
};

const CREATE = {
  name: "ceiling_create",
  text: `with inserted as (
     insert into jobs (id, type, state, company_id, created_by, creator_key, request_id, input, data_plane_id,
                       compute_pool_id, execution_cluster, revision, created_at, updated_at)
     values ($1, $2, 'PENDING', $3, $4::jsonb, $5, $6, $7::jsonb, $8, $9, $10, 1, now(), now())
     returning ${JOB_COLUMNS}
   ), appended as (
     insert into job_events (job_id, revision, type, from_state, to_state, actor, occurred_at, snapshot)
     select id, 1, 'CREATED', null, 'PENDING', $4::jsonb, now(),
            $11::jsonb || jsonb_build_object('createdAt', created_at, 'updatedAt', updated_at)
     from inserted
   )
   select * from inserted`,
};

const LOCK = {
  name: "ceiling_lock",
  text: `select ${JOB_COLUMNS}, ${micros("now()")} as now from jobs where id = $1 for update`,
};

const APPEND = {
  name: "ceiling_append",
  text: `with updated as (
     update jobs set state = $2, executor_id = $3, attempt = $4, revision = $5, result = $6::jsonb,
       failures = $7::jsonb, cancellation_reason = $8, lease_seconds = $9,
       lease_expires_at = ${timestamp("$10")}, updated_at = ${timestamp("$11")},
       started_at = ${timestamp("$12")}, finished_at = ${timestamp("$13")}
     where id = $1
   )
   insert into job_events (job_id, revision, type, from_state, to_state, actor, occurred_at, previous_executor_id, snapshot)
   values ($1, $5, $14, $15, $2, $16::jsonb, ${timestamp("$11")}, $17, $18::jsonb)`,
};

const json = (value: unknown) => (value === null || value === undefined ? null : JSON.stringify(value));

/** CreateJob as one self-committing statement. */
export async function createJob(client: pg.Client, fields: NewJob = BENCH_JOB, requestId: string | null = randomUUID()): Promise<JobRecord> {
  const { job } = newJob({ id: randomUUID(), createdBy: ACTOR, ...fields }, 0);
  const values = [job.id, job.type, job.companyId, JSON.stringify(ACTOR), principalKey(ACTOR), requestId, json(job.input), job.dataPlaneId, job.computePoolId, job.executionCluster, JSON.stringify(job)];
  const { rows } = await client.query<JobRow>({ ...CREATE, values });
  if (rows.length !== 1) throw new Error("create inserted no row");
  return jobFromRow(rows[0]);
}

function appendValues(event: EventRecord): unknown[] {
  const job = event.job;
  return [
    job.id, job.state, job.executorId, job.attempt, job.revision, json(job.result), JSON.stringify(job.failures),
    job.cancellationReason, job.leaseSeconds, job.leaseExpiresAt, job.updatedAt, job.startedAt, job.finishedAt,
    event.type, event.fromState, JSON.stringify(event.actor), event.previousExecutorId, JSON.stringify(job),
  ];
}

/** One transition in a transaction of its own. */
export async function transition(client: pg.Client, jobId: string, args: Parameters<typeof applyTransition>[1]): Promise<JobRecord> {
  await client.query("begin");
  try {
    const { rows } = await client.query<JobRow & { now: string }>({ ...LOCK, values: [jobId] });
    if (rows.length !== 1) throw new Error(`job ${jobId} not found`);
    const decided = applyTransition(jobFromRow(rows[0]), args, ACTOR, Number(rows[0].now));
    if (!decided.changed) throw new Error(`${args.call} changed nothing`);
    await client.query({ ...APPEND, values: appendValues(decided.event) });
    await client.query("commit");
    return decided.event.job;
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
