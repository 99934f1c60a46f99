// docs/contract.md §4's transition table, cell by cell. The expected table below is the
// spec's markdown, transcribed by hand (not imported from src), so a change to
// either side shows up here as a failing cell.

import { describe, expect, test } from "@jest/globals";
import { JOB_STATES, TRANSITION_CALLS } from "../../src/domain/states.js";
import { decide, type Outcome } from "../../src/domain/transitions.js";

const SPEC_TABLE = `
| call \\ state | PENDING | RUNNING | PENDING_CANCELLATION | COMPLETED | FAILED | CANCELLED |
|---|---|---|---|---|---|---|
| RunJob | →RUNNING | no-op | REJECT | no-op | →RUNNING (retry) | no-op |
| CompleteJob | →COMPLETED | →COMPLETED | →COMPLETED | no-op | no-op | no-op |
| FailJob | →FAILED | →FAILED | →FAILED | no-op | no-op | no-op |
| RequestJobCancellation | →PENDING_CANCELLATION | →PENDING_CANCELLATION | no-op | no-op | no-op | no-op |
| CancelJob | REJECT | REJECT | →CANCELLED | no-op | no-op | no-op |
`;

/** The event a move into each state appends (docs/contract.md §5's `JobEventType` names). */
const EVENT_FOR_TARGET: Record<string, string> = {
  RUNNING: "STARTED",
  COMPLETED: "COMPLETED",
  FAILED: "FAILED",
  PENDING_CANCELLATION: "CANCELLATION_REQUESTED",
  CANCELLED: "CANCELLED",
};

interface Cell {
  readonly call: string;
  readonly state: string;
  readonly expected: Outcome;
}

function parseSpecTable(markdown: string): { calls: string[]; states: string[]; cells: Cell[] } {
  const rows = markdown
    .trim()
    .split("\n")
    .map((line) =>
      line
        .split("|")
        .slice(1, -1)
        .map((c) => c.trim()),
    );
  const states = rows[0].slice(1);
  const cells: Cell[] = [];
  const calls: string[] = [];
  for (const row of rows.slice(2)) {
    const [call, ...outcomes] = row;
    calls.push(call);
    outcomes.forEach((text, i) => cells.push({ call, state: states[i], expected: parseOutcome(text) }));
  }
  return { calls, states, cells };
}

function parseOutcome(text: string): Outcome {
  if (text === "no-op") return { kind: "noop" };
  if (text === "REJECT") return { kind: "reject" };
  const move = /^→([A-Z_]+)/.exec(text);
  if (!move) throw new Error(`cannot read table cell "${text}"`);
  const to = move[1];
  return { kind: "move", to, event: EVENT_FOR_TARGET[to] } as Outcome;
}

const spec = parseSpecTable(SPEC_TABLE);

test("the transcribed table has 5 calls × 6 states = 30 cells", () => {
  expect(spec.calls).toHaveLength(5);
  expect(spec.states).toHaveLength(6);
  expect(spec.cells).toHaveLength(30);
});

describe("decide() against every cell of docs/contract.md §4", () => {
  test.each(spec.cells.map((c) => [c.call, c.state, c.expected] as const))("%s on a %s job", (call, state, expected) => {
    expect(decide(call as never, state as never)).toEqual(expected);
  });
});

test("the code's calls and states are exactly the table's rows and columns", () => {
  expect([...TRANSITION_CALLS].sort()).toEqual([...spec.calls].sort());
  expect([...JOB_STATES].sort()).toEqual([...spec.states].sort());
});

test("the table in src has a decision for every call × state and nothing else", () => {
  for (const call of TRANSITION_CALLS) {
    for (const state of JOB_STATES) {
      const outcome = decide(call, state);
      expect(["move", "noop", "reject"]).toContain(outcome?.kind);
      if (outcome.kind === "move") {
        expect(JOB_STATES).toContain(outcome.to);
      }
    }
  }
  // Nothing outside the table gets a decision: no fallback row or column.
  expect(decisionOrNothing("HeartbeatJob", "RUNNING")).toBeUndefined();
  expect(decisionOrNothing("RunJob", "UNSPECIFIED")).toBeUndefined();
});

function decisionOrNothing(call: string, state: string): Outcome | undefined {
  try {
    return decide(call as never, state as never);
  } catch {
    return undefined;
  }
}
