// The server under test: `node bin/jobsctl.js serve` as its own process, so
// that its CPU time and memory are its own and not the load generator's.

import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { freePort } from "../src/store/embedded-postgres.js";

/** The checkout (this file runs as dist/bench/server.js). */
export const ROOT = join(import.meta.dirname, "..", "..");
/** The server to measure: this checkout's, or another build's (A/B comparisons) named by JOBS_BENCH_JOBSCTL. */
export const JOBSCTL = process.env.JOBS_BENCH_JOBSCTL?.trim() || join(ROOT, "bin", "jobsctl.js");

export interface ServerProcess {
  readonly pid: number;
  /** host:port for @grpc/grpc-js. */
  readonly address: string;
  /** Warnings and errors the server logged (LOG_LEVEL=warn), last 200 lines. */
  readonly logTail: string[];
  /** The DevTools WebSocket URL when started with --inspect. */
  readonly inspectorUrl: string | null;
  /** Its write transactions and the calls they carried so far, from its /metrics. */
  writeBatches(): Promise<{ transactions: number; calls: number }>;
  /** Stops it with SIGTERM (drain) and waits for the exit; resolves with its exit code. */
  stop(): Promise<number | null>;
}

export interface ServerOptions {
  readonly databaseUrl: string;
  readonly dataDir: string;
  /** Extra environment (e.g. NODE_OPTIONS for --cpu-prof). */
  readonly env?: Record<string, string>;
  /** Another build's bin/jobsctl.js (default: JOBSCTL). */
  readonly jobsctl?: string;
  /** Working directory (default: the checkout). */
  readonly cwd?: string;
}

/** The server settings startServer sets itself, over the environment's (report.ts lists the others a run took from it). */
export const OWN_SETTINGS = ["HOST", "PORT", "DATABASE_URL", "LOG_LEVEL", "JOBS_DATA_DIR", "METRICS_PORT"] as const;

export async function startServer(options: ServerOptions): Promise<ServerProcess> {
  const port = await freePort();
  const metricsPort = await freePort();
  const own: Record<(typeof OWN_SETTINGS)[number], string> = {
    HOST: "127.0.0.1",
    PORT: String(port),
    DATABASE_URL: options.databaseUrl,
    JOBS_DATA_DIR: options.dataDir,
    LOG_LEVEL: "warn",
    METRICS_PORT: String(metricsPort),
  };
  const child = spawn(process.execPath, [options.jobsctl ?? JOBSCTL, "serve"], {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, ...own, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logTail: string[] = [];
  const keep = (chunk: Buffer) => {
    for (const line of chunk.toString("utf8").split("\n")) {
      if (!line.trim()) continue;
      logTail.push(line);
      if (logTail.length > 200) logTail.shift();
    }
  };
  // Always drain both pipes: a full pipe would block the server.
  child.stdout?.on("data", keep);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));

  let stderr = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error("the server did not report serving within 60 s")), 60_000);
    const onData = (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
      if (stderr.includes("jobs is serving")) {
        cleanup();
        resolve();
      }
    };
    const onExit = (code: number | null) => fail(new Error(`the server exited (code ${code}) before serving:\n${stderr.slice(-4000)}`));
    const fail = (error: Error) => {
      cleanup();
      child.kill("SIGKILL");
      reject(error);
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.stderr?.off("data", onData);
      child.off("exit", onExit);
    };
    child.stderr?.on("data", onData);
    child.once("exit", onExit);
  });
  child.stderr?.on("data", keep);
  let stopping = false;
  child.once("exit", (code, signal) => {
    if (stopping) return;
    process.stderr.write(
      `[bench] the server (pid ${child.pid}) exited unexpectedly (code ${code}, signal ${signal}); its last log lines:\n${logTail.slice(-30).join("\n")}\n`,
    );
  });

  return {
    pid: child.pid as number,
    address: `127.0.0.1:${port}`,
    logTail,
    inspectorUrl: /Debugger listening on (ws:\/\/\S+)/.exec(stderr)?.[1] ?? null,
    async writeBatches() {
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      const value = (series: string) => {
        const line = text.split("\n").find((l) => l.startsWith(`${series} `));
        return line === undefined ? 0 : Number(line.slice(series.length + 1));
      };
      return { transactions: value("jobs_write_batch_calls_count"), calls: value("jobs_write_batch_calls_sum") };
    },
    async stop() {
      stopping = true;
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** `jobsctl tokens create` against the benchmark's database: the token a load client presents. */
export async function createToken(databaseUrl: string, dataDir: string): Promise<string> {
  const child: ChildProcess = spawn(
    process.execPath,
    [JOBSCTL, "tokens", "create", "--principal", "service", "--name", "bench", "--scopes", "jobs:read,jobs:write"],
    { cwd: ROOT, env: { ...process.env, DATABASE_URL: databaseUrl, JOBS_DATA_DIR: dataDir, LOG_LEVEL: "warn" }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  let err = "";
  child.stdout?.on("data", (c: Buffer) => (out += c.toString("utf8")));
  child.stderr?.on("data", (c: Buffer) => (err += c.toString("utf8")));
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  const token = out.trim();
  if (code !== 0 || !token) throw new Error(`jobsctl tokens create failed (exit ${code}): ${err.slice(-2000)}`);
  return token;
}
