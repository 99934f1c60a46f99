// The out-of-the-box setup (docs/contract.md §7): `jobsctl serve` with no DATABASE_URL
// starts an embedded PostgreSQL in JOBS_DATA_DIR, prints a development
// token, and keeps every job across restarts; the CLI works on the same
// database; bad configuration stops it with a message naming the variable.

import { execFile } from "node:child_process";
import { chmodSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { runningPostgres } from "../../src/store/embedded-postgres.js";
import { jobsClient } from "../support/grpc.js";
import { adminUrl, sql } from "../support/harness.js";
import { runCli, type ServerProcess, spawnServer } from "../support/processes.js";
import { scratchDir } from "../support/scratch.js";

const ROOT = join(import.meta.dirname, "..", "..");
let dataDir: string;
let env: Record<string, string>;
let server: ServerProcess | undefined;

beforeAll(() => {
  // embedded-postgres runs PostgreSQL as the postgres user, which must be able to enter this directory.
  const parent = scratchDir("jobs-embedded-");
  chmodSync(parent, 0o755);
  dataDir = join(parent, "data");
  env = { JOBS_DATA_DIR: dataDir, EMBEDDED_POSTGRES_PORT: "0", LOG_LEVEL: "info", MIGRATE_ON_START: "true" };
});
afterAll(async () => {
  await server?.stop();
});

/** The token printed on the line after "development token …". */
function printedToken(output: string): string {
  const match = /development token[^\n]*\n\s+(jobs_\S+)/.exec(output);
  if (!match) throw new Error(`no development token in:\n${output}`);
  return match[1];
}

test("serve starts an embedded PostgreSQL, prints a development token, and keeps jobs across a restart", async () => {
  server = await spawnServer({ databaseUrl: "", env });
  const token = printedToken(server.output());
  expect(readFileSync(join(dataDir, "dev-token"), "utf8").trim()).toBe(token);
  // Never in a log line (stdout carries the JSON logs; the start-up lines are there).
  const logLines = server.output().split("\n").filter((l) => l.startsWith("{"));
  expect(logLines.map((line) => JSON.parse(line).msg)).toContain("serving");
  for (const line of logLines) expect(line).not.toContain(token);

  const client = jobsClient(server.address, token);
  const { job } = await client.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "3" });
  await client.call("RunJob", { job_id: job.id, executor_id: "ex" });
  client.close();

  server.child.kill("SIGTERM");
  expect(await server.exited).toEqual({ code: 0, signal: null });
  // It stopped its PostgreSQL too.
  expect(runningPostgres(join(dataDir, "pg"))).toBeNull();

  // The CLI starts the embedded database for a command of its own when no server runs.
  const migrated = await runCli(["migrate"], env);
  expect(migrated.code).toBe(0);
  expect(migrated.stdout).toBe("database is up to date\n");

  server = await spawnServer({ databaseUrl: "", env });
  expect(printedToken(server.output())).toBe(token);
  const again = jobsClient(server.address, token);
  const { job: kept } = await again.call("GetJob", { job_id: job.id });
  expect(kept).toMatchObject({ id: job.id, state: "JOB_STATE_RUNNING", revision: "2" });
  again.close();

  // Next to a running server, the CLI uses its database in place.
  const list = await runCli(["tokens", "list", "--json"], env);
  expect(list.code).toBe(0);
  expect(JSON.parse(list.stdout)).toEqual(
    expect.arrayContaining([expect.objectContaining({ principal: { type: "service", name: "dev" }, revokedAt: null })]),
  );
  expect(list.stdout).not.toContain(token);

  // A second server on the same data directory refuses to start.
  const second = await runCli(["serve"], { ...env, PORT: "0" });
  expect(second.code).not.toBe(0);
  expect(second.stderr).toMatch(/another jobsctl serve \(pid \d+\) uses JOBS_DATA_DIR/);
  expect(existsSync(join(dataDir, "server.pid"))).toBe(true);
}, 120_000);

test("a bad variable stops serve with exit 2 and a message naming it", async () => {
  const res = await runCli(["serve"], { PORT: "not-a-port", JOBS_DATA_DIR: dataDir });
  expect(res.code).toBe(2);
  expect(res.stderr).toMatch(/PORT="not-a-port" is not valid: expected a whole number/);
  const level = await runCli(["serve"], { LOG_LEVEL: "loud", JOBS_DATA_DIR: dataDir });
  expect(level.code).toBe(2);
  expect(level.stderr).toMatch(/LOG_LEVEL="loud" is not valid: expected trace, debug, info/);
});

test("a server told not to migrate refuses an unmigrated database, saying what to do", async () => {
  const name = `jobs_empty_${Date.now()}`;
  await sql(adminUrl(), `create database ${name}`);
  const url = new URL(adminUrl());
  url.pathname = `/${name}`;
  const res = await runCli(["serve", "--no-migrate"], { DATABASE_URL: url.toString(), PORT: "0" });
  expect(res.code).toBe(1);
  expect(res.stderr).toMatch(/pending migrations: Migration\d+_Initial.*run `jobsctl migrate`/);
  // And `jobsctl migrate` is that remedy.
  const migrated = await runCli(["migrate"], { DATABASE_URL: url.toString() });
  expect(migrated.code).toBe(0);
  expect(migrated.stdout).toMatch(/^applied Migration\d+_Initial\n$/);
});

test("npx jobsctl --help works inside the checkout", async () => {
  const { stdout } = await promisify(execFile)("npx", ["jobsctl", "--help"], {
    cwd: ROOT,
    env: { ...process.env, NODE_OPTIONS: "", PATH: `${join(ROOT, "node_modules", ".bin")}:${process.env.PATH}` },
  });
  expect(stdout).toMatch(/^jobsctl — the jobs service/);
  expect(stdout).toContain("serve");
  expect(stdout).toContain("migrate");
});
