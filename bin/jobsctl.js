#!/usr/bin/env node
// jobsctl: the service's one executable. Needs Node >= 24; the checkout
// carries it (the `node` package), so re-run under that when started by an
// older system Node. The re-run is a child process: signals sent to this one
// (a supervisor's SIGTERM, Ctrl-C) are passed on to it, and this process
// exits the way the child did, so a supervisor sees the server's own exit.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import module from "node:module";
import { constants } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const major = Number(process.versions.node.split(".")[0]);
const bundledNode = join(root, "node_modules", "node", "bin", "node");
const FORWARDED = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"];

if (major < 24 && existsSync(bundledNode)) {
  // JOBSCTL_LAUNCHER_PID tells the command (any of them) that its parent is this
  // launcher: if it is killed outright (SIGKILL), the command notices and stops;
  // `serve` drains (src/lifecycle.ts), the others end as on SIGTERM (src/cli/main.ts).
  const child = spawn(bundledNode, process.argv.slice(1), {
    stdio: "inherit",
    env: { ...process.env, JOBSCTL_LAUNCHER_PID: String(process.pid) },
  });
  const forward = (signal) => child.kill(signal);
  for (const signal of FORWARDED) process.on(signal, forward);
  child.on("error", (error) => {
    console.error(`jobsctl: could not start ${bundledNode}: ${error.message}`);
    process.exit(1);
  });
  child.on("exit", (code, signal) => {
    if (signal === null) process.exit(code ?? 1);
    // Die of the same signal, so that our parent sees what the child's would have.
    for (const s of FORWARDED) process.off(s, forward);
    process.kill(process.pid, signal);
    // A signal Node ignores (SIGPIPE) does not end us: exit as a shell reports a signal.
    process.exit(128 + (constants.signals[signal] ?? 0));
  });
} else {
  // Compiled code is cached between runs (in the OS's temporary directory):
  // a command loads a few hundred modules, and compiling them is a good part of its start-up.
  module.enableCompileCache?.();
  const entry = join(root, "dist", "src", "cli", "main.js");
  if (!existsSync(entry)) {
    console.error("jobsctl: not built yet; run `npm install` (or `npm run build`) in the checkout first");
    process.exit(1);
  }
  await import(pathToFileURL(entry).href);
}
