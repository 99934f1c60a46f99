// The transition table is printed twice for readers (README, docs/contract.md)
// and held once as data (src/domain/transitions.ts). Each printed copy must be
// exactly the table the code decides by, cell for cell.

import { expect, test } from "@jest/globals";
import { JOB_STATES, TRANSITION_CALLS } from "../../src/domain/states.js";
import { decide, type Outcome } from "../../src/domain/transitions.js";
import { markedBlock } from "../support/readme.js";

function cell(outcome: Outcome): string {
  if (outcome.kind === "noop") return "no-op";
  if (outcome.kind === "reject") return "REJECT";
  return `→${outcome.to}`;
}

/** The table decide() implements, in the docs' markdown. */
function decidedTable(): string {
  const row = (cells: readonly string[]) => `| ${cells.join(" | ")} |`;
  return [
    row(["call \\ state", ...JOB_STATES]),
    row(JOB_STATES.map(() => "---").concat("---")).replaceAll(" ", ""),
    ...TRANSITION_CALLS.map((call) => row([call, ...JOB_STATES.map((state) => cell(decide(call, state)))])),
  ].join("\n");
}

test.each(["README.md", "docs/contract.md"])("the transition table in %s is the one the code decides by", (file) => {
  // A note in brackets after a move, such as "(retry)", is for the reader.
  const printed = markedBlock(file, "transitions").trim().replace(/ \([^)|]*\)/g, "");
  expect(printed).toBe(decidedTable());
});
