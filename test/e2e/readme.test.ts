// The README is part of the product: its walkthrough must work as printed,
// and its configuration table must match src/config.ts.

import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { VARIABLES } from "../../src/config.js";
import { startServer, type TestServer } from "../support/harness.js";

const ROOT = join(import.meta.dirname, "..", "..");
const README = readFileSync(join(ROOT, "README.md"), "utf8");
const run = promisify(execFile);

function block(name: string): string {
  const start = README.indexOf(`<!-- ${name}:begin`);
  const end = README.indexOf(`<!-- ${name}:end -->`);
  if (start < 0 || end < 0) throw new Error(`README has no ${name} block`);
  return README.slice(start, end);
}

let server: TestServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server?.stop();
});

test("the first-job walkthrough works as printed", async () => {
  const script = block("walkthrough")
    .replace(/^.*\n```sh\n/s, "")
    .replace(/```\s*$/, "")
    // The only differences from the README: this test's server and token.
    .replaceAll("http://127.0.0.1:50051", server.url)
    .replace('"$(cat .data/dev-token)"', `"${server.tokens.service}"`)
    .replaceAll("job.json", join(mkdtempSync(join(tmpdir(), "jobs-walkthrough-")), "job.json"));
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
});

test("the configuration table lists every variable with its default", () => {
  const table = block("config");
  const rows = new Map<string, string>();
  for (const match of table.matchAll(/^\| `([A-Z_]+)` \| (.+?) \| /gm)) rows.set(match[1], match[2]);
  expect([...rows.keys()].sort()).toEqual(Object.keys(VARIABLES).sort());
  for (const [name, [defaultValue]] of Object.entries(VARIABLES)) {
    expect(`${name}: ${rows.get(name)}`).toBe(`${name}: ${defaultValue ? `\`${defaultValue}\`` : "—"}`);
  }
});
