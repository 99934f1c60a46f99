// The request gate: what the transport decides before a call reaches any
// interceptor or handler, given to Connect as its `requestGate` (which runs
// once the headers are in, before Connect reads the body) and called by the
// unary gRPC path alike.
//
// Cheap refusals first, in the contract's order: message size (what the
// headers or the first envelope announce), then the bearer token and the
// scope, from the headers alone: the body of a call refused here is never
// decoded. Then the call's one message is read and decoded, once
// (./request-message.ts). Health and reflection need no token. A refusal
// is thrown as the ConnectError the caller gets (Connect answers it in the
// caller's protocol), and noted as refused: the call's one log line and its
// metrics say so (../call-log.ts).

import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { requireScope } from "../../auth/authenticator.js";
import type { Caller, Scope } from "../../domain/principal.js";
import { JobService } from "../../gen/jobs/v1/job_service_pb.js";
import type { Logger } from "../../log.js";
import { callRecordKey, noteOutcome } from "../call-log.js";
import { callerKey } from "../context.js";
import { toConnectError } from "../errors.js";
import { COMPRESSIONS } from "./compression.js";
import type { RequestBody } from "./request-body.js";
import { messageReader } from "./request-message.js";

/** The call's body, put in its context values by whoever hands the request over (./rpc-handler.ts, ./grpc-unary.ts). */
export const requestBodyKey = createContextKey<RequestBody | undefined>(undefined, { description: "request body" });

/** The call's one message, decoded by the gate; handed to the handler in place of what Connect read. */
export const requestMessageKey = createContextKey<MessageShape<DescMessage> | undefined>(undefined, { description: "request message" });

export type RequestGate = (context: HandlerContext) => Promise<void>;

export interface GateOptions {
  /** The caller that a JobService call's authorization header names; rejects to refuse the call. */
  readonly authenticate: (authorization: string | null) => Promise<Caller>;
  /** MAX_MESSAGE_BYTES: the bound of the message the gate reads (and of what Connect reads itself). */
  readonly maxMessageBytes: number;
  readonly log: Logger;
}

/** Scopes per JobService method: reads need jobs:read, everything else jobs:write. */
const READ_METHODS: ReadonlySet<string> = new Set(["GetJob", "ListJobs", "CountJobs", "ListJobEvents", "WatchJob", "WatchJobs"]);
function scopeFor(method: string): Scope {
  return READ_METHODS.has(method) ? "jobs:read" : "jobs:write";
}

/** How long a refused request's first bytes are waited for, to refuse an oversized one as such. */
const REFUSAL_PEEK_MS = 1000;

export function createRequestGate(options: GateOptions): RequestGate {
  const { authenticate, maxMessageBytes, log } = options;
  return async function gate(context) {
    context.values.set(callRecordKey, { service: context.service, method: context.method, started: performance.now(), signal: context.signal });
    const body = context.values.get(requestBodyKey);
    const reader = body === undefined ? null : messageReader(context, body, COMPRESSIONS, maxMessageBytes);
    try {
      if (context.service.typeName === JobService.typeName) {
        try {
          const caller = await authenticate(context.requestHeader.get("authorization"));
          // Known before the scope check, so that a refused call's log line names who was refused.
          context.values.set(callerKey, caller);
          requireScope(caller, scopeFor(context.method.name), context.method.name);
        } catch (refusal) {
          if (reader !== null) await reader.refuseIfAnnouncedTooLarge(AbortSignal.any([context.signal, AbortSignal.timeout(REFUSAL_PEEK_MS)])).catch(onlySize);
          throw refusal;
        }
      }
      if (reader !== null) context.values.set(requestMessageKey, await reader.read(context.signal));
    } catch (error) {
      const refusal = toConnectError(error, context.method.name, log, context.signal);
      noteOutcome(context.values, refusal, true);
      throw refusal;
    }
  };
}

/** A size refusal stands; anything else (no bytes in time, the client gone) leaves the token's refusal. */
function onlySize(error: unknown): void {
  if (error instanceof ConnectError && error.code === Code.ResourceExhausted) throw error;
}

/** Hands the handler the message the gate decoded, in place of the stand-in Connect read. */
export const requestMessageInterceptor: Interceptor = (next) => (req) => {
  const message = req.contextValues.get(requestMessageKey);
  if (message === undefined) return next(req);
  if (!req.stream) return next({ ...req, message });
  return next({ ...req, message: once(message) } as never);
};

async function* once<T>(message: T): AsyncIterable<T> {
  yield message;
}
