// The README is part of the product: its walkthrough must work as printed,
// in the checkout, without leaving anything there, and its configuration
// table must match src/config.ts.

import { execFile } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { configTable, VARIABLES } from "../../src/config.js";
import { startServer, type TestServer } from "../support/harness.js";
import { markedBlock, ROOT, readmeScript } from "../support/readme.js";

const run = promisify(execFile);

let server: TestServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server?.stop();
});

test("the first-job walkthrough works as printed and leaves nothing in the checkout", async () => {
  const script = readmeScript("walkthrough")
    // The only differences from the README: this test's server and token.
    .replaceAll("http://127.0.0.1:50051", server.url)
    .replace('"$(cat .data/dev-token)"', `"${server.tokens.service}"`);
  const before = new Set(readdirSync(ROOT));
  const { stdout } = await run("bash", ["-euo", "pipefail", "-c", script], {
    cwd: ROOT, // "in the checkout", as the README says
    env: { ...process.env, PATH: `${join(ROOT, "node_modules", ".bin")}:${process.env.PATH}`, npm_config_yes: "true" },
    timeout: 60_000,
  });
  expect(stdout).toContain("jobs.v1.JobService/CreateJob");
  expect(stdout).toContain('"state": "JOB_STATE_PENDING"');
  expect(stdout).toContain('"state": "JOB_STATE_RUNNING"');
  expect(stdout).toContain('"state": "JOB_STATE_COMPLETED"');
  expect(stdout).toContain('"changed": true');
  // ListJobEvents: created, started, completed.
  for (const type of ["JOB_EVENT_TYPE_CREATED", "JOB_EVENT_TYPE_STARTED", "JOB_EVENT_TYPE_COMPLETED"]) {
    expect(stdout).toContain(type);
  }
  // A reader pastes it into a terminal in the checkout: it must not leave files there for git to show.
  expect(readdirSync(ROOT).filter((name) => !before.has(name))).toEqual([]);
});

test("the configuration table (docs/configuration.md) is the one src/config.ts describes", () => {
  // configTable() prints the expected block: paste it between the config markers.
  const table = markedBlock("docs/configuration.md", "config").trim();
  expect(table).toBe(configTable());
  // Every variable the code reads has a row with its default.
  for (const [name, [defaultValue]] of Object.entries(VARIABLES)) {
    expect(table).toContain(`| \`${name}\` | ${defaultValue ? `\`${defaultValue}\`` : "—"} |`);
  }
});
