// The ceiling: what PostgreSQL alone can do with the statements the service
// sends for a lifecycle, from C connections, with no service in between.
//
// It sends the store's own statements (CREATE_JOB_SQL, LOCK_JOB_SQL,
// APPEND_TRANSITION_SQL from src/store/job-store.ts, named and prepared per
// connection as the server's pool does) with the store's own parameters, built
// by the same domain functions (newJob, applyTransition), between BEGIN and
// COMMIT — so it cannot drift from the server. Each statement waits for the
// previous reply, as pgbench sends a transaction: four round trips, each
// statement with its Describe, as pg and libpq send it. The server's pool
// pipelines them into two and asks for a statement's row description once per
// connection (src/store/prepared-client.ts, `pipelineTransactions`,
// `reuseRowDescriptions`); the ceiling is left as the issue defines it, the
// database's own cost of these transactions sent one statement at a time.
// The statements are marked as the store marks them (`thenCommit`), which a
// client that does not pipeline sends unchanged; the floor server
// (floor-server.ts) sends them through a pipelining one, as the server does.

import { randomUUID } from "node:crypto";
import { applyTransition, type JobRecord, newJob } from "../src/domain/job.js";
import type { Principal } from "../src/domain/principal.js";
import { principalKey } from "../src/domain/principal.js";
import { type JobRow, jobFromRow } from "../src/store/job-rows.js";
import {
  APPEND_TRANSITION_SQL,
  appendTransitionParams,
  CREATE_JOB_SQL,
  createJobParams,
  LOCK_JOB_SQL,
} from "../src/store/job-store.js";
import { PreparingClient, thenCommit } from "../src/store/prepared-client.js";
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

/** CreateJob's statement, as JobStore.create sends it. */
export async function createJob(client: PreparingClient, fields: NewJob = BENCH_JOB, requestId: string | null = randomUUID()): Promise<JobRecord> {
  const { event } = newJob({ id: randomUUID(), createdBy: ACTOR, ...fields }, 0);
  const result: { rows: JobRow[] } = await client.query(thenCommit(CREATE_JOB_SQL), createJobParams(event, principalKey(ACTOR), requestId));
  if (result.rows.length !== 1) throw new Error("create inserted no row");
  return jobFromRow(result.rows[0]);
}

/** One transition transaction, as JobStore.transition sends it. */
export async function transition(client: PreparingClient, jobId: string, args: Parameters<typeof applyTransition>[1]): Promise<JobRecord> {
  await client.query("begin");
  try {
    const { rows }: { rows: Array<JobRow & { now: string }> } = await client.query(LOCK_JOB_SQL, [jobId, null]);
    if (rows.length !== 1) throw new Error(`job ${jobId} not found`);
    const decided = applyTransition(jobFromRow(rows[0]), args, ACTOR, Number(rows[0].now));
    if (!decided.changed) throw new Error(`${args.call} changed nothing`);
    await client.query(thenCommit(APPEND_TRANSITION_SQL), appendTransitionParams(decided.event));
    await client.query("commit");
    return decided.event.job;
  } catch (error) {
    await client.query("rollback").catch(() => undefined);
    throw error;
  }
}

/** `concurrency` connections, each running lifecycles back to back while the load runs. */
export async function createCeilingLoad(url: string, concurrency: number, recorder: Recorder): Promise<{ load: Load; close(): Promise<void> }> {
  const clients: PreparingClient[] = [];
  for (let i = 0; i < concurrency; i++) {
    const client = new PreparingClient({ connectionString: url, application_name: "jobs-bench-ceiling" });
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
