// Scratch directories for tests, inside the run's directory (global-setup.mjs),
// which global-teardown.mjs removes: a test run leaves nothing behind in /tmp.

import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A new empty directory named `prefix` + a random suffix. */
export function scratchDir(prefix: string): string {
  return mkdtempSync(join(process.env.JOBS_TEST_RUN_DIR ?? tmpdir(), prefix));
}
