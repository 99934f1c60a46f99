// Aligned text tables, apart from format.ts so that commands printing plain
// rows (jobsctl tokens list) need not load the protobuf messages it formats.

/** Columns padded to their widest cell, two spaces apart; no trailing blanks. */
export function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  return [header, ...rows].map((r) => r.map((cell, i) => (cell ?? "").padEnd(widths[i])).join("  ").trimEnd()).join("\n") + "\n";
}
