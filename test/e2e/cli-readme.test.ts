// The README's command-line example must work as printed (npx jobsctl inside
// the checkout), against a real server; only the server and token differ.

import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { startServer, type TestServer } from "../support/harness.js";
import { childEnv } from "../support/processes.js";
import { ROOT, readmeScript } from "../support/readme.js";

let server: TestServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server?.stop();
});

test("the command-line example works as printed", async () => {
  const script = readmeScript("cli");
  expect(script).toContain('export JOBS_TOKEN="$(cat .data/dev-token)"');
  const { stdout } = await promisify(execFile)("bash", ["-euo", "pipefail", "-c", script.replace('"$(cat .data/dev-token)"', `"${server.tokens.service}"`)], {
    cwd: ROOT,
    env: childEnv({ JOBS_SERVER: server.url, PATH: `${join(ROOT, "node_modules", ".bin")}:${process.env.PATH}`, npm_config_yes: "true" }),
    timeout: 60_000,
  });

  expect(stdout).toMatch(/^changed: job is now RUNNING \(revision 2\)$/m);
  expect(stdout).toMatch(/^exit 2: a forecast job takes a forecast result; nothing was sent$/m);
  expect(stdout).toMatch(/^changed: job is now COMPLETED \(revision 3\)$/m);
  // The watch, in the background, printed the whole life and ended with the job (`wait` saw it exit 0).
  expect(stdout).toMatch(/^rev 2\s.*\sSTARTED\s+PENDING -> RUNNING\s/m);
  expect(stdout).toMatch(/^rev 3\s.*\sCOMPLETED\s+RUNNING -> COMPLETED\s/m);
  // events: a table of the three events.
  expect(stdout).toMatch(/^REV\s+TIME\s+EVENT\s+FROM\s+TO\s+BY\n1\s.*CREATED.*\n2\s.*STARTED.*\n3\s.*COMPLETED/m);
  // list --json: the last document printed.
  const listed = JSON.parse(stdout.slice(stdout.lastIndexOf('{\n  "jobs"')));
  expect(listed.jobs).toEqual([expect.objectContaining({ state: "JOB_STATE_COMPLETED", result: { forecast: { cost: "120", rows: "31" } } })]);
});
