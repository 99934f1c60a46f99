// What interceptors hand to handlers through Connect's context values.

import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { Caller } from "../domain/principal.js";

/** The authenticated caller; set by the auth interceptor before any handler runs. */
export const callerKey = createContextKey<Caller | undefined>(undefined, { description: "authenticated caller" });

/** Facts about the call for its log line (job id …), filled in by handlers. */
export const logFieldsKey = createContextKey<Record<string, unknown> | undefined>(undefined, {
  description: "request log fields",
});

export function callerOf(ctx: HandlerContext): Caller {
  const caller = ctx.values.get(callerKey);
  // The auth interceptor runs before every JobService handler; reaching here without a caller is a wiring bug.
  if (!caller) throw new Error("no authenticated caller in context");
  return caller;
}

export function annotate(ctx: HandlerContext, fields: Record<string, unknown>): void {
  const log = ctx.values.get(logFieldsKey);
  if (log) Object.assign(log, fields);
}
