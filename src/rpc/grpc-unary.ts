// Unary gRPC calls (application/grpc or application/grpc+proto over HTTP/2,
// request not compressed) served without Connect's streaming pipeline.
//
// Connect serves every gRPC call, unary ones too, as a stream: request and
// response each pass through a chain of async generators (split, decompress,
// parse, invoke, serialize, compress, join), after the node adapter has turned
// the request into its universal form. On the calls executors make at every
// job step that machinery was the largest single cost in the server's profile
// (see the README's Performance section). A unary call is one message in and
// one out, so here it is read whole, decoded, handed to the same interceptors
// and the same service implementation, with a HandlerContext made by Connect's
// own createHandlerContext, and answered in one go, closed by the
// trailers Connect's setTrailerStatus builds. It answers as Connect's gRPC
// handler does, byte for byte in status, message and details
// (test/rpc/grpc-unary.test.ts compares the two). Everything else (streams,
// gRPC-Web, the Connect protocol, JSON, compressed requests) goes to Connect.

import http2 from "node:http2";
import { create, type DescMessage, type DescMethodUnary, type DescService, type MessageShape, toBinary } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createHandlerContext,
  type HandlerContext,
  type Interceptor,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { type Compression, compressedFlag, compressionNegotiate, encodeEnvelope } from "@connectrpc/connect/protocol";
import { grpcStatusOk, parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import {
  decodeRequest,
  extraMessage,
  FLAGGED_COMPRESSED_WITHOUT_ENCODING,
  incompleteEnvelope,
  malformed,
  missingMessage,
  tooLarge,
} from "./request-errors.js";

/** A unary method and its implementation, as registered with the router. */
export interface UnaryMethod {
  readonly service: DescService;
  readonly method: DescMethodUnary;
  readonly impl: (request: never, context: HandlerContext) => unknown;
}

export interface GrpcUnaryOptions {
  readonly interceptors: Interceptor[];
  readonly maxMessageBytes: number;
  /** The response compressions, in the server's order of preference, and the size from which a response is compressed: as the router has them. */
  readonly compressions: Compression[];
  readonly compressMinBytes: number;
}

export type ServeUnary = (entry: UnaryMethod, req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => Promise<void>;

/** The reasons a call's signal ends with, made once: an error's stack costs more than the rest of a small call. */
const CLIENT_CANCELLED = new ConnectError("the client cancelled the call", Code.Canceled);
const CALL_ENDED = new ConnectError("the call has ended", Code.Canceled);

const GRPC_BINARY = /^application\/grpc(\+proto)?$/i;

/** Whether this path serves a request with these headers: gRPC, binary, over HTTP/2, request messages not compressed. */
export function isPlainGrpcUnary(method: string, httpVersionMajor: number, headers: http2.IncomingHttpHeaders): boolean {
  if (method !== "POST" || httpVersionMajor !== 2) return false;
  const type = headers["content-type"];
  if (type === undefined || !GRPC_BINARY.test(type)) return false;
  const encoding = headers["grpc-encoding"];
  return encoding === undefined || encoding === "identity";
}

export function createGrpcUnaryServer(options: GrpcUnaryOptions): ServeUnary {
  const { interceptors, maxMessageBytes, compressions, compressMinBytes } = options;

  return async function serve(entry, req, res) {
    const headers = req.headers;
    const call = entry.method.name;
    const timeout = parseTimeout(headerValue(headers["grpc-timeout"]), Number.MAX_SAFE_INTEGER);
    const context = createHandlerContext({
      service: entry.service,
      method: entry.method,
      protocolName: "grpc",
      requestMethod: "POST",
      url: `${req.scheme}://${req.authority}${req.url}`,
      timeoutMs: timeout.timeoutMs,
      requestHeader: requestHeaders(headers),
      responseHeader: { "content-type": "application/grpc+proto" },
      responseTrailer: { "grpc-status": grpcStatusOk },
    });
    // A reset by the client ends the call's signal (as in connect-node); a stream that ends normally costs nothing here.
    req.once("aborted", () => context.abort(CLIENT_CANCELLED));
    const compression = compressionNegotiate(compressions, null, headerValue(headers["grpc-accept-encoding"]), "grpc-accept-encoding").response;
    if (compression !== null) context.responseHeader.set("grpc-encoding", compression.name);

    let body: Uint8Array | null = null;
    try {
      if (timeout.error) throw timeout.error;
      const input = singleMessage(entry.method.input, await readBody(req, context.signal, maxMessageBytes, call), call);
      const response = await intercepted(entry, context, interceptors)({
        stream: false,
        service: entry.service,
        method: entry.method,
        requestMethod: context.requestMethod,
        url: context.url,
        signal: context.signal,
        header: context.requestHeader,
        contextValues: context.values,
        message: input,
      });
      replaceHeaders(response.header, context.responseHeader);
      replaceHeaders(response.trailer, context.responseTrailer);
      body = await envelope(toBinary(entry.method.output, response.message), compression, compressMinBytes);
    } catch (reason) {
      // Connect's wording for anything that is not a ConnectError: nothing of an unexpected error reaches the caller.
      setTrailerStatus(context.responseTrailer, reason instanceof ConnectError ? reason : new ConnectError("internal error", Code.Internal, undefined, undefined, reason));
    } finally {
      // Clears the deadline's timer. With a reason of our own: Connect's default makes a DOMException per call.
      context.abort(CALL_ENDED);
    }
    if (res.destroyed) return;
    res.writeHead(200, nodeHeaders(context.responseHeader));
    res.addTrailers(nodeHeaders(context.responseTrailer));
    if (body === null) res.end();
    else res.end(body);
  };
}

/**
 * Ends a call whose serving failed outside the handler's reach (a header the
 * response cannot carry, say) with RST_STREAM INTERNAL_ERROR, which gRPC
 * clients report as INTERNAL, so that the caller is not left waiting for its
 * deadline. The response's own headers may be what failed, so none are sent.
 */
export function resetWithInternalError(res: http2.Http2ServerResponse): void {
  if (!res.stream.destroyed) res.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
}

/** The implementation wrapped in the interceptors, as Connect wraps it for each call. */
function intercepted(entry: UnaryMethod, context: HandlerContext, interceptors: Interceptor[]) {
  type Next = (request: UnaryRequest<DescMethodUnary["input"], DescMethodUnary["output"]>) => Promise<UnaryResponse<DescMethodUnary["input"], DescMethodUnary["output"]>>;
  const implementation: Next = async (request) => {
    const result = await entry.impl(request.message as never, {
      ...context,
      service: request.service,
      requestHeader: request.header,
      signal: request.signal,
      values: request.contextValues,
    });
    return {
      stream: false,
      service: entry.service,
      method: entry.method,
      header: context.responseHeader,
      trailer: context.responseTrailer,
      message: create(entry.method.output, result as never),
    };
  };
  return interceptors.reduceRight<Next>((next, interceptor) => interceptor(next as never) as never, implementation);
}

/** The request's headers without HTTP/2's pseudo-headers, as the record createHandlerContext turns into Headers. */
function requestHeaders(headers: http2.IncomingHttpHeaders): Record<string, string> {
  const result: Record<string, string> = {};
  for (const name in headers) {
    if (name.startsWith(":")) continue;
    const value = headerValue(headers[name]);
    if (value !== null) result[name] = value;
  }
  return result;
}

function headerValue(value: string | string[] | undefined): string | null {
  if (value === undefined) return null;
  return Array.isArray(value) ? value.join(", ") : value;
}

function nodeHeaders(headers: Headers): Record<string, string> {
  const result: Record<string, string> = {};
  headers.forEach((value, name) => {
    result[name] = value;
  });
  return result;
}

/** An interceptor that returned other Headers objects replaces the context's, as in Connect. */
function replaceHeaders(from: Headers, to: Headers): void {
  if (from === to) return;
  for (const name of [...to.keys()]) to.delete(name);
  from.forEach((value, name) => to.set(name, value));
}

/**
 * The whole request body. Refused as soon as it holds more than one message
 * of the limit (RESOURCE_EXHAUSTED, before the rest is read), and ended by
 * the call's deadline or the client's reset while it is still arriving.
 */
function readBody(req: http2.Http2ServerRequest, signal: AbortSignal, max: number, call: string): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    /** The first envelope's announced length, once its 5-byte header is in. */
    let announced = -1;
    const finish = (error: unknown, body?: Uint8Array) => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      signal.removeEventListener("abort", onAbort);
      if (error === null && body !== undefined) resolve(body);
      else reject(error);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.byteLength;
      parts.push(chunk);
      if (size < 5) return;
      if (announced < 0) {
        announced = (parts.length === 1 ? chunk : Buffer.concat(parts)).readUInt32BE(1);
        if (announced > max) return finish(tooLarge(announced, max, call));
      }
      if (size > 5 + max) finish(tooLarge(size - 5, max, call));
    };
    const onEnd = () => finish(null, parts.length === 1 ? parts[0] : Buffer.concat(parts));
    const onError = (error: Error) => finish(new ConnectError(`the request body could not be read: ${error.message}`, Code.Canceled));
    const onAbort = () => finish(signal.reason);
    if (signal.aborted) return onAbort();
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * The call's one message, decoded. A body that is not exactly one message is
 * refused as Connect's gRPC handler refuses it, in the same order: each
 * message as it completes (compressed flag, then protobuf), then a cut-off
 * envelope, then none or a second message.
 */
function singleMessage<Desc extends DescMessage>(input: Desc, body: Uint8Array, call: string) {
  let offset = 0;
  let first: MessageShape<Desc> | null = null;
  while (offset < body.byteLength) {
    if (body.byteLength - offset < 5) throw incompleteEnvelope(call);
    const length = ((body[offset + 1] << 24) >>> 0) + (body[offset + 2] << 16) + (body[offset + 3] << 8) + body[offset + 4];
    const end = offset + 5 + length;
    if (end > body.byteLength) throw incompleteEnvelope(call);
    if ((body[offset] & 1) !== 0) throw malformed(FLAGGED_COMPRESSED_WITHOUT_ENCODING, call);
    const message = decodeRequest(input, body.subarray(offset + 5, end), call);
    if (first !== null) throw extraMessage("unary", call);
    first = message;
    offset = end;
  }
  if (first === null) throw missingMessage("unary", call);
  return first;
}

/** The response message behind gRPC's 5-byte prefix, compressed when it is large and the client accepts an encoding. */
async function envelope(message: Uint8Array, compression: Compression | null, compressMinBytes: number): Promise<Uint8Array> {
  if (compression === null || message.byteLength < compressMinBytes) return encodeEnvelope(0, message);
  return encodeEnvelope(compressedFlag, await compression.compress(message));
}
