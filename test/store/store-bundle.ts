// The store tier's test bundle: a fresh migrated database (cloned from the
// run's template), an ORM on it, and a JobStore whose commit notifications
// are recorded. One bundle per test file; nothing is shared between files.

import type { MikroORM } from "@mikro-orm/postgresql";
import pg from "pg";
import type { EventRecord, JobRecord } from "../../src/domain/job.js";
import type { Principal } from "../../src/domain/principal.js";
import { type JobFilter, JobStore, type NewJobFields } from "../../src/store/job-store.js";
import { openOrm } from "../../src/store/orm.js";
import type { QueryRunner } from "../../src/store/sql.js";
import { freshDatabase, sql } from "../support/harness.js";

export interface StoreBundle {
  readonly databaseUrl: string;
  readonly orm: MikroORM;
  readonly store: JobStore;
  /** Every batch of events the store reported after a commit, in order. */
  readonly commits: EventRecord[][];
  /** Another JobStore on the same database with its own pool: a second replica. */
  replica(): Promise<JobStore>;
  /** The ORM's connection as a plain query runner (for event-feed.ts). */
  runner(): QueryRunner;
  close(): Promise<void>;
}

export async function storeBundle(poolSize = 40): Promise<StoreBundle> {
  const databaseUrl = await freshDatabase();
  const orms: MikroORM[] = [];
  const open = async () => {
    const orm = await openOrm({ databaseUrl, poolSize, acquireTimeoutMs: 10_000 });
    orms.push(orm);
    return orm;
  };
  const orm = await open();
  const commits: EventRecord[][] = [];
  const store = new JobStore(orm, (committed) => commits.push(committed.map((c) => c.event)));
  return {
    databaseUrl,
    orm,
    store,
    commits,
    replica: async () => new JobStore(await open()),
    runner: () => orm.em.getConnection().getClient() as QueryRunner,
    close: async () => {
      await Promise.all(orms.map((o) => o.close(true)));
    },
  };
}

export const SERVICE: Principal = { type: "service", name: "test-service" };
export const OTHER_SERVICE: Principal = { type: "service", name: "other-service" };
export const USER_A: Principal = { type: "api_user", companyId: "100", userId: "1" };
export const USER_A2: Principal = { type: "api_user", companyId: "100", userId: "3" };
export const USER_B: Principal = { type: "api_user", companyId: "200", userId: "2" };

export function jobFields(overrides: Partial<NewJobFields> = {}): NewJobFields {
  return {
    type: "FORECAST",
    companyId: "100",
    input: { forecast: { nql: "select 1" } },
    dataPlaneId: "dp-1",
    computePoolId: "pool-1",
    executionCluster: "SHARED",
    requestId: null,
    ...overrides,
  };
}

export const NO_FILTER: JobFilter = {
  states: [],
  types: [],
  executorId: "",
  dataPlaneId: "",
  companyId: null,
  createdAfter: null,
  createdBefore: null,
};

export async function createJob(store: JobStore, overrides: Partial<NewJobFields> = {}, creator: Principal = SERVICE): Promise<JobRecord> {
  return (await store.create(jobFields(overrides), creator)).job;
}

/** A forecast result that fits a FORECAST job. */
export const FORECAST_RESULT = { call: "CompleteJob", result: { forecast: { cost: "1", rows: "2" } }, resultCase: "forecast", attempt: 0 } as const;

export interface StoredRow {
  revision: number;
  updated_at_us: string;
  lease_expires_at_us: string | null;
  state: string;
}

/** The job's row and its number of events, read on a separate connection. */
export async function stored(databaseUrl: string, jobId: string): Promise<{ row: StoredRow; events: number }> {
  const [row] = await sql<StoredRow>(
    databaseUrl,
    `select revision, state, (extract(epoch from updated_at) * 1000000)::int8::text as updated_at_us,
            (extract(epoch from lease_expires_at) * 1000000)::int8::text as lease_expires_at_us
     from jobs where id = $1`,
    [jobId],
  );
  const [{ count }] = await sql<{ count: string }>(databaseUrl, "select count(*) from job_events where job_id = $1", [jobId]);
  return { row, events: Number(count) };
}

/** The database's clock now, in microseconds. */
export async function databaseNow(databaseUrl: string): Promise<number> {
  const [{ now }] = await sql<{ now: string }>(databaseUrl, "select (extract(epoch from clock_timestamp()) * 1000000)::int8::text as now");
  return Number(now);
}

/** Runs `body` while another session holds the row locks of `jobIds` (in a transaction it rolls back afterwards). */
export async function whileRowLocked(databaseUrl: string, jobIds: string | readonly string[], body: () => Promise<void>): Promise<void> {
  const holder = new pg.Client({ connectionString: databaseUrl });
  await holder.connect();
  try {
    await holder.query("begin");
    await holder.query("select 1 from jobs where id = any($1::uuid[]) order by id for update", [[jobIds].flat()]);
    await body();
  } finally {
    await holder.query("rollback").catch(() => undefined);
    await holder.end();
  }
}

/** How many of the service's connections to this database wait for a lock now. */
export async function lockWaiters(databaseUrl: string): Promise<number> {
  const [{ count }] = await sql<{ count: string }>(
    databaseUrl,
    "select count(*) from pg_stat_activity where datname = current_database() and application_name = 'jobs' and wait_event_type = 'Lock'",
  );
  return Number(count);
}
