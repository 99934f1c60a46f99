// What the transport and the interceptors hand to handlers through Connect's context values.

import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { Caller } from "../domain/principal.js";

/** The authenticated caller; set by the request gate before any interceptor or handler runs. */
export const callerKey = createContextKey<Caller | undefined>(undefined, { description: "authenticated caller" });

/** Facts about a call for its log line and metrics, noted by its handler. */
export interface CallFacts {
  jobId?: string;
  /** CreateJob: false when a repeated request_id returned the existing job. */
  created?: boolean;
  /** Transition calls: whether the call changed the job, and its state before and after. */
  changed?: boolean;
  fromState?: string;
  toState?: string;
}

export const logFieldsKey = createContextKey<CallFacts | undefined>(undefined, {
  description: "request log fields",
});

export function callerOf(ctx: HandlerContext): Caller {
  const caller = ctx.values.get(callerKey);
  // The request gate authenticates every JobService call; reaching here without a caller is a wiring bug.
  if (!caller) throw new Error("no authenticated caller in context");
  return caller;
}

export function annotate(ctx: HandlerContext, fields: CallFacts): void {
  const log = ctx.values.get(logFieldsKey);
  if (log) Object.assign(log, fields);
}
