// What interceptors hand to handlers through Connect's context values.

import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { Caller } from "../domain/principal.js";

/** The authenticated caller; set by the auth interceptor before any handler runs. */
export const callerKey = createContextKey<Caller | undefined>(undefined, { description: "authenticated caller" });

/** Facts about a call for its log line and metrics, filled in by handlers and the error interceptor. */
export interface CallFacts {
  jobId?: string;
  /** CreateJob: false when a repeated request_id returned the existing job. */
  created?: boolean;
  /** Transition calls: whether the call changed the job, and its state before and after. */
  changed?: boolean;
  fromState?: string;
  toState?: string;
  /** The ErrorInfo reason of a failed call. */
  reason?: string;
}

export const logFieldsKey = createContextKey<CallFacts | undefined>(undefined, {
  description: "request log fields",
});

export function callerOf(ctx: HandlerContext): Caller {
  const caller = ctx.values.get(callerKey);
  // The auth interceptor runs before every JobService handler; reaching here without a caller is a wiring bug.
  if (!caller) throw new Error("no authenticated caller in context");
  return caller;
}

export function annotate(ctx: HandlerContext, fields: CallFacts): void {
  const log = ctx.values.get(logFieldsKey);
  if (log) Object.assign(log, fields);
}
