// Every relative link in the README and docs/ leads somewhere: the file (or
// folder) exists, and a #fragment names a heading or anchor of the page it
// points into. The pages also document the contract themselves, so none may
// send a reader to a file outside the repository.

import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { describe, expect, test } from "@jest/globals";
import { anchors, documentationFiles, links, ROOT } from "../support/readme.js";

const EXTERNAL = /^[a-z][a-z0-9+.-]*:/i;

/** Why `target`, linked from `file`, does not resolve; null when it does. */
function brokenLink(file: string, target: string): string | null {
  const [pathPart, fragment] = target.split("#", 2) as [string, string | undefined];
  const path = pathPart === "" ? file : normalize(join(dirname(file), decodeURI(pathPart)));
  if (path.startsWith("..")) return `leaves the repository (${path})`;
  const absolute = join(ROOT, path);
  if (!existsSync(absolute)) return `no such file: ${path}`;
  if (fragment === undefined) return null;
  if (!path.endsWith(".md") || statSync(absolute).isDirectory()) return `#${fragment} points into ${path}, which is not a page`;
  return anchors(readFileSync(absolute, "utf8")).has(fragment) ? null : `${path} has no heading or anchor #${fragment}`;
}

describe.each(documentationFiles())("%s", (file) => {
  const text = readFileSync(join(ROOT, file), "utf8");

  test("every relative link resolves, #anchors included", () => {
    const relativeLinks = links(text).filter((link) => !EXTERNAL.test(link.target));
    expect(relativeLinks.length).toBeGreaterThan(0);
    const broken = relativeLinks
      .map((link) => ({ ...link, problem: brokenLink(file, link.target) }))
      .filter((link) => link.problem !== null)
      .map((link) => `${file}:${link.line}: (${link.target}) ${link.problem}`);
    expect(broken).toEqual([]);
  });

  test("cites no file users do not have", () => {
    const outside = text.split("\n").flatMap((line, i) => (/SPEC\.md|SPEC §|\.\.\/shared\b|\/work\//.test(line) ? [`${file}:${i + 1}: ${line.trim()}`] : []));
    expect(outside).toEqual([]);
  });
});

test("the link checker finds headings the way GitHub names them", () => {
  const page = "# Title\n## 4. Transition rules\n## Errors: the `code` and google.rpc.ErrorInfo\n## Title\n```\n## not a heading\n```\n<a id=\"explicit\"></a>";
  expect([...anchors(page)].sort()).toEqual(
    ["4-transition-rules", "errors-the-code-and-googlerpcerrorinfo", "explicit", "title", "title-1"].sort(),
  );
  expect(links("see [a](docs/a.md#x) and `[b](not-a-link)`\n```\n[c](in-code)\n```\n![d](img.png \"title\")").map((l) => l.target)).toEqual([
    "docs/a.md#x",
    "img.png",
  ]);
});
