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
// except what builds, installs and runs write (OUTPUTS below, and dot-folders
// such as .git, .data and .cache). So a new source folder (a web console, a
// second proto module) is covered the day it appears. The stamp holds the
// inputs' names, so a file deleted or renamed since counts as a change too.

import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const STARTED = join(ROOT, "dist", ".build-started");
const STAMP = join(ROOT, "dist", ".build-stamp");
/** Written by builds, installs, tests and benchmarks, never read by the build. */
const OUTPUTS = new Set(["node_modules", "dist", "coverage", "__pycache__", join("bench", "results")]);

/** Every input file, relative to the checkout, in a stable order. */
function inputs(dir = ROOT, found = []) {
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const path = join(dir, entry.name);
    if (entry.name.startsWith(".") || OUTPUTS.has(entry.name) || OUTPUTS.has(relative(ROOT, path))) continue;
    if (entry.isDirectory()) inputs(path, found);
    else found.push(relative(ROOT, path));
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
