// scripts/build-stamp.mjs, which lets `npm start` skip the build when nothing
// changed: run as npm runs it, on a small checkout of its own (the script
// finds the checkout from where it lies), with file times set by the test.
// Any file counts as an input, except outputs (node_modules, dist, dot-folders
// such as .data) and, in a git checkout, what git ignores; a changed, new or
// removed input means a build is due.

import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { beforeEach, expect, test } from "@jest/globals";
import { scratchDir } from "../support/scratch.js";

const SCRIPT = join(import.meta.dirname, "..", "..", "scripts", "build-stamp.mjs");
let root: string;

/** A file in the scratch checkout, last modified `secondsAgo` ago. */
function file(path: string, secondsAgo = 60): void {
  const full = join(root, path);
  mkdirSync(dirname(full), { recursive: true });
  writeFileSync(full, path);
  const when = new Date(Date.now() - secondsAgo * 1000);
  utimesSync(full, when, when);
}

function stamp(step: "begin" | "end" | "fresh"): { code: number | null; stderr: string } {
  const res = spawnSync(process.execPath, [join(root, "scripts", "build-stamp.mjs"), step], { encoding: "utf8", timeout: 30_000 });
  return { code: res.status, stderr: res.stderr };
}

/** What a build does: begin, (compile), end. */
function build(): void {
  expect(stamp("begin").code).toBe(0);
  file("dist/src/main.js", 0); // outputs are written during the build
  expect(stamp("end").code).toBe(0);
}

beforeEach(() => {
  root = scratchDir("build-stamp-");
  mkdirSync(join(root, "scripts"));
  copyFileSync(SCRIPT, join(root, "scripts", "build-stamp.mjs"));
  for (const path of ["package.json", "tsconfig.json", "src/main.ts", "src/gen/job_pb.ts", "console/src/app.tsx"]) file(path);
});

test("no stamp yet: a build is due", () => {
  expect(stamp("fresh")).toEqual({ code: 1, stderr: "building: no build stamped yet since the last build\n" });
});

test("right after a build nothing is due; outputs, installs and data written later change nothing", () => {
  build();
  expect(stamp("fresh").code).toBe(0);
  for (const path of ["node_modules/x/index.js", "dist/src/other.js", ".data/pg/PG_VERSION", "clients/python/tests/__pycache__/t.pyc", "bench/results/run.json"]) {
    file(path, -5);
  }
  expect(stamp("fresh")).toEqual({ code: 0, stderr: "" });
});

test.each([
  ["an input changed after the build began", () => file("src/main.ts", -5), "src/main.ts changed"],
  ["a folder no list names (a new web console's source)", () => file("console/src/app.tsx", -5), "console/src/app.tsx changed"],
  ["a new input, even one older than the build", () => file("src/extra.ts", 3600), "src/extra.ts is new"],
  ["an input removed", () => rmSync(join(root, "src/gen/job_pb.ts")), "src/gen/job_pb.ts is gone"],
])("%s: a build is due, and it says why", (_what, change, why) => {
  build();
  change();
  expect(stamp("fresh")).toEqual({ code: 1, stderr: `building: ${why} since the last build\n` });
  // Time moves on (the test set the change a few seconds ahead, clear of the clock's granularity), and it is built.
  for (const path of ["src/main.ts", "console/src/app.tsx"]) {
    const past = new Date(Date.now() - 30_000);
    utimesSync(join(root, path), past, past);
  }
  build();
  expect(stamp("fresh").code).toBe(0);
});

test("a build that failed (begun, never ended) leaves the last stamp, and the change that failed it still counts", () => {
  build();
  file("src/main.ts", -5);
  expect(stamp("begin").code).toBe(0); // the compiler then fails: no "end"
  expect(stamp("fresh").code).toBe(1);
});

test("in a git checkout, what git ignores is no input (logs, a client's build), and what it would add still is", () => {
  const git = (...args: string[]) => expect(spawnSync("git", args, { cwd: root, encoding: "utf8" }).status).toBe(0);
  git("init", "-q");
  writeFileSync(join(root, ".gitignore"), "*.log\nclients/python/build/\n");
  build();
  for (const path of ["server.log", "clients/python/build/lib/jobs.py"]) file(path, -5);
  expect(stamp("fresh")).toEqual({ code: 0, stderr: "" });
  file("src/extra.ts", 3600);
  expect(stamp("fresh")).toEqual({ code: 1, stderr: "building: src/extra.ts is new since the last build\n" });
});
