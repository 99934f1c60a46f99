// Every error a caller sees becomes a ConnectError here, and only here, with
// a google.rpc.ErrorInfo (domain jobs.v1) that names the call: domain errors
// by their kind; the transport's refusals of a request (too large, not a
// message, an encoding the server lacks, a body that does not hold exactly
// one message); a call its client ended; and anything unexpected, which is a
// bug: INTERNAL, with a reference that the error log line carries.

import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { DomainError, type ErrorKind } from "../domain/errors.js";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import type { Logger } from "../log.js";

export const ERROR_DOMAIN = "jobs.v1";

const CODES: Record<ErrorKind, Code> = {
  invalid_argument: Code.InvalidArgument,
  unauthenticated: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
  not_found: Code.NotFound,
  failed_precondition: Code.FailedPrecondition,
  out_of_range: Code.OutOfRange,
  resource_exhausted: Code.ResourceExhausted,
  unavailable: Code.Unavailable,
};

/**
 * The status for `error`, raised by or on behalf of `call`. `signal` is the
 * call's: once it has aborted, an unexpected error (a stream that closed
 * early, say) is the client leaving, not a fault.
 */
export function toConnectError(error: unknown, call: string, log: Logger, signal?: AbortSignal): ConnectError {
  if (error instanceof DomainError) {
    return new ConnectError(error.message, CODES[error.kind], undefined, [errorInfo(error.reason, { call, ...error.metadata })]);
  }
  if (error instanceof ConnectError) {
    if (error.details.length > 0) return error;
    return new ConnectError(error.rawMessage, error.code, error.metadata, [errorInfo(reasonFor(error.code), { call })], error.cause);
  }
  const ended = clientEnded(error, signal, call);
  if (ended) return ended;
  // A bug, not the caller's doing: log it in full, tell the caller only a reference.
  const reference = randomUUID();
  log.error("internal error", {
    call,
    reference,
    error: error instanceof Error ? error.message : String(error),
    stack: error instanceof Error ? error.stack : undefined,
  });
  return new ConnectError(`internal error; the server logged it with reference ${reference}`, Code.Internal, undefined, [
    errorInfo("INTERNAL", { call, reference }),
  ]);
}

/** Node's words for a stream or socket that its peer closed or reset. */
const PEER_GONE = new Set(["ERR_STREAM_PREMATURE_CLOSE", "ECONNRESET", "EPIPE", "ERR_HTTP2_STREAM_ERROR", "ERR_HTTP2_INVALID_STREAM", "ABORT_ERR"]);

/**
 * CANCELLED (or DEADLINE_EXCEEDED) when `error` means that the call's client
 * ended it: its signal has aborted (the client reset the stream, closed the
 * connection, or let the deadline pass), or the error is Node's word for a
 * peer that went away. Null when the call is still wanted, or when it was
 * the server that ended it (draining).
 */
export function clientEnded(error: unknown, signal: AbortSignal | undefined, call: string): ConnectError | null {
  if (signal?.aborted) {
    const reason: unknown = signal.reason;
    return reason instanceof ConnectError && reasonOf(reason) === SERVER_DRAINING ? null : callLeft(signal, call);
  }
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && PEER_GONE.has(code) ? callLeft(signal, call) : null;
}

/** The status of a call its client left: DEADLINE_EXCEEDED if its deadline is why, else CANCELLED. */
export function callLeft(signal: AbortSignal | undefined, call: string): ConnectError {
  const reason: unknown = signal?.aborted ? signal.reason : undefined;
  if (reason instanceof ConnectError && reason.code === Code.DeadlineExceeded) {
    return new ConnectError("the call's deadline passed", Code.DeadlineExceeded, undefined, [errorInfo("DEADLINE_EXCEEDED", { call })]);
  }
  return new ConnectError("the client ended the call", Code.Canceled, undefined, [errorInfo("CANCELLED", { call })]);
}

/** The reasons a call's own signal aborts with, as Connect's handlers word them (no ErrorInfo: nobody sees these on the wire). */
export const SIGNAL_CANCELLED = new ConnectError("the client cancelled the call", Code.Canceled);
export const SIGNAL_DEADLINE_EXCEEDED = new ConnectError("the operation timed out", Code.DeadlineExceeded);

const SERVER_DRAINING = "SERVER_DRAINING";

/** What the drain signal aborts with: every call's signal aborts with it, and streams end so that clients go elsewhere. */
export function serverDraining(): ConnectError {
  return new ConnectError("the server is shutting down; retry on another replica", Code.Unavailable, undefined, [errorInfo(SERVER_DRAINING, {})]);
}

/** A thrown value that is not an error the service meant, in Connect's words: nothing of it reaches the caller. */
export function internalError(cause: unknown): ConnectError {
  return cause instanceof ConnectError ? cause : new ConnectError("internal error", Code.Internal, undefined, undefined, cause);
}

// The transport's refusals of a request, before any handler runs.

/** `size` null: a compressed message that decompresses to more than `max`. */
export function messageTooLarge(size: number | null, max: number, call: string): ConnectError {
  return new ConnectError(
    `the request message is ${size === null ? "once decompressed" : `${size} bytes,`} over this server's limit of ${max} bytes (MAX_MESSAGE_BYTES)`,
    Code.ResourceExhausted,
    undefined,
    [errorInfo("MESSAGE_TOO_LARGE", { call, limit: String(max), ...(size === null ? {} : { size: String(size) }) })],
  );
}

/** The body is not a message of the method's input type, or does not decompress. */
export function malformedMessage(why: string, call: string): ConnectError {
  return new ConnectError(why, Code.InvalidArgument, undefined, [errorInfo("MALFORMED_MESSAGE", { call })]);
}

/** The body ended inside an envelope (its 5-byte header or its message): Connect's words and code. */
export function incompleteEnvelope(call: string): ConnectError {
  return malformedMessage("protocol error: incomplete envelope", call);
}

/** "unary" or "server-streaming": the methods that take exactly one request message. */
export type SingleMessageKind = "unary" | "server-streaming";

export function missingMessage(kind: SingleMessageKind, call: string): ConnectError {
  return new ConnectError(`protocol error: missing input message for ${kind} method`, Code.Unimplemented, undefined, [errorInfo("MALFORMED_MESSAGE", { call })]);
}

export function extraMessage(kind: SingleMessageKind, call: string): ConnectError {
  return new ConnectError(`protocol error: received extra input message for ${kind} method`, Code.Unimplemented, undefined, [
    errorInfo("MALFORMED_MESSAGE", { call }),
  ]);
}

/** An encoding the server lacks; `acceptHeader` names the header that tells the client which it has. */
export function unsupportedEncoding(requested: string, supported: string, acceptHeader: string, call: string): ConnectError {
  return new ConnectError(
    `unknown compression "${requested}": supported encodings are ${supported}`,
    Code.Unimplemented,
    { [acceptHeader]: supported },
    [errorInfo("UNSUPPORTED_ENCODING", { call })],
  );
}

/** The ErrorInfo reason of an error made here (undefined for one made elsewhere, which has none). */
export function reasonOf(error: ConnectError): string | undefined {
  for (const detail of error.details) {
    if ("desc" in detail && detail.desc === ErrorInfoSchema) return (detail.value as { reason?: string }).reason;
  }
  return undefined;
}

/** The status code's name as logs and metrics write it, gRPC's in lower case: "ok", "not_found", "cancelled" … */
export function codeName(code: Code | undefined): string {
  if (code === undefined) return "ok";
  if (code === Code.Canceled) return "cancelled";
  return Code[code].replace(/[A-Z]/g, (c, i: number) => (i ? "_" : "") + c).toLowerCase();
}

function reasonFor(code: Code): string {
  return codeName(code).toUpperCase();
}

function errorInfo(reason: string, metadata: Record<string, string>) {
  return { desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { reason, domain: ERROR_DOMAIN, metadata }) };
}
