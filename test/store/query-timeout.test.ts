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

const TIMEOUT_MS = 400;
let relay: FreezableRelay;
let orm: MikroORM;
let store: JobStore;
let directUrl: string;

beforeAll(async () => {
  directUrl = await freshDatabase();
  const direct = new URL(directUrl);
  relay = new FreezableRelay({ host: direct.hostname, port: Number(direct.port) });
  const viaRelay = new URL(direct);
  viaRelay.port = String(await relay.listen());
  orm = await openOrm({ databaseUrl: viaRelay.toString(), poolSize: 2, acquireTimeoutMs: 2000, queryTimeoutMs: TIMEOUT_MS });
  store = new JobStore(orm);
});

afterAll(async () => {
  relay.frozen = false;
  await orm?.close(true);
  await relay?.close();
});

test("on a frozen link a transition fails UNAVAILABLE instead of hanging, and the store serves again once the link is back", async () => {
  const job = await createJob(store);

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

test("without a limit (as while migrations run) a slow statement is waited for; with one it is not, and the timed-out connection is not lent out again", async () => {
  const unlimited = await openOrm({ databaseUrl: directUrl, poolSize: 1, acquireTimeoutMs: 2000 });
  try {
    const slowOn = (o: MikroORM) => query<{ done: boolean }>(o.em.getConnection().getClient() as QueryRunner, `select pg_sleep(${(TIMEOUT_MS * 2) / 1000}) is not null as done`);
    expect(await slowOn(unlimited)).toEqual([{ done: true }]);
    await expect(slowOn(orm)).rejects.toBeInstanceOf(Unavailable);
  } finally {
    await unlimited.close(true);
  }
  // The timed-out connection is dropped before anyone hears of the failure, so it is never lent out again.
  const runner = orm.em.getConnection().getClient() as QueryRunner;
  for (let i = 0; i < 4; i++) expect(await query<{ ok: boolean }>(runner, "select true as ok")).toEqual([{ ok: true }]);
});

test("the limit is per statement: a transaction of quick statements may last longer than it", async () => {
  const started = performance.now();
  // Each statement answered in a quarter of the limit, eight of them in one transaction: twice the limit in all.
  const connection = orm.em.getConnection();
  const trx = await connection.begin();
  try {
    for (let i = 0; i < 8; i++) {
      expect(await query<{ n: number }>(trx, `select $1::int as n from pg_sleep(${TIMEOUT_MS / 4000})`, [i])).toEqual([{ n: i }]);
    }
  } finally {
    await connection.rollback(trx);
  }
  expect(performance.now() - started).toBeGreaterThan(TIMEOUT_MS);
  // And the pool's connections still work.
  expect(await query<{ ok: boolean }>(orm.em.getConnection().getClient() as QueryRunner, "select true as ok")).toEqual([{ ok: true }]);
});
