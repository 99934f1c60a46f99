// The README and docs/ are part of the product: tests run their examples,
// compare their tables and follow their links. Marked parts sit between
// `<!-- NAME:begin … -->` and `<!-- NAME:end -->`.

import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export const ROOT = join(import.meta.dirname, "..", "..");

/** The pages users read, as paths relative to ROOT. */
export function documentationFiles(): string[] {
  const docs = readdirSync(join(ROOT, "docs"))
    .filter((name) => name.endsWith(".md"))
    .map((name) => `docs/${name}`);
  return ["README.md", "bench/README.md", ...docs];
}

/** What stands between the markers of `name` in `file` (the begin marker's line left out). */
export function markedBlock(file: string, name: string): string {
  const text = readFileSync(join(ROOT, file), "utf8");
  const start = text.indexOf(`<!-- ${name}:begin`);
  const end = text.indexOf(`<!-- ${name}:end -->`);
  if (start < 0 || end < 0) throw new Error(`${file} has no ${name} block`);
  return text.slice(text.indexOf("\n", start) + 1, end);
}

export function readmeBlock(name: string): string {
  return markedBlock("README.md", name);
}

/** The shell script in the ```sh fence of the README's block `name`. */
export function readmeScript(name: string): string {
  const match = /```sh\n([\s\S]*?)```/.exec(readmeBlock(name));
  if (!match) throw new Error(`README block ${name} has no sh code`);
  return match[1];
}

/** The page's lines outside fenced code blocks, with their line numbers (from 1). */
function proseLines(markdown: string): { line: number; text: string }[] {
  let fenced = false;
  const prose: { line: number; text: string }[] = [];
  markdown.split("\n").forEach((text, i) => {
    if (/^\s*(```|~~~)/.test(text)) fenced = !fenced;
    else if (!fenced) prose.push({ line: i + 1, text });
  });
  return prose;
}

/**
 * The anchors a page offers, as GitHub makes them: each heading's text in
 * lower case, without markup or punctuation, spaces as hyphens, a repeated one
 * suffixed -1, -2 …; and explicit `<a id="…">` / `<a name="…">` anchors.
 */
export function anchors(markdown: string): Set<string> {
  const found = new Set<string>();
  const seen = new Map<string, number>();
  for (const { text } of proseLines(markdown)) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(text);
    if (heading) {
      const slug = heading[1]
        .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
        .replace(/[`*]/g, "")
        .toLowerCase()
        .replace(/[^\p{L}\p{N}\s_-]/gu, "")
        .replace(/\s/g, "-");
      const count = seen.get(slug) ?? 0;
      seen.set(slug, count + 1);
      found.add(count === 0 ? slug : `${slug}-${count}`);
    }
    for (const explicit of text.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) found.add(explicit[1]);
  }
  return found;
}

export interface Link {
  readonly line: number;
  readonly target: string;
}

/** The inline links and images of a page (`[text](target)`), outside code. */
export function links(markdown: string): Link[] {
  const found: Link[] = [];
  for (const { line, text } of proseLines(markdown)) {
    const outsideCode = text.replace(/`[^`]*`/g, "");
    for (const match of outsideCode.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) found.push({ line, target: match[1] });
  }
  return found;
}
