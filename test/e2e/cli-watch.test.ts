// `jobsctl watch JOB_ID` against a running server (docs/contract.md §8): prints each
// event live until the job ends, then exits 0; `--json` prints one JSON
// object per line; a server that drains mid-watch is resumed from the last
// revision; on a terminal a status line says what it waits for. The CLI is a
// real process; the servers are real ones on loopback ports.

import { type ChildProcess, execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { jobsClient, type JobsClient, type Msg } from "../support/grpc.js";
import { freshDatabase, startServer, type TestServer } from "../support/harness.js";
import { childEnv, createServiceToken, lineReader, runCli, type ServerProcess, spawnCli, spawnServer } from "../support/processes.js";
import { eventually } from "../support/watching.js";

let server: TestServer;
let client: JobsClient;
/** Every watcher started, so a failed test leaves none running. */
const watchers: ChildProcess[] = [];

beforeAll(async () => {
  server = await startServer();
  client = jobsClient(server.address, server.tokens.service);
});
afterAll(async () => {
  for (const child of watchers) if (child.exitCode === null) child.kill("SIGKILL");
  client?.close();
  await server?.stop();
});

async function createJob(): Promise<Msg> {
  return (await client.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "3" })).job;
}

function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

function watch(jobId: string, ...flags: string[]): ChildProcess {
  const child = spawnCli(["watch", jobId, "--server", server.url, "--token", server.tokens.service, ...flags]);
  watchers.push(child);
  return child;
}

test("prints each event live until the job ends, then exits 0", async () => {
  const job = await createJob();
  const child = watch(job.id);
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const lines = lineReader(child.stdout!);

  expect(await lines.next()).toMatch(/^rev 1\s+\d{4}-\d\d-\d\dT[\d:.]+Z\s+CREATED\s+-> PENDING\s+by service:test-service$/);
  // Each change shows up while the command still runs: it is live, not a dump at the end.
  await client.call("RunJob", { job_id: job.id, executor_id: "ex-cli" });
  expect(await lines.next()).toMatch(/^rev 2\s.*\sSTARTED\s+PENDING -> RUNNING\s/);
  expect(child.exitCode).toBeNull();
  await client.call("CompleteJob", { job_id: job.id, result: { forecast: { cost: "1", rows: "2" } } });
  expect(await lines.next()).toMatch(/^rev 3\s.*\sCOMPLETED\s+RUNNING -> COMPLETED\s/);

  expect(await lines.next()).toBeNull();
  expect(await exitOf(child)).toBe(0);
  expect(stderr).toBe("");
});

test("--json prints one JSON object per line, one per event", async () => {
  const job = await createJob();
  const child = watch(job.id, "--json");
  const lines = lineReader(child.stdout!);

  const first = JSON.parse((await lines.next()) ?? "null");
  expect(first).toMatchObject({ jobId: job.id, revision: "1", type: "JOB_EVENT_TYPE_CREATED", toState: "JOB_STATE_PENDING" });
  expect(first.job).toMatchObject({ id: job.id, state: "JOB_STATE_PENDING" });
  await client.call("RunJob", { job_id: job.id, executor_id: "ex-json" });
  const second = JSON.parse((await lines.next()) ?? "null");
  expect(second).toMatchObject({ revision: "2", type: "JOB_EVENT_TYPE_STARTED", fromState: "JOB_STATE_PENDING", job: { executorId: "ex-json" } });
  await client.call("FailJob", { job_id: job.id, message: "disk full" });
  const third = JSON.parse((await lines.next()) ?? "null");
  expect(third).toMatchObject({ revision: "3", type: "JOB_EVENT_TYPE_FAILED", toState: "JOB_STATE_FAILED" });
  expect(third.job.failures[0]).toMatchObject({ message: "disk full" });

  // The stream ends after FAILED (docs/contract.md §5), and so does the command.
  expect(await lines.next()).toBeNull();
  expect(await exitOf(child)).toBe(0);
});

test("--after resumes from a revision; a finished job's remaining events print and the command exits 0", async () => {
  const job = await createJob();
  await client.call("RunJob", { job_id: job.id, executor_id: "ex" });
  await client.call("RequestJobCancellation", { job_id: job.id, reason: "r" });
  await client.call("CancelJob", { job_id: job.id });
  const res = await runCli(["watch", job.id, "--after", "2", "--json", "--server", server.url, "--token", server.tokens.service]);
  expect(res.code).toBe(0);
  const events = res.stdout.trim().split("\n").map((line) => JSON.parse(line));
  expect(events.map((e) => [e.revision, e.toState])).toEqual([
    ["3", "JOB_STATE_PENDING_CANCELLATION"],
    ["4", "JOB_STATE_CANCELLED"],
  ]);
});

test("an unknown job exits with the not-found code (3) and says why on stderr", async () => {
  const res = await runCli(["watch", "00000000-0000-4000-8000-000000000000", "--server", server.url, "--token", server.tokens.service]);
  expect(res.code).toBe(3);
  expect(res.stdout).toBe("");
  expect(res.stderr).toMatch(/not_found|no job/i);
});

test("a server that drains mid-watch: the watch resumes on the server that replaces it, missing and repeating nothing", async () => {
  const databaseUrl = await freshDatabase();
  const token = await createServiceToken(databaseUrl, "cli-watch-resume");
  let first: ServerProcess | undefined = await spawnServer({ databaseUrl });
  let second: ServerProcess | undefined;
  const grpc = jobsClient(first.address, token);
  let replacement: JobsClient | undefined;
  try {
    const { job } = await grpc.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "3" });
    const child = spawnCli(["watch", job.id, "--server", first.url, "--token", token]);
    watchers.push(child);
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const lines = lineReader(child.stdout!);
    expect(await lines.next()).toMatch(/^rev 1\s.*\sCREATED\s/);

    // SIGTERM: the server ends the stream with UNAVAILABLE and exits; the watch keeps trying.
    expect(await first.stop()).toEqual({ code: 0, signal: null });
    const port = first.port;
    first = undefined;
    await eventually(() => stderr.includes("resuming after revision 1"), "the watch to say it is resuming", 15_000);
    expect(child.exitCode).toBeNull();

    second = await spawnServer({ databaseUrl, port });
    replacement = jobsClient(second.address, token);
    await replacement.call("RunJob", { job_id: job.id, executor_id: "ex-resume" });
    expect(await lines.next(30_000)).toMatch(/^rev 2\s.*\sSTARTED\s/);
    await replacement.call("CompleteJob", { job_id: job.id, result: { forecast: { cost: "1", rows: "1" } } });
    expect(await lines.next()).toMatch(/^rev 3\s.*\sCOMPLETED\s/);
    expect(await lines.next()).toBeNull();
    expect(await exitOf(child)).toBe(0);
  } finally {
    grpc.close();
    replacement?.close();
    await first?.stop();
    await second?.stop();
  }
}, 90_000);

test("a server killed with SIGKILL mid-watch: the watch resumes when it is back on the same database, every revision once, in order", async () => {
  const databaseUrl = await freshDatabase();
  const token = await createServiceToken(databaseUrl, "cli-watch-kill");
  // `writer` is a second replica on the same database: it takes the writes, also while `watched` is down.
  const writer = await spawnServer({ databaseUrl });
  let watched: ServerProcess | undefined = await spawnServer({ databaseUrl });
  const grpc = jobsClient(writer.address, token);
  try {
    const { job } = await grpc.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "3" });
    const child = spawnCli(["watch", job.id, "--server", watched.url, "--token", token]);
    watchers.push(child);
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const lines = lineReader(child.stdout!);
    expect(await lines.next()).toMatch(/^rev 1\s.*\sCREATED\s/);

    // No drain, no UNAVAILABLE: the connection just breaks (a reset, CANCEL, or a refused reconnect).
    watched.child.kill("SIGKILL");
    expect(await watched.exited).toEqual({ code: null, signal: "SIGKILL" });
    const port = watched.port;
    watched = undefined;
    await grpc.call("RunJob", { job_id: job.id, executor_id: "ex-kill" });
    await eventually(() => stderr.includes("resuming after revision 1"), "the watch to say it is resuming", 15_000);
    expect(child.exitCode).toBeNull();

    watched = await spawnServer({ databaseUrl, port });
    expect(await lines.next(30_000)).toMatch(/^rev 2\s.*\sSTARTED\s/); // made while it was down: replayed
    await grpc.call("CompleteJob", { job_id: job.id, result: { forecast: { cost: "1", rows: "1" } } });
    expect(await lines.next()).toMatch(/^rev 3\s.*\sCOMPLETED\s/);
    expect(await lines.next()).toBeNull();
    expect(await exitOf(child)).toBe(0);
  } finally {
    grpc.close();
    await watched?.stop();
    await writer.stop();
  }
}, 90_000);

test("--timeout: a watch that the job's end does not finish in time exits 6 (unavailable), saying so", async () => {
  const job = await createJob();
  const res = await runCli(["watch", job.id, "--timeout", "1", "--json", "--server", server.url, "--token", server.tokens.service]);
  expect(res.code).toBe(6);
  // The job never finishes: only the deadline ends the watch (after CREATED, unless that took longer).
  expect([[], ["1"]]).toContainEqual(res.stdout.split("\n").filter(Boolean).map((line) => JSON.parse(line).revision));
  expect(res.stderr).toMatch(/did not finish within 1 s/);
});

/** Runs jobsctl under a pseudo-terminal (util-linux `script`), as a person at a terminal would; returns what the terminal showed. */
async function onTerminal(args: string[]): Promise<string> {
  const command = [process.execPath, join(import.meta.dirname, "..", "..", "bin", "jobsctl.js"), ...args].map((a) => `'${a}'`).join(" ");
  const { stdout } = await promisify(execFile)("script", ["-qec", command, "/dev/null"], { env: childEnv(), timeout: 30_000 });
  return stdout;
}

test("on a terminal, a status line on stderr says what the watch waits for, and is gone at the end", async () => {
  const job = await createJob();
  await client.call("RunJob", { job_id: job.id, executor_id: "ex-tty" });
  await client.call("FailJob", { job_id: job.id, message: "boom" });
  const flags = ["--server", server.url, "--token", server.tokens.service];

  const shown = await onTerminal(["watch", job.id, ...flags]);
  const ERASE = "\r\x1b[2K";
  expect(shown).toContain(`${ERASE}watching ${job.id} · rev 0 · connecting…`);
  expect(shown).toContain(`${ERASE}watching ${job.id} · rev 2 · RUNNING · waiting for the next change…`);
  expect(shown).toMatch(/rev 3\s.*\sFAILED\s+RUNNING -> FAILED\s/);
  // Cleared: the last thing written is the erase, so the prompt comes back on a clean line.
  expect(shown.endsWith(ERASE)).toBe(true);

  // --json is for programs: no status line even on a terminal.
  const json = await onTerminal(["watch", job.id, "--json", ...flags]);
  expect(json).not.toContain("watching");
  expect(json.trim().split(/\r?\n/).map((line) => JSON.parse(line).revision)).toEqual(["1", "2", "3"]);
});
