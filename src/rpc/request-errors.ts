// The errors a request earns before any handler sees it, built alike by the
// Connect adapter's body check and by the unary gRPC path: the message is too
// large (RESOURCE_EXHAUSTED), is not a message of the method's input type
// (INVALID_ARGUMENT), or the body does not hold exactly the one message the
// method takes (Connect's codes and wording), each with an ErrorInfo like
// every other error.

import { type DescMessage, fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { errorInfo } from "./interceptors.js";

export const FLAGGED_COMPRESSED_WITHOUT_ENCODING = "the message is flagged compressed, but the request names no encoding (grpc-encoding)";

/** `size` null: a compressed message that decompresses to more than `max`. */
export function tooLarge(size: number | null, max: number, call: string): ConnectError {
  return new ConnectError(
    `the request message is ${size === null ? "once decompressed" : `${size} bytes,`} over this server's limit of ${max} bytes (MAX_MESSAGE_BYTES)`,
    Code.ResourceExhausted,
    undefined,
    [errorInfo("MESSAGE_TOO_LARGE", { call, limit: String(max), ...(size === null ? {} : { size: String(size) }) })],
  );
}

export function malformed(message: string, call: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument, undefined, [errorInfo("MALFORMED_MESSAGE", { call })]);
}

/** The message decoded, or MALFORMED_MESSAGE saying why it is not one. */
export function decodeRequest<Desc extends DescMessage>(input: Desc, bytes: Uint8Array, call: string) {
  try {
    return fromBinary(input, bytes);
  } catch (error) {
    throw malformed(`the request is not a valid ${input.typeName} message: ${error instanceof Error ? error.message : String(error)}`, call);
  }
}

/** "unary" or "server-streaming": the methods that take exactly one request message. */
export type SingleMessageKind = "unary" | "server-streaming";

/** The body ended inside an envelope (its 5-byte header or its message). */
export function incompleteEnvelope(call: string): ConnectError {
  return new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument, undefined, [errorInfo("MALFORMED_MESSAGE", { call })]);
}

export function missingMessage(kind: SingleMessageKind, call: string): ConnectError {
  return new ConnectError(`protocol error: missing input message for ${kind} method`, Code.Unimplemented, undefined, [
    errorInfo("MALFORMED_MESSAGE", { call }),
  ]);
}

export function extraMessage(kind: SingleMessageKind, call: string): ConnectError {
  return new ConnectError(`protocol error: received extra input message for ${kind} method`, Code.Unimplemented, undefined, [
    errorInfo("MALFORMED_MESSAGE", { call }),
  ]);
}
