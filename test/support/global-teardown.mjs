import { rmSync } from "node:fs";

export default async function globalTeardown() {
  await globalThis.__jobsPostgres?.stop();
  // The run's directory (global-setup.mjs): the embedded cluster, with every test file's
  // database (hundreds of MB a run if left behind), and the tests' scratch files.
  // PostgreSQL may still be writing its last files just after it reports stopped: retry.
  const dir = process.env.JOBS_TEST_RUN_DIR;
  if (dir) rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
}
