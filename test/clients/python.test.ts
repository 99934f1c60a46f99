// The Python client (clients/python): its pytest suite runs the example
// executor (complete; cancellation requested by someone else) and a watch
// across a server restart (SIGTERM) and a server crash (SIGKILL), against
// real `jobsctl serve` processes it starts.

import { expect, test } from "@jest/globals";
import { join } from "node:path";
import { ROOT, runTool } from "./run-tool.js";

test("pytest clients/python passes against a live server", async () => {
  const dir = join(ROOT, "clients", "python");
  const { output } = await runTool(join(dir, ".venv", "bin", "python"), ["-m", "pytest", "-v", "-p", "no:cacheprovider"], dir, 240_000);
  for (const name of [
    "test_executor_claims_heartbeats_and_completes",
    "test_executor_acknowledges_a_cancellation_requested_by_someone_else",
    "test_watch_resumes_from_the_last_revision_after_a_server_restart",
    "test_watch_resumes_after_the_server_is_killed",
    "test_watch_timeout_is_its_deadline",
    "test_the_docs_python_example_runs_as_printed",
  ]) {
    expect(output).toMatch(new RegExp(`${name} PASSED`));
  }
  expect(output).toMatch(/=+ \d+ passed in /);
  expect(output).not.toMatch(/skipped|xfail|SKIPPED/);
}, 300_000);
