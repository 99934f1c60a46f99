#!/usr/bin/env node
// Whether dist/ was built from the checkout as it is now, so that `npm start`
// builds only when something changed (a build takes seconds; this check takes
// milliseconds). Plain JavaScript: it runs before anything is compiled.
//
//   node scripts/build-stamp.mjs begin   prebuild: note when this build started
//   node scripts/build-stamp.mjs end     postbuild: the build succeeded; stamp it
//   node scripts/build-stamp.mjs fresh   exit 0 if no input changed since the stamped build began
//
// The inputs are not listed by hand: every file of the checkout counts,
// except what git ignores (logs, the Python client's build, …) and what builds,
// installs and runs write (OUTPUTS below, and dot-folders such as .git, .data
// and .cache). So a new source folder (a web console, a second proto module) is
// covered the day it appears. Without git (a checkout from a tarball, git not
// installed) the files are found by walking the folders, and only OUTPUTS and
// dot-folders are left out. The stamp holds the inputs' names, so a file
// deleted or renamed since counts as a change too.

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const STARTED = join(ROOT, "dist", ".build-started");
const STAMP = join(ROOT, "dist", ".build-stamp");
/**
 * Written by builds, installs, tests and benchmarks, never read by the build: a folder of this
 * name anywhere, or this path from the checkout. bench/results is here although git ignores most
 * of it: the run's kept results in it are committed, and a benchmark rewrites them.
 */
const OUTPUTS = new Set(["node_modules", "dist", "coverage", "__pycache__", "bench/results"]);

/** Every input file, relative to the checkout, in a stable order. */
function inputs() {
  return (notIgnoredByGit() ?? walk()).filter((file) => !isOutput(file));
}

/** Whether a path (relative to the checkout) is, or lies in, an output or a dot-folder. */
function isOutput(file) {
  const parts = file.split(/[\\/]/);
  return parts.some((part, i) => part.startsWith(".") || OUTPUTS.has(part) || OUTPUTS.has(parts.slice(0, i + 1).join("/")));
}

/**
 * The files git tracks or would add (new ones), that is all but what it ignores; null when git
 * is not installed or the checkout is no git repository of its own (a tarball unpacked inside
 * another repository's ignored folder, say).
 */
function notIgnoredByGit() {
  const git = (...args) => spawnSync("git", args, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  const top = git("rev-parse", "--show-toplevel");
  if (top.status !== 0 || realpathSync(top.stdout.trim()) !== realpathSync(ROOT)) return null;
  const listed = git("ls-files", "-z", "--cached", "--others", "--exclude-standard");
  if (listed.status !== 0) return null;
  // A file deleted but not yet staged is still in git's index: it is gone.
  return listed.stdout.split("\0").filter((file) => file && existsSync(join(ROOT, file))).sort();
}

/** Every file under `dir`, outputs and dot-folders not entered. */
function walk(dir = ROOT, found = []) {
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const path = relative(ROOT, join(dir, entry.name));
    if (isOutput(path)) continue;
    if (entry.isDirectory()) walk(join(ROOT, path), found);
    else found.push(path);
  }
  return found;
}

/** Why dist/ may not match the checkout, or null if it does. */
function staleness() {
  if (!existsSync(STAMP)) return "no build stamped yet";
  const stamped = readFileSync(STAMP, "utf8").split("\n").filter(Boolean);
  const now = inputs();
  const since = statSync(STAMP).mtimeMs;
  const changed = now.find((file) => statSync(join(ROOT, file)).mtimeMs > since);
  if (changed) return `${changed} changed`;
  const added = now.find((file) => !stamped.includes(file));
  if (added) return `${added} is new`;
  const removed = stamped.find((file) => !now.includes(file));
  return removed ? `${removed} is gone` : null;
}

switch (process.argv[2]) {
  case "begin":
    mkdirSync(dirname(STARTED), { recursive: true });
    writeFileSync(STARTED, `${inputs().join("\n")}\n`);
    break;
  case "end":
    if (existsSync(STARTED)) renameSync(STARTED, STAMP);
    break;
  case "fresh": {
    const why = staleness();
    if (why) {
      process.stderr.write(`building: ${why} since the last build\n`);
      process.exit(1);
    }
    break;
  }
  default:
    process.stderr.write("usage: node scripts/build-stamp.mjs begin|end|fresh\n");
    process.exit(2);
}
