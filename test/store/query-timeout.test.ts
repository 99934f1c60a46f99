// A network that silently stops delivering (no reset, no error: a frozen
// link, a dead middlebox) must not hang calls until the operating system's
// TCP timeout. With a statement timeout the call fails UNAVAILABLE, the dead
// connection leaves the pool, and once packets flow again the same store
// serves without a restart. The database sits behind a TCP relay that this
// test can freeze.

import net from "node:net";
import { afterAll, beforeAll, expect, test } from "@jest/globals";
import type { MikroORM } from "@mikro-orm/postgresql";
import { Unavailable } from "../../src/domain/errors.js";
import { JobStore } from "../../src/store/job-store.js";
import { openOrm } from "../../src/store/orm.js";
import { type QueryRunner, query } from "../../src/store/sql.js";
import { freshDatabase } from "../support/harness.js";
import { createJob, SERVICE } from "./store-bundle.js";

/** Relays TCP to `target`; while frozen, bytes are held back in both directions and nothing is closed. */
class FreezableRelay {
  frozen = false;
  private readonly sockets = new Set<net.Socket>();
  private readonly server: net.Server;

  constructor(private readonly target: { host: string; port: number }) {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.target);
      for (const [from, to] of [
        [client, upstream],
        [upstream, client],
      ] as const) {
        this.sockets.add(from);
        from.on("data", (chunk) => {
          if (!this.frozen) to.write(chunk);
        });
        from.on("error", () => to.destroy());
        from.on("close", () => {
          this.sockets.delete(from);
          to.destroy();
        });
      }
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return (this.server.address() as net.AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

let relay: FreezableRelay;
let orm: MikroORM;
let store: JobStore;
let timeoutMs = 0;

beforeAll(async () => {
  const direct = new URL(await freshDatabase());
  relay = new FreezableRelay({ host: direct.hostname, port: Number(direct.port) });
  const viaRelay = new URL(direct);
  viaRelay.port = String(await relay.listen());
  orm = await openOrm({ databaseUrl: viaRelay.toString(), poolSize: 2, acquireTimeoutMs: 2000, statementTimeoutMs: () => timeoutMs });
  store = new JobStore(orm);
});

afterAll(async () => {
  relay.frozen = false;
  await orm?.close(true);
  await relay?.close();
});

test("on a frozen link a transition fails UNAVAILABLE instead of hanging, and the store serves again once the link is back", async () => {
  const job = await createJob(store);
  timeoutMs = 500;

  relay.frozen = true;
  const outcome = await store.transition(job.id, { call: "RunJob", executorId: "e-1", leaseSeconds: 0 }, SERVICE).then(
    () => "answered",
    (error: unknown) => error,
  );
  expect(outcome).toBeInstanceOf(Unavailable);

  relay.frozen = false;
  // The relay dropped the held bytes, so the statement never ran; the pool
  // dropped the timed-out connection and opens a new one.
  const result = await store.transition(job.id, { call: "RunJob", executorId: "e-1", leaseSeconds: 0 }, SERVICE);
  expect(result.changed).toBe(true);
  expect(result.job.state).toBe("RUNNING");
});

test("the limit is read at every statement: 0 (as while migrations run) waits for a slow one, 300 ms does not, and the timed-out connection is not lent out again", async () => {
  const runner = orm.em.getConnection().getClient() as QueryRunner;
  const slow = () => query<{ done: boolean }>(runner, "select pg_sleep(0.8) is not null as done");
  timeoutMs = 0;
  expect(await slow()).toEqual([{ done: true }]);
  timeoutMs = 300;
  await expect(slow()).rejects.toBeInstanceOf(Unavailable);
  // The timed-out connection is dropped before anyone hears of the failure, so it is never lent out again.
  for (let i = 0; i < 4; i++) expect(await query<{ ok: boolean }>(runner, "select true as ok")).toEqual([{ ok: true }]);
});

test("the limit is per statement: a connection that answers one quick statement after another for longer than it stays up", async () => {
  const runner = orm.em.getConnection().getClient() as QueryRunner;
  timeoutMs = 300;
  const started = performance.now();
  // Pipelined on one connection by the transaction, each answered in 60 ms: 480 ms in all.
  const connection = orm.em.getConnection();
  const trx = await connection.begin();
  try {
    const statements = await (trx as unknown as { getExecutor(): { provideConnection<T>(use: (c: QueryRunner) => Promise<T>): Promise<T> } })
      .getExecutor()
      .provideConnection(async (held) => held);
    for (let i = 0; i < 8; i++) expect(await query<{ n: number }>(statements, "select $1::int as n from pg_sleep(0.06)", [i])).toEqual([{ n: i }]);
  } finally {
    await connection.rollback(trx);
  }
  expect(performance.now() - started).toBeGreaterThan(timeoutMs);
  // And the pool's connections still work.
  expect(await query<{ ok: boolean }>(runner, "select true as ok")).toEqual([{ ok: true }]);
});
