// The pool's client sends BEGIN and COMMIT without waiting on their own
// replies (src/store/prepared-client.ts). These tests hold it to what a
// transaction must still mean: a write whose statement fails leaves nothing
// behind, a committed write is visible to everyone once the call returns,
// and the connection is clean for whoever gets it next. The pool has one
// connection, so every call here reuses the connection the previous one left.

import { afterAll, beforeAll, expect, test } from "@jest/globals";
import type pg from "pg";
import { PreparingClient, prepared, thenCommit } from "../../src/store/prepared-client.js";
import { freshDatabase, sql } from "../support/harness.js";
import { createJob, FORECAST_RESULT, SERVICE, type StoreBundle, storeBundle, stored } from "./store-bundle.js";

let bundle: StoreBundle;

beforeAll(async () => {
  bundle = await storeBundle(1);
});
afterAll(async () => {
  await bundle?.close();
});

/** A pipelining client on a fresh database that `setup` prepared; ended once `use` is done. */
async function withPipelinedClient(
  setup: string[],
  use: (client: PreparingClient, url: string) => Promise<void>,
  options: { reuseRowDescriptions?: boolean } = {},
): Promise<void> {
  const url = await freshDatabase();
  for (const statement of setup) await sql(url, statement);
  const client = new PreparingClient({ connectionString: url, pipelineTransactions: true, ...options });
  await client.connect();
  try {
    await use(client, url);
  } finally {
    await client.end();
  }
}

test("a transition is visible on another connection as soon as the call returns", async () => {
  const job = await createJob(bundle.store);
  const result = await bundle.store.transition(job.id, { call: "RunJob", executorId: "e-1", leaseSeconds: 0 }, SERVICE);
  expect(result.changed).toBe(true);
  expect(await stored(bundle.databaseUrl, job.id)).toMatchObject({ row: { revision: 2, state: "RUNNING" }, events: 2 });
});

test("when the write fails, the COMMIT behind it commits nothing: no row change, and the next call on the connection works", async () => {
  const job = await createJob(bundle.store);
  // An event row in the way of revision 2 makes the transition's write fail after its lock.
  await sql(
    bundle.databaseUrl,
    `insert into job_events (job_id, revision, type, from_state, to_state, actor, occurred_at, snapshot)
     values ($1, 2, 'STARTED', 'PENDING', 'RUNNING', '{}'::jsonb, now(), '{}'::jsonb)`,
    [job.id],
  );
  await expect(bundle.store.transition(job.id, { call: "RunJob", executorId: "e-1", leaseSeconds: 0 }, SERVICE)).rejects.toThrow();
  expect(await stored(bundle.databaseUrl, job.id)).toMatchObject({ row: { revision: 1, state: "PENDING" }, events: 2 });

  await sql(bundle.databaseUrl, "delete from job_events where job_id = $1 and revision = 2", [job.id]);
  const other = await createJob(bundle.store);
  await bundle.store.transition(other.id, { call: "RunJob", executorId: "e-1", leaseSeconds: 0 }, SERVICE);
  await bundle.store.transition(other.id, { ...FORECAST_RESULT, attempt: 1 }, SERVICE);
  expect(await stored(bundle.databaseUrl, other.id)).toMatchObject({ row: { revision: 3, state: "COMPLETED" }, events: 3 });
});

test("a no-op (lock, then COMMIT with nothing written) leaves the connection outside any transaction", async () => {
  const job = await createJob(bundle.store);
  await bundle.store.transition(job.id, { call: "RunJob", executorId: "e-1", leaseSeconds: 0 }, SERVICE);
  const again = await bundle.store.transition(job.id, { call: "RunJob", executorId: "e-2", leaseSeconds: 0 }, SERVICE);
  expect(again.changed).toBe(false);
  // A heartbeat is a lock and a `thenCommit` update on the same connection.
  await bundle.store.heartbeat(job.id, "e-1", 1, SERVICE);
  const open = await sql<{ state: string }>(
    bundle.databaseUrl,
    "select state from pg_stat_activity where datname = current_database() and application_name = 'jobs' and state like 'idle in transaction%'",
  );
  expect(open).toEqual([]);
});

test("a `thenCommit` statement outside a transaction sends no COMMIT that a later transaction could mistake for its own", async () => {
  await withPipelinedClient(["create table pipelined (n int primary key)"], async (client, url) => {
    await client.query(thenCommit(prepared("pipelined_insert", "insert into pipelined values ($1)")), [1]);
    await client.query("begin", []);
    await client.query(prepared("pipelined_insert", "insert into pipelined values ($1)"), [2]);
    // This COMMIT must reach PostgreSQL: a COMMIT left over from the statement above would answer it instead.
    await client.query("commit", []);
    expect(await sql<{ n: number }>(url, "select n from pipelined order by n")).toEqual([{ n: 1 }, { n: 2 }]);
  });
});

test("BEGIN sent without waiting still opens the transaction the next statements run in", async () => {
  await withPipelinedClient([], async (client) => {
    const txid = async () => (await client.query("select txid_current()::text as id", [])).rows[0].id as string;
    await client.query("begin", []);
    const first = await txid();
    expect(await txid()).toBe(first);
    await client.query("rollback", []);
    // Outside a transaction every statement gets its own.
    expect(await txid()).not.toBe(await txid());
    // An empty transaction: nothing to send, and nothing left open.
    await client.query("begin", []);
    await client.query("commit", []);
    expect(await txid()).not.toBe(await txid());
  });
});

test("a transaction of two statements costs two replies: BEGIN rides with the first, COMMIT with the last, each pair before one Sync", async () => {
  await withPipelinedClient(["create table pipelined (n int primary key)"], async (client, url) => {
    // Each Sync is answered by one ReadyForQuery.
    let readyForQuery = 0;
    (client as unknown as { connection: NodeJS.EventEmitter }).connection.on("readyForQuery", () => readyForQuery++);
    const transaction = async (n: number) => {
      await client.query("begin", []);
      const before = await client.query(prepared("pipelined_count", "select count(*)::int as n from pipelined"), []);
      const write = await client.query(thenCommit(prepared("pipelined_insert", "insert into pipelined values ($1) returning n")), [n]);
      const committed = await client.query("commit", []);
      return { before: before.rows, write: write.rows, committed: committed.command };
    };
    // The first use of a named statement on a connection sends BEGIN on its own (see isParsedHere): three replies.
    expect(await transaction(7)).toEqual({ before: [{ n: 0 }], write: [{ n: 7 }], committed: "COMMIT" });
    expect(readyForQuery).toBe(3);
    readyForQuery = 0;
    expect(await transaction(8)).toEqual({ before: [{ n: 1 }], write: [{ n: 8 }], committed: "COMMIT" });
    expect(readyForQuery).toBe(2);
    expect(await sql<{ n: number }>(url, "select n from pipelined order by n")).toEqual([{ n: 7 }, { n: 8 }]);
  });
});

test("when the statement behind BEGIN fails, the transaction is rolled back and the connection works on", async () => {
  await withPipelinedClient(["create table pipelined (n int primary key)", "insert into pipelined values (1)"], async (client, url) => {
    const insert = prepared("pipelined_insert", "insert into pipelined values ($1)");
    await client.query(insert, [2]);
    await client.query("begin", []);
    // Parsed on this connection already: it rides behind BEGIN, and fails there.
    await expect(client.query(insert, [1])).rejects.toMatchObject({ code: "23505" });
    await client.query("rollback", []);
    expect(client.getTransactionStatus()).toBe("I");
    await client.query(insert, [3]);
    expect(await sql<{ n: number }>(url, "select n from pipelined order by n")).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
  });
});

test("a COMMIT that fails after its statement succeeded fails the ORM's COMMIT, keeps nothing, and leaves the connection clean", async () => {
  // Checked at COMMIT, not at the insert: the statement succeeds, its COMMIT fails.
  await withPipelinedClient(["create table deferred (n int, constraint deferred_unique unique (n) deferrable initially deferred)", "insert into deferred values (1)"], async (client, url) => {
    await client.query("begin", []);
    const write = await client.query(thenCommit(prepared("deferred_insert", "insert into deferred values ($1)")), [1]);
    expect(write.rowCount).toBe(1);
    await expect(client.query("commit", [])).rejects.toMatchObject({ code: "23505", constraint: "deferred_unique" });
    expect(await sql<{ n: number }>(url, "select n from deferred")).toEqual([{ n: 1 }]);
    // Outside any transaction again: the next statement commits on its own.
    await client.query(thenCommit(prepared("deferred_insert", "insert into deferred values ($1)")), [2]);
    expect(client.getTransactionStatus()).toBe("I");
    expect(await sql<{ n: number }>(url, "select n from deferred order by n")).toEqual([{ n: 1 }, { n: 2 }]);
  });
});

test("with reuseRowDescriptions, a named statement asks for its row description once per connection, and its rows and fields come out the same", async () => {
  await withPipelinedClient(
    ["create table described (n int primary key, at timestamptz not null default now(), note text)"],
    async (client) => {
      let descriptions = 0;
      (client as unknown as { connection: NodeJS.EventEmitter }).connection.on("rowDescription", () => descriptions++);
      const read = prepared("described_read", "select n, at, note from described where n >= $1 order by n");
      const write = prepared("described_write", "insert into described (n, note) values ($1, $2) returning n, note");
      const transaction = async (n: number) => {
        await client.query("begin", []);
        const before = await client.query(read, [0]);
        const written = await client.query(thenCommit(write), [n, `note ${n}`]);
        await client.query("commit", []);
        return { before: before.rows, written: written.rows, fields: before.fields.map((field: pg.FieldDef) => [field.name, field.dataTypeID]) };
      };
      const first = await transaction(1);
      expect(first).toMatchObject({ before: [], written: [{ n: 1, note: "note 1" }] });
      expect(descriptions).toBe(2);
      const second = await transaction(2);
      expect(second.written).toEqual([{ n: 2, note: "note 2" }]);
      // Parsed by type as before: an int, a timestamptz, a text.
      expect(second.before).toEqual([{ n: 1, at: expect.any(Date), note: "note 1" }]);
      expect(second.fields).toEqual([
        ["n", 23],
        ["at", 1184],
        ["note", 25],
      ]);
      const third = await transaction(3);
      expect(third.before.map((row: { n: number }) => row.n)).toEqual([1, 2]);
      expect(third.fields).toEqual(second.fields);
      // Asked for at the first execution of each statement only.
      expect(descriptions).toBe(2);
    },
    { reuseRowDescriptions: true },
  );
});
