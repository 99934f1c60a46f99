// A PostgreSQL of a test's own, for tests that take the database away: the
// shared one (globalSetup) must stay up for every other file. Migrated, and
// stoppable and restartable on the same data directory and port, so that a
// server pointed at it sees an outage and then the same database come back.

import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type RunningPostgres, startEmbeddedPostgres } from "../../src/store/embedded-postgres.js";
import { migrate, openOrm } from "../../src/store/orm.js";

export interface OwnPostgres {
  readonly url: string;
  /** Whether it is running now. */
  readonly up: boolean;
  /** Stops PostgreSQL (fast shutdown: open connections are cut). */
  stop(): Promise<void>;
  /** Starts it again, same data and port. */
  start(): Promise<void>;
  /** Stops it (if running) and deletes its data directory. */
  destroy(): Promise<void>;
}

export async function startOwnPostgres(): Promise<OwnPostgres> {
  const dir = mkdtempSync(join(tmpdir(), "jobs-own-pg-"));
  // embedded-postgres runs PostgreSQL as the postgres user, which must be able to enter this directory.
  chmodSync(dir, 0o755);
  const boot = (port: number) =>
    startEmbeddedPostgres({ dataDir: join(dir, "pg"), port, log: () => {}, flags: ["-c", "fsync=off", "-c", "synchronous_commit=off"] });
  let running: RunningPostgres | null = await boot(0);
  const { url, port } = running;
  const orm = await openOrm({ databaseUrl: url, poolSize: 2, acquireTimeoutMs: 5000 });
  try {
    await migrate(orm, url);
  } finally {
    await orm.close(true);
  }
  const self: OwnPostgres = {
    url,
    get up() {
      return running !== null;
    },
    async stop() {
      const current = running;
      running = null;
      await current?.stop();
    },
    async start() {
      if (!running) running = await boot(port);
    },
    async destroy() {
      await self.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return self;
}
