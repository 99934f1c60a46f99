// The benchmark's PostgreSQL: a fresh embedded one (PostgreSQL 18 from npm,
// default settings, so fsync and synchronous_commit are on) in a new temporary
// directory, or the server named by DATABASE_URL. Either way the benchmark
// finds the postmaster's pid when the server runs on this machine, so that
// PostgreSQL's CPU time can be read from /proc.

import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import pg from "pg";
import { startEmbeddedPostgres } from "../src/store/embedded-postgres.js";
import { isLocalProcess, parentPid, processName } from "./proc.js";

export interface BenchDatabase {
  readonly url: string;
  readonly embedded: boolean;
  /** The postmaster, when it runs on this machine; null otherwise (PostgreSQL CPU is then not measured). */
  readonly postmasterPid: number | null;
  readonly version: string;
  readonly settings: Record<string, string>;
  /** A directory for the server's JOBS_DATA_DIR (never ./.data). */
  readonly scratchDir: string;
  stop(): Promise<void>;
}

const SETTINGS = ["fsync", "synchronous_commit", "full_page_writes", "wal_level", "shared_buffers", "max_connections"];

export async function openBenchDatabase(): Promise<BenchDatabase> {
  // embedded-postgres, run as root, switches to a `postgres` user that must be able to enter the directory.
  const scratchDir = mkdtempSync(join(os.tmpdir(), "jobs-bench-"));
  chmodSync(scratchDir, 0o755);
  // PostgreSQL may still be writing its last files just after it reports stopped: retry.
  const removeScratch = () => rmSync(scratchDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  let url = process.env.DATABASE_URL?.trim() || "";
  let stopEmbedded: () => Promise<void> = async () => {};
  try {
    if (!url) {
      const embedded = await startEmbeddedPostgres({ dataDir: join(scratchDir, "pg"), port: 0, log: () => {} });
      url = embedded.url;
      stopEmbedded = () => embedded.stop();
    }
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const version = (await client.query<{ v: string }>("select current_setting('server_version') as v")).rows[0].v;
      const settings: Record<string, string> = {};
      for (const name of SETTINGS) {
        settings[name] = (await client.query<{ v: string }>(`select current_setting($1) as v`, [name])).rows[0].v;
      }
      const backend = (await client.query<{ pid: number }>("select pg_backend_pid() as pid")).rows[0].pid;
      // A backend's parent is the postmaster; a pid that is not a local `postgres` means another host (or namespace).
      const postmaster = isLocalProcess(backend) && processName(backend)?.startsWith("postgres") ? parentPid(backend) : null;
      return {
        url,
        embedded: !process.env.DATABASE_URL?.trim(),
        postmasterPid: postmaster,
        version,
        settings,
        scratchDir,
        async stop() {
          await stopEmbedded().catch(() => undefined);
          removeScratch();
        },
      };
    } finally {
      await client.end();
    }
  } catch (error) {
    await stopEmbedded().catch(() => undefined);
    removeScratch();
    throw error;
  }
}

/** Every event in the database: the benchmark checks it against the events it caused. */
export async function eventCount(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return Number((await client.query<{ n: string }>("select count(*) as n from job_events")).rows[0].n);
  } finally {
    await client.end();
  }
}

/**
 * Statistics for the tables, as any database that has run a while has them;
 * it also makes the servers replan the statements they first planned on
 * empty tables (PostgreSQL invalidates cached plans when statistics change).
 */
export async function analyzeTables(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query("analyze jobs, job_events");
  } finally {
    await client.end();
  }
}
