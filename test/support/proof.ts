// The runs of a reliability proof: fast-check generates each run's input
// from one seed (JOBS_SEED replays it), each run returns the invariant
// violations it found, the first run with any fails the proof naming the
// seed, and the figures line is printed either way.

import fc from "fast-check";
import { reportFigures } from "./figures.js";

/** What every proof reports, besides figures of its own. */
export type ProofFigures = { seed: number; runs: number; violations: number } & Record<string, number>;

/** The seed of a proof: JOBS_SEED replays one; otherwise a fresh one, which the figures line prints. */
export function runSeed(): number {
  const fixed = process.env.JOBS_SEED?.trim();
  return fixed ? Number(fixed) : Math.floor(Math.random() * 2 ** 31);
}

export async function proveRuns<T>(
  proof: string,
  arbitrary: fc.Arbitrary<T>,
  numRuns: number,
  figures: ProofFigures,
  run: (value: T) => Promise<string[]>,
): Promise<void> {
  try {
    await fc.assert(
      fc.asyncProperty(arbitrary, async (value) => {
        const violations = await run(value);
        figures.runs++;
        figures.violations += violations.length;
        if (violations.length > 0) {
          throw new Error(`seed ${figures.seed}: ${violations.length} invariant violations, the first ones:\n${violations.slice(0, 25).join("\n")}`);
        }
      }),
      // A run is a storm on real servers, not a pure function: shrinking would replay other interleavings.
      { seed: figures.seed, numRuns, endOnFailure: true },
    );
  } finally {
    reportFigures(proof, figures);
  }
}
