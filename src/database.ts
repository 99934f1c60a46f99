// Which database a process uses: DATABASE_URL, or the embedded PostgreSQL in
// JOBS_DATA_DIR. Apart from app.ts so that CLI commands on the database
// (tokens, migrate) open it without loading the server.

import { existsSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "./config.js";
import type { Logger } from "./log.js";
import { isAlive, type RunningPostgres, startEmbeddedPostgres } from "./store/embedded-postgres.js";

/**
 * The database to use: DATABASE_URL, or the embedded PostgreSQL in
 * JOBS_DATA_DIR. A server owns its embedded database (and stops an orphan
 * left by a killed server); a CLI command (`forCli`) uses the one a running
 * server started, or starts it for the duration of the command.
 */
export async function openDatabase(
  config: Config,
  log: Logger,
  forCli = false,
): Promise<{ url: string; embedded: RunningPostgres | null }> {
  if (config.databaseUrl) return { url: config.databaseUrl, embedded: null };
  mkdirSync(config.dataDir, { recursive: true, mode: 0o755 });
  if (!forCli) claimDataDir(config.dataDir);
  const dataDir = join(config.dataDir, "pg");
  const embedded = await startEmbeddedPostgres({
    dataDir,
    port: config.embeddedPostgresPort,
    log: (line) => log.debug("postgres", { line }),
    reuseRunning: forCli,
  });
  log.debug("embedded PostgreSQL ready", { dataDir, port: embedded.port });
  return { url: embedded.url, embedded };
}

/** One server per data directory: a second would fight the first over its PostgreSQL. */
function claimDataDir(dataDir: string): void {
  const pidFile = join(dataDir, "server.pid");
  if (existsSync(pidFile)) {
    const pid = Number(readFileSync(pidFile, "utf8").trim());
    if (pid !== process.pid && Number.isInteger(pid) && pid > 0 && isAlive(pid)) {
      throw new Error(
        `another jobsctl serve (pid ${pid}) uses JOBS_DATA_DIR=${dataDir}; stop it, or set JOBS_DATA_DIR or DATABASE_URL for this one`,
      );
    }
  }
  writeFileSync(pidFile, `${process.pid}\n`);
  process.once("exit", () => {
    try {
      if (readFileSync(pidFile, "utf8").trim() === String(process.pid)) unlinkSync(pidFile);
    } catch {
      // already gone
    }
  });
}
