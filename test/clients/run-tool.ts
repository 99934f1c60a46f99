// Runs a client language's own test tool (pytest, go test) as a child
// process against a fresh database, for test/clients/{python,go}.test.ts.

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { freshDatabase } from "../support/harness.js";

export const ROOT = join(import.meta.dirname, "..", "..");

export interface ToolRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

/**
 * Runs command in cwd with DATABASE_URL (a new migrated database), NODE (this
 * Node 24) and JOBS_ROOT set. Fails with the tool's output unless it exits 0.
 */
export async function runTool(command: string, args: string[], cwd: string, timeoutMs: number): Promise<ToolRun> {
  for (const path of [command, cwd]) {
    if (path.startsWith("/") && !existsSync(path)) {
      throw new Error(`${path} is missing: run scripts/clients-setup.sh first (npm test does)`);
    }
  }
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATABASE_URL: await freshDatabase(),
    NODE: process.execPath,
    JOBS_ROOT: ROOT,
  };
  delete env.NODE_OPTIONS; // jest's ESM flags are not for the servers the tool starts
  const child = spawn(command, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let output = "";
  child.stdout.on("data", (b: Buffer) => (output += b.toString()));
  child.stderr.on("data", (b: Buffer) => (output += b.toString()));
  const timer = setTimeout(() => {
    output += `\n[killed after ${timeoutMs} ms]\n`;
    try {
      process.kill(-child.pid!, "SIGKILL"); // the tool and the servers it started
    } catch {}
  }, timeoutMs);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (c, s) => resolve([c, s]));
  });
  clearTimeout(timer);
  if (code !== 0) {
    throw new Error(`${command} ${args.join(" ")} exited with ${code ?? signal}:\n${output}`);
  }
  return { code, signal, output };
}
