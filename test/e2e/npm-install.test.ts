// `npm install` on the documented setup (the system's Node, 20 on these
// machines, with npm 11) says nothing alarming: no EBADENGINE or other
// warnings for a newcomer to puzzle over. A dry run, offline, without
// scripts: it checks engines as a real install does and changes nothing.

import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { expect, test } from "@jest/globals";

const ROOT = join(import.meta.dirname, "..", "..");
const run = promisify(execFile);

test("npm install under the system's Node prints no warning", async () => {
  // npm scripts put node_modules/.bin (and its Node 24) first on PATH: take it off, as a newcomer's shell has it.
  const PATH = (process.env.PATH ?? "").split(":").filter((dir) => !dir.includes("node_modules")).join(":");
  const env: NodeJS.ProcessEnv = { ...process.env, PATH };
  delete env.NODE_OPTIONS;
  const { stdout: version } = await run("node", ["--version"], { env, cwd: ROOT, timeout: 30_000 });
  const { stderr } = await run("npm", ["install", "--dry-run", "--offline", "--ignore-scripts", "--no-audit", "--no-fund"], { env, cwd: ROOT, timeout: 120_000 });
  expect({ node: version.trim(), stderr }).toEqual({ node: version.trim(), stderr: "" });
});
