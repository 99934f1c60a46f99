// docs/contract.md §4 as data. Every decision about a state change comes from this table;
// nothing else in the code base knows which call may move which state.

import type { EventTypeName, JobStateName, TransitionCall } from "./states.js";

export type Outcome =
  | { readonly kind: "move"; readonly to: JobStateName; readonly event: EventTypeName }
  | { readonly kind: "noop" }
  | { readonly kind: "reject" };

const noop: Outcome = { kind: "noop" };
const reject: Outcome = { kind: "reject" };
const to = (state: JobStateName, event: EventTypeName): Outcome => ({ kind: "move", to: state, event });

const started = to("RUNNING", "STARTED");
const completed = to("COMPLETED", "COMPLETED");
const failed = to("FAILED", "FAILED");
const cancellationRequested = to("PENDING_CANCELLATION", "CANCELLATION_REQUESTED");
const cancelled = to("CANCELLED", "CANCELLED");

// prettier-ignore
const TABLE: Readonly<Record<TransitionCall, Readonly<Record<JobStateName, Outcome>>>> = {
  //                        PENDING                RUNNING                PENDING_CANCELLATION  COMPLETED  FAILED   CANCELLED
  RunJob:                 { PENDING: started,               RUNNING: noop,                  PENDING_CANCELLATION: reject,    COMPLETED: noop, FAILED: started, CANCELLED: noop },
  CompleteJob:            { PENDING: completed,             RUNNING: completed,             PENDING_CANCELLATION: completed, COMPLETED: noop, FAILED: noop,    CANCELLED: noop },
  FailJob:                { PENDING: failed,                RUNNING: failed,                PENDING_CANCELLATION: failed,    COMPLETED: noop, FAILED: noop,    CANCELLED: noop },
  RequestJobCancellation: { PENDING: cancellationRequested, RUNNING: cancellationRequested, PENDING_CANCELLATION: noop,      COMPLETED: noop, FAILED: noop,    CANCELLED: noop },
  CancelJob:              { PENDING: reject,                RUNNING: reject,                PENDING_CANCELLATION: cancelled, COMPLETED: noop, FAILED: noop,    CANCELLED: noop },
};

/** What `call` does to a job in `state`. */
export function decide(call: TransitionCall, state: JobStateName): Outcome {
  return TABLE[call][state];
}
