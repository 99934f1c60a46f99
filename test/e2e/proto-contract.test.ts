// The protos are a product: `buf breaking` (FILE rules, as in buf.yaml and
// npm test) must refuse a change that would break clients generated from
// them, such as renaming a field.

import { execFile } from "node:child_process";
import { cpSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { expect, test } from "@jest/globals";
import { scratchDir } from "../support/scratch.js";

const ROOT = join(import.meta.dirname, "..", "..");
const BUF = join(ROOT, "node_modules", ".bin", "buf");
const run = promisify(execFile);

/** A copy of the repository's buf module, with `edit` applied to proto/jobs/v1/job.proto. */
function editedCopy(edit: (source: string) => string): string {
  const dir = scratchDir("jobs-proto-");
  cpSync(join(ROOT, "proto"), join(dir, "proto"), { recursive: true });
  cpSync(join(ROOT, "buf.yaml"), join(dir, "buf.yaml"));
  const file = join(dir, "proto", "jobs", "v1", "job.proto");
  const source = readFileSync(file, "utf8");
  const edited = edit(source);
  if (edited === source) throw new Error("the edit changed nothing");
  writeFileSync(file, edited);
  return dir;
}

async function breaking(dir: string): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(BUF, ["breaking", dir, "--against", ROOT]);
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, output: e.stdout + e.stderr };
  }
}

test("renaming a field of jobs.v1.Job is refused as a breaking change", async () => {
  const dir = editedCopy((s) => s.replace("string executor_id = 7;", "string executor = 7;"));
  const result = await breaking(dir);
  expect(result.code).not.toBe(0);
  expect(result.output).toMatch(/executor_id/);
});

test("adding a field is not breaking", async () => {
  const dir = editedCopy((s) =>
    s.replace("  int32 lease_seconds = 21;\n}", "  int32 lease_seconds = 21;\n  // A new field.\n  string note = 22;\n}"),
  );
  expect(await breaking(dir)).toEqual({ code: 0, output: "" });
});
