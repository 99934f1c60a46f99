// A transaction that fails with its connection, or at COMMIT, gives the
// connection back to the pool: found by the outage proof (test/e2e/outage),
// where each database outage left the connections of the transactions in
// flight checked out for good, until the pool was empty and the server never
// recovered, and draining hung in closing the pool. The pool here has one
// connection and a short acquire timeout, so a single lost connection makes
// the next call fail.

import { afterAll, beforeAll, expect, test } from "@jest/globals";
import type { MikroORM } from "@mikro-orm/postgresql";
import pg from "pg";
import { JobStore } from "../../src/store/job-store.js";
import { openOrm } from "../../src/store/orm.js";
import { freshDatabase, sql } from "../support/harness.js";
import { eventually } from "../support/watching.js";
import { createJob, SERVICE } from "./store-bundle.js";

let databaseUrl: string;
let orm: MikroORM;
let store: JobStore;
let pool: pg.Pool | undefined;

beforeAll(async () => {
  databaseUrl = await freshDatabase();
  orm = await openOrm({ databaseUrl, poolSize: 1, acquireTimeoutMs: 3000, onPool: (p) => (pool = p) });
  store = new JobStore(orm);
});
afterAll(async () => {
  // A connection still lent out would keep close() waiting for ever: the tests above have failed then anyway.
  await Promise.race([orm?.close(true), new Promise((r) => setTimeout(r, 5_000).unref())]);
});

const lentOut = () => (pool ? pool.totalCount - pool.idleCount : 0);
const run = (jobId: string, executorId = "executor-1") => store.transition(jobId, { call: "RunJob", executorId, leaseSeconds: 0 }, SERVICE);

test("a transaction whose connection is killed while it waits for a row lock releases it: the next calls get a connection", async () => {
  for (let round = 1; round <= 3; round++) {
    const job = await createJob(store);
    // Another session holds the job's row lock, so the transition's lock statement waits…
    const holder = new pg.Client({ connectionString: databaseUrl });
    await holder.connect();
    try {
      await holder.query("begin");
      await holder.query("select 1 from jobs where id = $1 for update", [job.id]);
      const waiting = run(job.id);
      waiting.catch(() => undefined);
      // …and its connection dies while it does (as when PostgreSQL shuts down).
      await eventually(async () => {
        const killed = await sql<{ ok: boolean }>(
          databaseUrl,
          "select pg_terminate_backend(pid) as ok from pg_stat_activity where datname = current_database() and application_name = 'jobs' and wait_event_type = 'Lock'",
        );
        return killed.length > 0;
      }, "the transition to wait for the row lock");
      await expect(waiting).rejects.toMatchObject({ reason: "DATABASE_UNAVAILABLE" });
    } finally {
      await holder.query("rollback").catch(() => undefined);
      await holder.end();
    }
    await eventually(() => lentOut() === 0, `round ${round}: the pool's connection to be back`, 5_000);
    expect((await run(job.id)).changed).toBe(true);
  }
});

test("a transaction whose COMMIT fails releases its connection", async () => {
  // A deferred check that fails at COMMIT, for one executor name only (this database is the file's own).
  await sql(
    databaseUrl,
    `create function refuse_at_commit() returns trigger language plpgsql as $$ begin raise exception 'refused at commit'; end $$;
     create constraint trigger refuse_at_commit after update on jobs deferrable initially deferred
       for each row when (new.executor_id = 'refused-at-commit') execute function refuse_at_commit();`,
  );
  for (let round = 1; round <= 3; round++) {
    const job = await createJob(store);
    await expect(run(job.id, "refused-at-commit")).rejects.toThrow();
    await eventually(() => lentOut() === 0, `round ${round}: the pool's connection to be back`, 5_000);
    // Nothing of the refused transaction is in; the job takes the next change.
    expect((await run(job.id)).job).toMatchObject({ state: "RUNNING", revision: 2, executorId: "executor-1" });
  }
});
