// Stopping the server by signal, whichever way it was started (docs/contract.md,
// "Running it"): `npm start`, `npx jobsctl serve`, and `node bin/jobsctl.js
// serve` under the system's Node (which re-runs it under Node 24 in a child)
// and under Node 24. SIGTERM or SIGINT to any process of the chain, or
// Ctrl-C (SIGINT to the whole process group, as a terminal sends it), drains
// the server, stops its embedded PostgreSQL, and the outermost process exits
// with the server's code; a launcher killed outright (SIGKILL) leaves nothing
// running either: the server notices it is gone and stops. Every process is
// real; after each case no server or PostgreSQL process of it is left, its
// postmaster.pid is gone, and PostgreSQL's port refuses connections.

import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chmodSync, existsSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { isAlive, runningPostgres } from "../../src/store/embedded-postgres.js";
import { childEnv, childrenOf, type Exit, parentOf } from "../support/processes.js";
import { scratchDir } from "../support/scratch.js";
import { eventually } from "../support/watching.js";

const ROOT = join(import.meta.dirname, "..", "..");
/** A newcomer's PATH: npm and node are the system's, not node_modules/.bin's. */
const SYSTEM_PATH = (process.env.PATH ?? "").split(":").filter((dir) => !dir.includes("node_modules")).join(":");
const SYSTEM_NODE = execFileSync("sh", ["-c", "command -v node"], { env: { PATH: SYSTEM_PATH }, encoding: "utf8" }).trim();

let dataDir: string;
/** Every process group started, and every server found: a failed case must not leave one running. */
const groups: number[] = [];
const servers: number[] = [];

beforeAll(() => {
  // embedded-postgres runs PostgreSQL as the postgres user, which must be able to enter this directory.
  const parent = scratchDir("jobs-signals-");
  chmodSync(parent, 0o755);
  dataDir = join(parent, "data");
});
afterAll(() => {
  // Only if a case failed half-way: nothing of its chain may outlive the run.
  for (const pid of [...groups.map((group) => -group), ...servers]) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
  const pg = runningPostgres(join(dataDir, "pg"));
  if (pg) process.kill(pg.pid, "SIGKILL");
});

interface Chain {
  readonly outer: ChildProcess;
  readonly exited: Promise<Exit>;
  /** The `jobsctl serve` process (the embedded PostgreSQL's parent) and its PostgreSQL. */
  readonly server: number;
  readonly postgres: { pid: number; port: number };
  output(): string;
}

const WAYS = {
  "npm start": () => ["npm", ["start"]],
  "npx jobsctl serve": () => ["npx", ["jobsctl", "serve"]],
  "node bin/jobsctl.js serve (system Node)": () => [SYSTEM_NODE, ["bin/jobsctl.js", "serve"]],
  "node bin/jobsctl.js serve (Node 24)": () => [process.execPath, ["bin/jobsctl.js", "serve"]],
} as const satisfies Record<string, () => [string, string[]]>;
type Way = keyof typeof WAYS;

/** Starts the chain in a process group of its own (so a test can Ctrl-C it) and waits until it serves. */
async function start(way: Way): Promise<Chain> {
  const [command, args] = WAYS[way]();
  const env = childEnv({ PATH: SYSTEM_PATH, JOBS_DATA_DIR: dataDir, HOST: "127.0.0.1", PORT: "0", EMBEDDED_POSTGRES_PORT: "0", LOG_LEVEL: "info" });
  delete env.DATABASE_URL;
  const outer = spawn(command, args, { cwd: ROOT, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  groups.push(outer.pid!);
  let output = "";
  outer.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  outer.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<Exit>((resolve) => outer.once("exit", (code, signal) => resolve({ code, signal })));
  await eventually(() => /^jobs is serving /m.test(output) || outer.exitCode !== null, `${way} to serve`, 60_000);
  const postgres = runningPostgres(join(dataDir, "pg"));
  if (!postgres) throw new Error(`${way}: no embedded PostgreSQL running:\n${output}`);
  const server = parentOf(postgres.pid);
  servers.push(server);
  return { outer, exited, server, postgres, output: () => output };
}

function portRefuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", () => resolve(true));
  });
}

/** Nothing of the chain is left: server, PostgreSQL, its pid file and its port. */
async function expectAllGone(chain: Chain, what: string): Promise<void> {
  await eventually(() => !isAlive(chain.server) && !isAlive(chain.postgres.pid), `${what}: server and PostgreSQL to exit`, 30_000);
  expect(existsSync(join(dataDir, "pg", "postmaster.pid"))).toBe(false);
  expect(await portRefuses(chain.postgres.port)).toBe(true);
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([promise, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms).unref())]);
}

/** The server's JSON log lines, parsed. */
function logged(chain: Chain): Array<Record<string, unknown>> {
  return chain
    .output()
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

type Target = "the outermost process" | "the server" | "the process group (Ctrl-C)";

const CASES: ReadonlyArray<[Way, NodeJS.Signals, Target, Exit]> = [
  ["npm start", "SIGTERM", "the outermost process", { code: 0, signal: null }],
  ["npm start", "SIGINT", "the process group (Ctrl-C)", { code: 0, signal: null }],
  ["npm start", "SIGTERM", "the server", { code: 0, signal: null }],
  // npx runs the command through `sh -c`, which dies of the signal (npm passes it on) without
  // waiting for the server; npm then dies of it too. The server drains and stops by itself:
  // it got the Ctrl-C too, or it finds its launcher gone.
  ["npx jobsctl serve", "SIGTERM", "the outermost process", { code: null, signal: "SIGTERM" }],
  ["npx jobsctl serve", "SIGINT", "the process group (Ctrl-C)", { code: null, signal: "SIGINT" }],
  ["node bin/jobsctl.js serve (system Node)", "SIGTERM", "the outermost process", { code: 0, signal: null }],
  ["node bin/jobsctl.js serve (system Node)", "SIGINT", "the outermost process", { code: 0, signal: null }],
  ["node bin/jobsctl.js serve (system Node)", "SIGINT", "the process group (Ctrl-C)", { code: 0, signal: null }],
  ["node bin/jobsctl.js serve (system Node)", "SIGTERM", "the server", { code: 0, signal: null }],
  ["node bin/jobsctl.js serve (Node 24)", "SIGTERM", "the outermost process", { code: 0, signal: null }],
  ["node bin/jobsctl.js serve (Node 24)", "SIGHUP", "the outermost process", { code: 0, signal: null }],
];

test.each(CASES)("%s: %s to %s drains, stops PostgreSQL, exits %j", async (way, signal, target, exit) => {
  const chain = await start(way);
  const pid = target === "the server" ? chain.server : target === "the outermost process" ? chain.outer.pid! : -chain.outer.pid!;
  process.kill(pid, signal);
  expect(await within(chain.exited, 60_000, `${way} to exit`)).toEqual(exit);
  await expectAllGone(chain, way);
  const messages = logged(chain).map((line) => line.msg);
  // A full drain, once: a signal passed on by a launcher is not taken for a second, impatient one.
  expect(messages).toContain("stopped");
  expect(messages).not.toContain("second signal: exiting now, without finishing the drain");
}, 120_000);

test.each(["npm start", "node bin/jobsctl.js serve (system Node)"] as const)(
  "%s: a launcher killed with SIGKILL leaves nothing running: the server drains and stops",
  async (way) => {
    const chain = await start(way);
    expect(chain.server).not.toBe(chain.outer.pid); // there is a launcher between
    process.kill(chain.outer.pid!, "SIGKILL");
    expect(await within(chain.exited, 30_000, `${way} to exit`)).toEqual({ code: null, signal: "SIGKILL" });
    await expectAllGone(chain, way);
    expect(logged(chain).map((line) => line.msg)).toEqual(expect.arrayContaining(["launcher gone: stopping", "stopped"]));
  },
  120_000,
);

test("a client command whose launcher is killed with SIGKILL does not linger: `watch` (which waits for its job) ends too", async () => {
  // A server to watch (Node 24, directly), and a job that never finishes.
  const chain = await start("node bin/jobsctl.js serve (Node 24)");
  const address = /^jobs is serving .* on (http:\/\/\S+)$/m.exec(chain.output())![1];
  const token = readFileSync(join(dataDir, "dev-token"), "utf8").trim();
  const env = childEnv({ PATH: SYSTEM_PATH, JOBS_SERVER: address, JOBS_TOKEN: token });
  const created = execFileSync(process.execPath, ["bin/jobsctl.js", "create", "--type", "forecast", "--company", "1", "-q"], { cwd: ROOT, env, encoding: "utf8" });
  // Under the system's Node: bin/jobsctl.js runs the command in a Node 24 child.
  const launcher = spawn(SYSTEM_NODE, ["bin/jobsctl.js", "watch", created.trim()], { cwd: ROOT, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  groups.push(launcher.pid!);
  let output = "";
  launcher.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  await eventually(() => output.includes("CREATED"), "the watch to print the job's creation", 30_000);
  const watcher = childrenOf(launcher.pid!)[0];
  expect(watcher).toBeGreaterThan(0);
  servers.push(watcher);

  process.kill(launcher.pid!, "SIGKILL");
  await eventually(() => !isAlive(watcher), "the watch to end once its launcher is gone", 30_000);
  process.kill(chain.server, "SIGTERM");
  expect(await within(chain.exited, 60_000, "the server to exit")).toEqual({ code: 0, signal: null });
}, 120_000);
