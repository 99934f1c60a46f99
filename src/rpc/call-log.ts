// One log line and the metrics of every RPC (LOG_LEVEL info writes one line
// per call), written by the transport once the call's response has closed,
// from what was noted on the way: the request gate notes a call it refuses
// (token, scope, size, a body that is not one valid message); the outcome
// interceptor notes what the handler came to. Only at the close is it known
// whether the answer went out: a call whose client reset it, closed its
// connection or let its deadline pass is CANCELLED or DEADLINE_EXCEEDED, at
// info, whatever its handler did. Only INTERNAL, a bug, is an error line.

import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, type ConnectError, type ContextValues, createContextKey } from "@connectrpc/connect";
import { principalKey } from "../domain/principal.js";
import { TRANSITION_CALLS } from "../domain/states.js";
import { JobService } from "../gen/jobs/v1/job_service_pb.js";
import type { Logger } from "../log.js";
import type { Metrics, TransitionOutcome } from "../metrics.js";
import { callerKey, logFieldsKey } from "./context.js";
import { callLeft, codeName, reasonOf, toConnectError } from "./errors.js";

/** What is known of a call as it goes: made by the request gate, its outcome noted by the outcome interceptor or the gate's refusal. */
export interface CallRecord {
  readonly service: DescService;
  readonly method: DescMethod;
  /** performance.now() when the call began. */
  readonly started: number;
  /** The call's signal: its deadline, its client's reset. */
  readonly signal: AbortSignal;
  /** The job its request named, for a call its handler refused before noting one. */
  requestedJobId?: string;
  /** Set once the handler has finished (undefined failure: OK), or the gate refused the call. */
  outcome?: { readonly failure: ConnectError | undefined; readonly refused: boolean };
}

export const callRecordKey = createContextKey<CallRecord | undefined>(undefined, { description: "call record" });

/** Notes how the call came out, unless that is already noted (a refusal stands). */
export function noteOutcome(values: ContextValues, failure: ConnectError | undefined, refused = false): void {
  const call = values.get(callRecordKey);
  if (call !== undefined) call.outcome ??= { failure, refused };
}

const TRANSITIONS: ReadonlySet<string> = new Set(TRANSITION_CALLS);
const TRANSITION_REFUSALS: Record<string, TransitionOutcome> = { INVALID_TRANSITION: "rejected", STALE_ATTEMPT: "stale_attempt" };

export class CallLog {
  constructor(
    private readonly log: Logger,
    private readonly metrics?: Metrics,
  ) {}

  /**
   * The call's response has closed; `answered`: its answer went out whole.
   * A call with no outcome noted was refused by Connect itself after the
   * gate (a malformed grpc-timeout), which is its signal's reason. A call
   * whose answer did not go out, and that had not failed first, was left by
   * its client.
   */
  closed(values: ContextValues, answered: boolean): void {
    const call = values.get(callRecordKey);
    if (call === undefined) return;
    const name = call.method.name;
    let failure = call.outcome ? call.outcome.failure : call.signal.aborted ? toConnectError(call.signal.reason, name, this.log, call.signal) : undefined;
    if (!answered && (call.outcome === undefined || failure === undefined)) failure = callLeft(call.signal, name);
    this.write(call, values, failure, call.outcome?.refused ?? false);
  }

  private write(call: CallRecord, values: ContextValues, failure: ConnectError | undefined, refused: boolean): void {
    const method = call.service.typeName === JobService.typeName ? call.method.name : `${call.service.typeName}/${call.method.name}`;
    const code = codeName(failure?.code);
    const reason = failure === undefined ? undefined : reasonOf(failure);
    const facts = values.get(logFieldsKey);
    const elapsedMs = performance.now() - call.started;
    if (this.metrics) {
      this.metrics.rpc(method, code, elapsedMs / 1000);
      if (refused) this.metrics.refused(reason ?? code);
      if (TRANSITIONS.has(method)) {
        const outcome = facts?.changed !== undefined ? (facts.changed ? "changed" : "noop") : TRANSITION_REFUSALS[reason ?? ""];
        if (outcome) this.metrics.transition(method, outcome);
      }
    }
    const level = failure?.code === Code.Internal ? "error" : "info";
    if (!this.log.enabled(level)) return;
    const caller = values.get(callerKey);
    this.log[level]("rpc", {
      method,
      code,
      duration_ms: Math.round(elapsedMs * 100) / 100,
      principal: caller ? principalKey(caller.principal) : undefined,
      token_id: caller?.tokenId,
      job_id: facts?.jobId ?? call.requestedJobId,
      created: facts?.created,
      changed: facts?.changed,
      from_state: facts?.fromState,
      to_state: facts?.toState,
      reason,
      error: failure?.rawMessage,
    });
  }
}
