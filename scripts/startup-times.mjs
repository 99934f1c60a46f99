// `npm run bench:startup`: how long a person waits for `npm start` to serve
// (nothing changed since the last build) and for `npx jobsctl` commands, on a
// server of its own (a temporary data directory, a free port). Wall-clock
// medians of several runs; like the benchmark, only a quiet machine gives
// figures worth keeping (docs/performance.md).

import { execFileSync, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const RUNS = Number(process.env.RUNS ?? 7);
const STARTS = Number(process.env.STARTS ?? 3);

// npm runs this script with the checkout's Node first on PATH; the commands timed here are what a
// person types in a shell, where `npx` and `npm` are the system's (and find that Node themselves).
const shellPath = (process.env.PATH ?? "").split(":").filter((dir) => !dir.includes(join(root, "node_modules"))).join(":");
// npm's own variables (npm_config_*, npm_lifecycle_event …) would change how the inner npm behaves.
const asShell = (env) => Object.fromEntries(Object.entries({ ...env, PATH: shellPath }).filter(([key]) => !/^npm_|^INIT_CWD$|^NODE$/.test(key)));

// Built first: the free-port probe below is the server's own, from dist/.
execFileSync("npm", ["run", "-s", "build"], { cwd: root, env: asShell(process.env), stdio: "inherit" });
const { freePort } = await import("../dist/src/store/embedded-postgres.js");

const dataDir = mkdtempSync(join(tmpdir(), "jobs-startup-"));
chmodSync(dataDir, 0o755); // embedded PostgreSQL runs as the postgres user
const port = await freePort();
const env = {
  ...process.env,
  PORT: String(port),
  EMBEDDED_POSTGRES_PORT: "0",
  JOBS_DATA_DIR: dataDir,
  JOBS_SERVER: `http://127.0.0.1:${port}`,
};
delete env.METRICS_PORT;
const shellEnv = asShell(env);

try {
  // The first start creates the cluster (initdb); it is not what this measures.
  await stop(await startServer());
  const starts = [];
  for (let i = 0; i < STARTS; i++) {
    const began = performance.now();
    const server = await startServer();
    starts.push(performance.now() - began);
    if (i < STARTS - 1) await stop(server);
    else {
      report("npm start, to serving (nothing changed)", starts);
      await measureCommands();
      await stop(server);
    }
  }
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}

async function measureCommands() {
  const jobId = run(["npx", "jobsctl", "create", "--type", "forecast", "--company", "1", "--quiet"]).trim();
  const commands = {
    "npx (npm exec) alone: npx node -e 0": ["npx", "node", "-e", "0"],
    "npx jobsctl get": ["npx", "jobsctl", "get", jobId],
    "npx jobsctl list": ["npx", "jobsctl", "list"],
    "npx jobsctl tokens list": ["npx", "jobsctl", "tokens", "list"],
    "node_modules/.bin/jobsctl tokens list (no npx)": [join(root, "node_modules", ".bin", "jobsctl"), "tokens", "list"],
  };
  for (const [name, argv] of Object.entries(commands)) {
    run(argv); // once unmeasured: the compile cache and the OS's file cache are warm for every command alike
    const times = [];
    for (let i = 0; i < RUNS; i++) {
      const began = performance.now();
      run(argv);
      times.push(performance.now() - began);
    }
    report(name, times);
  }
}

function run([command, ...args]) {
  return execFileSync(command, args, { cwd: root, env: shellEnv, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

function startServer() {
  // Its own process group, so that one signal reaches npm and the server as a terminal's Ctrl-C would.
  const child = spawn("npm", ["start"], { cwd: root, env: shellEnv, stdio: ["ignore", "pipe", "pipe"], detached: true });
  return new Promise((resolve, reject) => {
    let seen = "";
    const read = (chunk) => {
      seen += chunk;
      if (seen.includes('"msg":"serving"')) resolve(child);
    };
    child.stdout.on("data", read);
    child.stderr.on("data", read);
    child.on("exit", (code) => reject(new Error(`npm start exited (${code}) before serving:\n${seen}`)));
  });
}

function stop(child) {
  return new Promise((resolve) => {
    child.removeAllListeners("exit");
    child.on("exit", resolve);
    process.kill(-child.pid, "SIGTERM");
  });
}

function report(name, times) {
  const sorted = [...times].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  const fmt = (ms) => `${Math.round(ms)} ms`;
  console.log(`${name.padEnd(48)} median ${fmt(median).padStart(7)}   (min ${fmt(sorted[0])}, max ${fmt(sorted.at(-1))}, ${times.length} runs)`);
}
