// jobsctl as a client (docs/contract.md §8), run as a real process against a live server:
// a job's whole life through the CLI with --json parsed, `watch` printing
// events while they happen, the result checked against the job's type before
// anything is sent, and the exit codes scripts rely on (README: Exit codes).

import type { ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import type { Msg } from "../support/grpc.js";
import { startServer, type TestServer } from "../support/harness.js";
import { type CliResult, freePort, lineReader, runCli, spawnCli } from "../support/processes.js";
import { scratchDir } from "../support/scratch.js";

const UNKNOWN_ID = "00000000-0000-4000-8000-000000000000";

let server: TestServer;
const children: ChildProcess[] = [];

beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  await server?.stop();
});

/** `jobsctl ARGS… --server URL`, with the service token in JOBS_TOKEN. */
function jobsctl(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCli([...args, "--server", server.url], { JOBS_TOKEN: server.tokens.service, ...env });
}

/** Runs a command that must succeed quietly (nothing on stderr). */
async function ok(...args: string[]): Promise<string> {
  const res = await jobsctl(args);
  expect({ args, code: res.code, stderr: res.stderr }).toEqual({ args, code: 0, stderr: "" });
  return res.stdout;
}

/** Runs a command with --json and parses its one JSON document. */
async function json(...args: string[]): Promise<Msg> {
  return JSON.parse(await ok(...args, "--json"));
}

function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

/** RPC lines the server logged for this call on this job (the server logs one line per RPC). */
const logged = (call: string, jobId: string) => server.logs.filter((line) => line.includes(call) && line.includes(jobId)).length;

test("a job's whole life: create, get, list, run, watch live, complete (a wrong variant refused first), events", async () => {
  const job = await json("create", "--type", "forecast", "--company", "77", "--set", "nql=orders per day", "--data-plane", "dp-cli");
  expect(job).toMatchObject({
    type: "JOB_TYPE_FORECAST",
    state: "JOB_STATE_PENDING",
    companyId: "77",
    dataPlaneId: "dp-cli",
    revision: "1",
    // --json prints fields at their default values too: a script reads `attempt` without a fallback.
    attempt: "0",
    executorId: "",
    input: { forecast: { nql: "orders per day", compiledSql: "" } },
    createdBy: { type: "PRINCIPAL_TYPE_SERVICE", name: "test-service" },
  });
  // Another job of the same company and data plane, of another type: the filters below must leave it out.
  const inputFile = join(scratchDir("jobsctl-"), "input.json");
  writeFileSync(inputFile, JSON.stringify({ refresh_materialized_view: { nql: "refresh", dataset_id: "9" } }));
  const other = await json("create", "--type", "refresh_materialized_view", "--company", "77", "--data-plane", "dp-cli", "--input-file", inputFile);
  expect(other.input).toEqual({ refreshMaterializedView: { nql: "refresh", datasetId: "9", statsEnabled: false, compiledSql: "" } });

  expect(await json("get", job.id)).toEqual(job);
  expect(await ok("get", job.id)).toMatch(new RegExp(`^id:\\s+${job.id}\\n(.*\\n)*state:\\s+PENDING\\n`));

  const listed = await json("list", "--company", "77", "--data-plane", "dp-cli", "--type", "forecast", "--state", "pending,running");
  expect(listed).toEqual({ jobs: [job], nextPageToken: "" });
  const table = await ok("list", "--company", "77");
  expect(table.split("\n")[0]).toMatch(/^ID\s+TYPE\s+STATE\s+REV\s+COMPANY\s+EXECUTOR\s+CREATED$/);
  expect(table).toMatch(new RegExp(`^${job.id}\\s+FORECAST\\s+PENDING\\s+1\\s+77\\s`, "m"));
  expect(table).toMatch(new RegExp(`^${other.id}\\s+REFRESH_MATERIALIZED_VIEW\\s+PENDING\\s`, "m"));

  // The watcher starts with the history so far, then waits: the job's next events must show up while it runs.
  const watcher = spawnCli(["watch", job.id, "--server", server.url], { JOBS_TOKEN: server.tokens.service });
  children.push(watcher);
  let watchErr = "";
  watcher.stderr?.on("data", (chunk: Buffer) => (watchErr += chunk.toString()));
  const lines = lineReader(watcher.stdout!);
  expect(await lines.next()).toMatch(/^rev 1\s.*\sCREATED\s+-> PENDING\s+by service:test-service$/);

  const ran = await json("run", job.id, "--executor", "ex-cli", "--lease-seconds", "120");
  expect(ran).toMatchObject({ changed: true, job: { state: "JOB_STATE_RUNNING", executorId: "ex-cli", attempt: "1", revision: "2" } });
  expect(await lines.next()).toMatch(/^rev 2\s.*\sSTARTED\s+PENDING -> RUNNING\s/);
  // Printed before anything completed the job: live, not a dump at the end.
  expect(watcher.exitCode).toBeNull();

  // A refresh result for a forecast job: refused by the CLI itself, before any CompleteJob reaches the server.
  const wrong = await jobsctl(["complete", job.id, "--result", '{"refresh_materialized_view": {"snapshot_id": "1"}}']);
  expect(wrong.code).toBe(2);
  expect(wrong.stdout).toBe("");
  expect(wrong.stderr).toMatch(/FORECAST job takes the result variant "forecast", not "refresh_materialized_view"; nothing was sent/);
  expect(logged("CompleteJob", job.id)).toBe(0);
  expect(await json("get", job.id)).toMatchObject({ state: "JOB_STATE_RUNNING", revision: "2" });

  const done = await json("complete", job.id, "--set", "cost=120", "--set", "rows=31", "--attempt", "1");
  expect(done).toMatchObject({ changed: true, job: { state: "JOB_STATE_COMPLETED", revision: "3", result: { forecast: { cost: "120", rows: "31" } } } });
  // The check above could have failed: a CompleteJob that reaches the server is logged.
  expect(logged("CompleteJob", job.id)).toBeGreaterThan(0);
  expect(await lines.next()).toMatch(/^rev 3\s.*\sCOMPLETED\s+RUNNING -> COMPLETED\s/);
  expect(await lines.next()).toBeNull();
  expect(await exitOf(watcher)).toBe(0);
  expect(watchErr).toBe(""); // no status line: stderr is not a terminal

  const { events, nextPageToken } = await json("events", job.id);
  expect(nextPageToken).toBe("");
  expect(events.map((e: Msg) => [e.revision, e.type, e.toState])).toEqual([
    ["1", "JOB_EVENT_TYPE_CREATED", "JOB_STATE_PENDING"],
    ["2", "JOB_EVENT_TYPE_STARTED", "JOB_STATE_RUNNING"],
    ["3", "JOB_EVENT_TYPE_COMPLETED", "JOB_STATE_COMPLETED"],
  ]);
  const history = (await ok("events", job.id)).trimEnd().split("\n");
  expect(history[0]).toMatch(/^REV\s+TIME\s+EVENT\s+FROM\s+TO\s+BY$/);
  expect(history.slice(1).map((line) => line.split(/\s+/).slice(0, 5).filter((_, i) => i !== 1))).toEqual([
    ["1", "CREATED", "-", "PENDING"],
    ["2", "STARTED", "PENDING", "RUNNING"],
    ["3", "COMPLETED", "RUNNING", "COMPLETED"],
  ]);

  // Asking a finished job to cancel is a no-op (docs/contract.md §4): exit 0, changed false, nothing moves.
  expect(await json("request-cancellation", job.id, "--reason", "too late")).toMatchObject({
    changed: false,
    job: { state: "JOB_STATE_COMPLETED", revision: "3" },
  });
  expect(await ok("request-cancellation", job.id)).toMatch(/^unchanged \(no-op\): job is COMPLETED \(revision 3\)\n/);
});

test("fail, run again, heartbeat, and a cancellation to the end", async () => {
  const job = await json("create", "--type", "health_check", "--company", "78", "--set", "probe.depth=2", "--set", "target=db");
  expect(job.input).toEqual({ other: { probe: { depth: 2 }, target: "db" } });
  await json("run", job.id, "--executor", "ex-1");
  const failed = await json("fail", job.id, "--message", "disk full", "--diagnostic", '{"free_bytes": 0}', "--attempt", "1");
  expect(failed.job.state).toBe("JOB_STATE_FAILED");
  expect(failed.job.failures).toEqual([expect.objectContaining({ attempt: "1", executorId: "ex-1", message: "disk full", diagnostic: { free_bytes: 0 } })]);

  const retried = await json("run", job.id, "--executor", "ex-2");
  expect(retried.job).toMatchObject({ state: "JOB_STATE_RUNNING", attempt: "2", executorId: "ex-2" });
  const beat = await json("heartbeat", job.id, "--executor", "ex-2", "--attempt", "2");
  expect(beat).toMatchObject({ id: job.id, state: "JOB_STATE_RUNNING", revision: retried.job.revision });
  // A superseded attempt is rejected (exit 4), and says so.
  const stale = await jobsctl(["complete", job.id, "--set", "healthy=true", "--attempt", "1"]);
  expect(stale.code).toBe(4);
  expect(stale.stderr).toMatch(/STALE_ATTEMPT/);

  expect((await json("request-cancellation", job.id, "--reason", "maintenance")).job).toMatchObject({
    state: "JOB_STATE_PENDING_CANCELLATION",
    cancellationReason: "maintenance",
  });
  expect(await json("cancel", job.id)).toMatchObject({ changed: true, job: { state: "JOB_STATE_CANCELLED" } });
});

test("a write-only token (an executor's) cannot read the job, so the server checks the result's variant", async () => {
  const job = await json("create", "--type", "forecast", "--company", "78");
  await json("run", job.id, "--executor", "ex-w");
  const writer = { JOBS_TOKEN: server.tokens.writer };
  const wrong = await jobsctl(["complete", job.id, "--result", '{"health_check": {}}'], writer);
  expect(wrong.code).toBe(2);
  expect(wrong.stderr).toMatch(/RESULT_TYPE_MISMATCH/);
  const right = await jobsctl(["complete", job.id, "--result", '{"forecast": {"cost": "1"}}', "--json"], writer);
  expect(right.code).toBe(0);
  expect(JSON.parse(right.stdout).job.state).toBe("JOB_STATE_COMPLETED");
});

test("list pages: --page-size and --page-token, or --all; the table says where the next page starts", async () => {
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) ids.push((await json("create", "--type", "forecast", "--company", "79")).id);
  const newestFirst = ids.reverse();

  const first = await json("list", "--company", "79", "--page-size", "2");
  expect(first.jobs.map((j: Msg) => j.id)).toEqual(newestFirst.slice(0, 2));
  expect(first.nextPageToken).not.toBe("");
  const second = await json("list", "--company", "79", "--page-size", "2", "--page-token", first.nextPageToken);
  expect(second).toMatchObject({ jobs: [expect.objectContaining({ id: newestFirst[2] })], nextPageToken: "" });
  const all = await json("list", "--company", "79", "--page-size", "1", "--all");
  expect(all.jobs.map((j: Msg) => j.id)).toEqual(newestFirst);
  expect(all.nextPageToken).toBe("");

  const text = await jobsctl(["list", "--company", "79", "--page-size", "2"]);
  expect(text.code).toBe(0);
  expect(text.stdout.trimEnd().split("\n")).toHaveLength(3);
  expect(text.stderr).toBe(`more jobs: repeat with --page-token ${first.nextPageToken} (or --all)\n`);
});

test("create --json prints the job alone, so a script can take its id", async () => {
  const res = await jobsctl(["create", "--type", "forecast", "--company", "80", "--json"]);
  expect(res.code).toBe(0);
  expect(JSON.parse(res.stdout)).toMatchObject({ id: expect.stringMatching(/^[0-9a-f-]{36}$/), state: "JOB_STATE_PENDING" });
});

describe("where the server and token come from", () => {
  let jobId: string;
  beforeAll(async () => {
    jobId = (await json("create", "--type", "forecast", "--company", "81")).id;
  });
  const get = (env: Record<string, string>, ...flags: string[]) => runCli(["get", jobId, "--json", ...flags], env);

  test("JOBS_SERVER and JOBS_TOKEN", async () => {
    const res = await get({ JOBS_SERVER: server.url, JOBS_TOKEN: server.tokens.reader });
    expect(res.code).toBe(0);
    expect(JSON.parse(res.stdout).id).toBe(jobId);
  });

  test("--server and --token win over the environment", async () => {
    const res = await get({ JOBS_SERVER: "http://127.0.0.1:1", JOBS_TOKEN: "jobs_not-a-real-token" }, "--server", server.url, "--token", server.tokens.reader);
    expect(res.code).toBe(0);
  });

  test("without either, the development token in JOBS_DATA_DIR", async () => {
    const dataDir = scratchDir("jobsctl-data-");
    writeFileSync(join(dataDir, "dev-token"), `${server.tokens.reader}\n`);
    expect((await get({ JOBS_DATA_DIR: dataDir }, "--server", server.url)).code).toBe(0);
  });
});

describe("exit codes", () => {
  // Independent commands, run side by side; each test reads its own result.
  let pendingJob: string;
  let results: Map<string, CliResult>;
  const cases: Record<string, () => Promise<CliResult>> = {
    "not found: an unknown job": () => jobsctl(["get", UNKNOWN_ID]),
    "rejected: cancel a PENDING job": () => jobsctl(["cancel", pendingJob]),
    "unauthenticated: a bad token": () => jobsctl(["get", pendingJob, "--token", "jobs_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"]),
    "denied: a read-only token runs a job": () => jobsctl(["run", pendingJob, "--executor", "x"], { JOBS_TOKEN: server.tokens.reader }),
    "denied: an api_user lists another company": () => jobsctl(["list", "--company", "200"], { JOBS_TOKEN: server.tokens.companyA }),
    "unavailable: no server there": async () => runCli(["get", pendingJob, "--server", `http://127.0.0.1:${await freePort()}`], { JOBS_TOKEN: server.tokens.service }),
    "usage: an unknown option": () => jobsctl(["get", pendingJob, "--bogus"]),
    "usage: a missing argument": () => jobsctl(["get"]),
    "usage: a missing required option": () => jobsctl(["fail", pendingJob]),
    "usage: a bad enum value": () => jobsctl(["list", "--state", "sleeping"]),
    "usage: an unknown command": () => jobsctl(["frobnicate"]),
    "usage: a malformed job id (INVALID_ARGUMENT from the server)": () => jobsctl(["get", "not-a-uuid"]),
    "usage: --result that is not JSON": () => jobsctl(["complete", pendingJob, "--result", "{cost: 1"]),
    "usage: a result field the variant lacks": () => jobsctl(["complete", pendingJob, "--set", "colour=blue"]),
  };
  const expected: Record<string, [number, RegExp]> = {
    "not found: an unknown job": [3, /JOB_NOT_FOUND/],
    "rejected: cancel a PENDING job": [4, /INVALID_TRANSITION/],
    "unauthenticated: a bad token": [5, /unauthenticated/],
    "denied: a read-only token runs a job": [5, /permission_denied/],
    "denied: an api_user lists another company": [5, /permission_denied/],
    "unavailable: no server there": [6, /unavailable[\s\S]*is the server running/],
    "usage: an unknown option": [2, /unknown option '--bogus'/],
    "usage: a missing argument": [2, /missing required argument 'job-id'/],
    "usage: a missing required option": [2, /required option '--message <text>' not specified/],
    "usage: a bad enum value": [2, /'sleeping' is invalid. use one of pending, running/],
    "usage: an unknown command": [2, /unknown command 'frobnicate'/],
    "usage: a malformed job id (INVALID_ARGUMENT from the server)": [2, /invalid_argument/],
    "usage: --result that is not JSON": [2, /--result <json>.*must be JSON/],
    "usage: a result field the variant lacks": [2, /forecast has no field "colour"; its fields: cost, rows/],
  };

  beforeAll(async () => {
    pendingJob = (await json("create", "--type", "forecast", "--company", "82")).id;
    results = new Map(await Promise.all(Object.entries(cases).map(async ([what, run]) => [what, await run()] as const)));
  });

  test.each(Object.keys(cases))("%s", (what) => {
    const res = results.get(what)!;
    const [code, message] = expected[what];
    expect({ code: res.code, stderr: res.stderr }).toEqual({ code, stderr: expect.stringMatching(/^jobsctl: /) });
    expect(res.stderr).toMatch(message);
    expect(res.stdout).toBe("");
  });

  test("the job the failed calls named is untouched", async () => {
    expect(await json("get", pendingJob)).toMatchObject({ state: "JOB_STATE_PENDING", revision: "1" });
  });

  test("jobsctl alone prints its help on stderr and exits 2", async () => {
    const res = await runCli([]);
    expect(res.code).toBe(2);
    expect(res.stdout).toBe("");
    expect(res.stderr).toMatch(/^jobsctl — the jobs service[\s\S]*Usage: jobsctl <command>/);
  });
});

describe("--help", () => {
  const COMMANDS = [
    [],
    ["serve"],
    ["migrate"],
    ["tokens"],
    ["tokens", "create"],
    ["tokens", "list"],
    ["tokens", "revoke"],
    ["create"],
    ["get"],
    ["list"],
    ["events"],
    ["run"],
    ["complete"],
    ["fail"],
    ["request-cancellation"],
    ["cancel"],
    ["heartbeat"],
    ["watch"],
  ];
  let results: Map<string, CliResult>;
  beforeAll(async () => {
    results = new Map(await Promise.all(COMMANDS.map(async (args) => [args.join(" "), await runCli([...args, "--help"])] as const)));
  });

  test.each(COMMANDS.map((args) => args.join(" ") || "(jobsctl itself)"))("%s --help exits 0 with usage and an example on stdout", (name) => {
    const res = results.get(name === "(jobsctl itself)" ? "" : name)!;
    expect({ code: res.code, stderr: res.stderr }).toEqual({ code: 0, stderr: "" });
    expect(res.stdout).toMatch(/Usage: jobsctl/);
    expect(res.stdout).toMatch(/\nExamples:\n {2}\$ jobsctl /);
  });

  test("jobsctl --help lists every command tested here, and the exit codes", () => {
    const root = results.get("")!.stdout;
    for (const [name] of COMMANDS.filter((args) => args.length === 1)) expect(root).toMatch(new RegExp(`^ {2}${name} `, "m"));
    expect(root).toMatch(/Exit codes:[\s\S]*3 {2}not found[\s\S]*6 {2}unavailable/);
  });

  test("jobsctl --help and serve --help name the health service names a probe asks for", () => {
    for (const name of ["", "serve"]) {
      const help = results.get(name)!.stdout.replace(/\s+/g, " ");
      expect(help).toContain("grpc.health.v1.Health");
      expect(help).toContain('"" (the server)');
      expect(help).toContain('"jobs.v1.JobService"');
    }
  });

  test("client commands document --server, --token and --json with their variables", () => {
    const help = results.get("watch")!.stdout;
    expect(help).toMatch(/--server <url>[\s\S]*env: JOBS_SERVER/);
    expect(help).toMatch(/--token <token>[\s\S]*env: JOBS_TOKEN/);
    expect(help).toContain("--json");
  });
});
