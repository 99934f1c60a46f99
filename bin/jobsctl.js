#!/usr/bin/env node
// jobsctl: the service's one executable. Needs Node >= 24; the checkout
// carries it (the `node` package), so re-run under that when started by an
// older system Node.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const major = Number(process.versions.node.split(".")[0]);
const bundledNode = join(root, "node_modules", "node", "bin", "node");
if (major < 24 && existsSync(bundledNode)) {
  const result = spawnSync(bundledNode, process.argv.slice(1), { stdio: "inherit" });
  process.exit(result.status ?? 1);
}
const entry = join(root, "dist", "src", "cli", "main.js");
if (!existsSync(entry)) {
  console.error("jobsctl: not built yet; run `npm install` (or `npm run build`) in the checkout first");
  process.exit(1);
}
await import(pathToFileURL(entry).href);
