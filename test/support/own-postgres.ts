// A PostgreSQL of a test's own, for tests that take the database away: the
// shared one (globalSetup) must stay up for every other file. Migrated, and
// stoppable and restartable on the same data directory and port, so that a
// server pointed at it sees an outage and then the same database come back.

import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type RunningPostgres, startEmbeddedPostgres } from "../../src/store/embedded-postgres.js";
import { migrate, openOrm } from "../../src/store/orm.js";
import { childrenOf } from "./processes.js";

export interface OwnPostgres {
  readonly url: string;
  /** Whether it is running now. */
  readonly up: boolean;
  /** Stops PostgreSQL (fast shutdown: open connections are cut). */
  stop(): Promise<void>;
  /** Starts it again, same data and port. */
  start(): Promise<void>;
  /** Freezes every PostgreSQL process (SIGSTOP): connections stay open and nothing answers, as on a stalled host. */
  pause(): void;
  /** Lets them run again (SIGCONT). */
  resume(): void;
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
    pause() {
      for (const pid of postgresProcesses(join(dir, "pg"))) signal(pid, "SIGSTOP");
    },
    resume() {
      for (const pid of postgresProcesses(join(dir, "pg"))) signal(pid, "SIGCONT");
    },
    async destroy() {
      self.resume();
      await self.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return self;
}

/** A backend may exit between being listed and being signalled (its client left): nothing to do then. */
function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
  }
}

/** The postmaster of the cluster in `dataDir` and every process it started. */
function postgresProcesses(dataDir: string): number[] {
  const postmaster = Number(readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
  return [postmaster, ...childrenOf(postmaster)];
}
