// `npm run build:console`: type-checks the console (console/tsconfig.json)
// and builds it with Vite into dist/console, which the server answers at /.
// `npm run build` (and so `npm install`, `npm start`, `npm test`) runs it; it
// skips both steps when none of its inputs changed since the last build it
// made: the console's files, the generated API code it imports, the locked
// dependency versions and this script.

import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";

const ROOT = join(import.meta.dirname, "..");
const OUT = join(ROOT, "dist", "console");
const STAMP = join(OUT, ".build-stamp");
const INPUTS = ["console", "src/gen", "package-lock.json", "scripts/build-console.ts"];

function inputsHash(): string {
  const hash = createHash("sha256");
  for (const file of INPUTS.flatMap((input) => filesOf(join(ROOT, input)))) {
    hash.update(relative(ROOT, file)).update("\0").update(readFileSync(file)).update("\0");
  }
  return hash.digest("hex");
}

function filesOf(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name))
    .sort();
}

const want = inputsHash();
if (existsSync(join(OUT, "index.html")) && existsSync(STAMP) && readFileSync(STAMP, "utf8") === want) {
  process.exit(0);
}

const typecheck = spawnSync(join(ROOT, "node_modules", ".bin", "tsc"), ["-p", join(ROOT, "console", "tsconfig.json")], { stdio: "inherit" });
if (typecheck.status !== 0) {
  console.error("build:console: the console does not type-check (above)");
  process.exit(1);
}
// Imported only now: loading Vite is most of the time a build that has nothing to do would take.
const { build } = await import("vite");
await build({ configFile: join(ROOT, "console", "vite.config.ts") });
writeFileSync(STAMP, want);
console.log(`build:console: built ${relative(ROOT, OUT)}`);
