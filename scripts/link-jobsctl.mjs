#!/usr/bin/env node
// Puts jobsctl on npm's PATH: node_modules/.bin/jobsctl -> bin/jobsctl.js
// (`prepare` runs this on every npm install). package.json declares no `bin`
// on purpose: for a package that declares the bin it is asked for, npx loads
// the whole installed tree before running it, which made every
// `npx jobsctl …` wait for it; a link in node_modules/.bin is run at once.

import { lstatSync, mkdirSync, readlinkSync, symlinkSync, unlinkSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const link = join(ROOT, "node_modules", ".bin", "jobsctl");
const target = relative(dirname(link), join(ROOT, "bin", "jobsctl.js"));

let current = null;
try {
  current = lstatSync(link).isSymbolicLink() ? readlinkSync(link) : "";
} catch {
  // not there yet
}
if (current !== target) {
  if (current !== null) unlinkSync(link);
  mkdirSync(dirname(link), { recursive: true });
  symlinkSync(target, link);
}
