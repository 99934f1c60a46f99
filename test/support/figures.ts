// The reliability suite prints what it reached (calls made, faults injected,
// jobs checked, violations), so a run's log shows how hard each proof pushed.
// `JOBS_SOAK=1` (or a number, a multiplier) scales the loads up for a long
// soak run; the default keeps the test command well under its time budget.

export function soakFactor(): number {
  const raw = process.env.JOBS_SOAK?.trim();
  if (!raw) return 1;
  const factor = Number(raw);
  return Number.isFinite(factor) && factor >= 1 ? factor : 10;
}

/** Scale a count by the soak factor. */
export function scaled(count: number): number {
  return Math.round(count * soakFactor());
}

/** One line on stderr (jest passes it through without a stack trace). */
export function reportFigures(proof: string, figures: Record<string, number | string>): void {
  const parts = Object.entries(figures).map(([name, value]) => `${name}=${value}`);
  process.stderr.write(`reliability: ${proof}: ${parts.join(" ")}\n`);
}
