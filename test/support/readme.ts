// The README is part of the product: tests run its examples and compare its
// tables. Marked parts sit between `<!-- NAME:begin … -->` and `<!-- NAME:end -->`.

import { readFileSync } from "node:fs";
import { join } from "node:path";

export const ROOT = join(import.meta.dirname, "..", "..");

/** What stands between the markers of `name` (the begin marker's line left out). */
export function readmeBlock(name: string): string {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const start = readme.indexOf(`<!-- ${name}:begin`);
  const end = readme.indexOf(`<!-- ${name}:end -->`);
  if (start < 0 || end < 0) throw new Error(`README has no ${name} block`);
  return readme.slice(readme.indexOf("\n", start) + 1, end);
}

/** The shell script in the ```sh fence of block `name`. */
export function readmeScript(name: string): string {
  const match = /```sh\n([\s\S]*?)```/.exec(readmeBlock(name));
  if (!match) throw new Error(`README block ${name} has no sh code`);
  return match[1];
}
