// Real processes for end-to-end tests: `node bin/jobsctl.js serve` as a
// second replica or as the process a test sends SIGTERM to, and one-shot CLI
// commands. They run the built code (dist/), so `npm run build` first.
//
// Children get their own environment: no jest NODE_OPTIONS, a JOBS_DATA_DIR
// that is never ./.data, and PORT=0 unless a test picks a port. A
// server's address is read from the line it prints once it listens, which
// avoids the race of handing it a "free" port that someone else takes first.

import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { jobsClient } from "./grpc.js";

export { freePort } from "../../src/store/embedded-postgres.js";

const ROOT = join(import.meta.dirname, "..", "..");
const JOBSCTL = join(ROOT, "bin", "jobsctl.js");

/** The environment every child starts from: the parent's, minus what belongs to jest. */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.NODE_OPTIONS;
  delete env.JOBS_TOKEN;
  delete env.JOBS_SERVER;
  // Every test passes DATABASE_URL and tokens, so nothing uses this; it only keeps ./.data out of reach.
  env.JOBS_DATA_DIR = join(tmpdir(), "jobs-e2e-no-data-dir");
  return { ...env, ...extra };
}

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface ServerProcess {
  readonly child: ChildProcess;
  readonly port: number;
  /** host:port, for @grpc/grpc-js */
  readonly address: string;
  /** http://host:port, for the CLI's --server */
  readonly url: string;
  /** Everything the process wrote so far (stdout and stderr), for failure messages. */
  output(): string;
  /** What it wrote to stdout alone (the JSON log lines). */
  stdout(): string;
  /** Resolves when the process has exited. */
  readonly exited: Promise<Exit>;
  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`; resolves once it is gone. */
  stop(graceMs?: number): Promise<Exit>;
}

export interface SpawnServerOptions {
  readonly databaseUrl: string;
  /** Extra environment (WATCH_HEARTBEAT_SECONDS, LOG_LEVEL, …). */
  readonly env?: Record<string, string>;
  /** Default 0: the server picks one and prints it. */
  readonly port?: number;
  readonly startTimeoutMs?: number;
}

/** Starts `jobsctl serve` on `databaseUrl` and resolves once its health check says SERVING. */
export async function spawnServer(options: SpawnServerOptions): Promise<ServerProcess> {
  const child = spawn(process.execPath, [JOBSCTL, "serve"], {
    cwd: ROOT,
    env: childEnv({
      HOST: "127.0.0.1",
      PORT: String(options.port ?? 0),
      DATABASE_URL: options.databaseUrl,
      LOG_LEVEL: "warn",
      MIGRATE_ON_START: "false",
      ...options.env,
    }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  let stdout = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
    stdout += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<Exit>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));

  const stop = async (graceMs = 15_000): Promise<Exit> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    }
    return exited;
  };

  try {
    const url = await serving(child, exited, () => output, options.startTimeoutMs ?? 30_000);
    const port = Number(new URL(url).port);
    const address = `127.0.0.1:${port}`;
    await untilHealthy(address);
    return { child, port, address, url, output: () => output, stdout: () => stdout, exited, stop };
  } catch (error) {
    child.kill("SIGKILL");
    await exited;
    throw error;
  }
}

/** The URL from serve's "jobs is serving … on URL" line (stderr). */
function serving(child: ChildProcess, exited: Promise<Exit>, output: () => string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`jobsctl serve did not start within ${timeoutMs} ms:\n${output()}`)), timeoutMs);
    // Scans what was written so far (the "data" listener of spawnServer keeps every stream flowing).
    const check = () => {
      const match = /^jobs is serving .* on (https?:\/\/\S+)$/m.exec(output());
      if (match) finish(match[1]);
    };
    const finish = (result: string | Error) => {
      clearTimeout(timer);
      child.stderr?.off("data", check);
      if (typeof result === "string") resolve(result);
      else reject(result);
    };
    child.stderr?.on("data", check);
    exited.then(({ code, signal }) => finish(new Error(`jobsctl serve exited (code ${code}, signal ${signal}) before serving:\n${output()}`)));
  });
}

async function untilHealthy(address: string): Promise<void> {
  const client = jobsClient(address, null);
  try {
    for (let i = 0; ; i++) {
      try {
        if ((await client.health()) === "SERVING") return;
      } catch (error) {
        if (i > 100) throw error;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    client.close();
  }
}

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `jobsctl ARGS…` to the end. */
export function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 30_000): Promise<CliResult> {
  const child = spawnCli(args, env);
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`jobsctl ${args.join(" ")} did not finish within ${timeoutMs} ms:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Starts `jobsctl ARGS…` and returns the running process (stdout and stderr piped). */
export function spawnCli(args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, [JOBSCTL, ...args], { cwd: ROOT, env: childEnv(env), stdio: ["ignore", "pipe", "pipe"] });
}

/** A service token with both scopes, made by `jobsctl tokens create` on `databaseUrl`. */
export async function createServiceToken(databaseUrl: string, name = "e2e"): Promise<string> {
  const res = await runCli(["tokens", "create", "--principal", "service", "--name", name, "--scopes", "jobs:read,jobs:write"], {
    DATABASE_URL: databaseUrl,
  });
  if (res.code !== 0) throw new Error(`tokens create failed (${res.code}): ${res.stderr}`);
  return res.stdout.trim();
}

/** Reads a child's output line by line, as it comes. */
export function lineReader(input: NodeJS.ReadableStream) {
  const lines: string[] = [];
  const waiting: Array<(line: string | null) => void> = [];
  let ended = false;
  const rl = createInterface({ input });
  rl.on("line", (line) => {
    const w = waiting.shift();
    if (w) w(line);
    else lines.push(line);
  });
  rl.on("close", () => {
    ended = true;
    for (const w of waiting.splice(0)) w(null);
  });
  return {
    /** The next line; null once the output ended. */
    next(timeoutMs = 15_000): Promise<string | null> {
      if (lines.length) return Promise.resolve(lines.shift()!);
      if (ended) return Promise.resolve(null);
      return new Promise((resolve, reject) => {
        const waiter = (line: string | null) => {
          clearTimeout(timer);
          resolve(line);
        };
        const timer = setTimeout(() => {
          waiting.splice(waiting.indexOf(waiter), 1);
          reject(new Error(`no output line within ${timeoutMs} ms`));
        }, timeoutMs);
        waiting.push(waiter);
      });
    },
  };
}

/** The parent of a process, from /proc/<pid>/stat. */
export function parentOf(pid: number): number {
  // "pid (comm) state ppid …": comm may hold spaces, so count from its closing parenthesis.
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

/** The processes whose parent is `pid`, from /proc. */
export function childrenOf(pid: number): number[] {
  return readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .filter((name) => {
      try {
        return parentOf(Number(name)) === pid;
      } catch {
        return false; // exited meanwhile
      }
    })
    .map(Number);
}

let ticksPerSecond: number | undefined;

/** CPU time (user + system) a process has used so far, in milliseconds, from /proc/<pid>/stat. */
export function processCpuMs(pid: number): number {
  ticksPerSecond ??= Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  // Fields after the command name, which may hold spaces: utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond;
}
