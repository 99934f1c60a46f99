// Unary gRPC calls (application/grpc or application/grpc+proto over HTTP/2,
// request not compressed) served without Connect's streaming pipeline.
//
// Connect serves every gRPC call, unary ones too, as a stream: request and
// response each pass through a chain of async generators (split, decompress,
// parse, invoke, serialize, compress, join), after the node adapter has turned
// the request into its universal form. On the calls executors make at every
// job step that machinery was the largest single cost in the server's profile
// (see the README's Performance section). A unary call is one message in and
// one out, so here it is read whole from the HTTP/2 stream (Node's stream API,
// not its request/response compatibility objects), decoded, handed to the
// same interceptors and the same service implementation, and answered in one
// go, closed by the trailers Connect's setTrailerStatus builds. It answers as
// Connect's gRPC handler does, byte for byte in status, message and details
// (test/rpc/grpc-unary.test.ts compares the two). Everything else (streams,
// gRPC-Web, the Connect protocol, JSON, compressed requests) goes to Connect.

import http2 from "node:http2";
import { create, type DescMessage, type DescMethodUnary, type DescService, type MessageShape, toBinary } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextValues,
  createContextValues,
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

export type ServeUnary = (entry: UnaryMethod, stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => Promise<void>;

/** The reasons a call's signal aborts with, made once: an error's stack costs more than the rest of a small call. */
const CLIENT_CANCELLED = new ConnectError("the client cancelled the call", Code.Canceled);
const DEADLINE_EXCEEDED = new ConnectError("the operation timed out", Code.DeadlineExceeded);

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

  return async function serve(entry, stream, headers) {
    const call = entry.method.name;
    const timeout = parseTimeout(headerValue(headers["grpc-timeout"]), Number.MAX_SAFE_INTEGER);
    const context = new UnaryCallContext(entry, headers, timeout.timeoutMs);
    // Compatibility mode swallows a stream's errors; here they would be thrown
    // as uncaught. A stream that fails ends the call's signal like a reset.
    const onStreamError = () => context.abort(CLIENT_CANCELLED);
    stream.on("error", onStreamError);
    // A reset by the client ends the call's signal (as in connect-node); a stream that ends normally costs nothing here.
    const onAborted = () => context.abort(CLIENT_CANCELLED);
    stream.once("aborted", onAborted);
    const compression = compressionNegotiate(compressions, null, headerValue(headers["grpc-accept-encoding"]), "grpc-accept-encoding").response;
    if (compression !== null) context.responseHeader.set("grpc-encoding", compression.name);

    let body: Uint8Array | null = null;
    try {
      if (timeout.error) throw timeout.error;
      const input = singleMessage(entry.method.input, await readBody(stream, context.signal, maxMessageBytes, call), call);
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
      context.end();
      stream.off("aborted", onAborted);
    }
    if (stream.destroyed || stream.closed) return;
    const trailers = nodeHeaders(context.responseTrailer);
    stream.once("wantTrailers", () => stream.sendTrailers(trailers));
    stream.respond({ ":status": 200, ...nodeHeaders(context.responseHeader) }, { waitForTrailers: true });
    if (body === null) stream.end();
    else stream.end(body);
  };
}

/**
 * A unary call's HandlerContext, made for the one call this path serves
 * rather than by Connect's createHandlerContext, which makes a deadline
 * signal and a second, linked abort controller for every call and aborts
 * them at its end, dispatching an Event. Here one controller serves as the
 * call's signal, and a deadline timer exists only when the client set one.
 * The signal aborts on the client's reset or the deadline; a call that ends
 * normally leaves it as it is: nothing of a unary call outlives its answer.
 */
class UnaryCallContext implements HandlerContext {
  readonly service: DescService;
  readonly method: DescMethodUnary;
  readonly protocolName = "grpc";
  readonly requestMethod = "POST";
  readonly url: string;
  readonly requestHeader: Headers;
  readonly responseHeader = new Headers({ "content-type": "application/grpc+proto" });
  readonly responseTrailer = new Headers({ "grpc-status": grpcStatusOk });
  readonly values: ContextValues = createContextValues();
  private readonly controller = new AbortController();
  private readonly deadline: number | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(entry: UnaryMethod, headers: http2.IncomingHttpHeaders, timeoutMs: number | undefined) {
    this.service = entry.service;
    this.method = entry.method;
    this.url = `${headers[":scheme"]}://${headers[":authority"] ?? headers.host}${headers[":path"]}`;
    this.requestHeader = requestHeaders(headers);
    if (timeoutMs !== undefined) {
      this.deadline = Date.now() + timeoutMs;
      if (timeoutMs <= 0) this.controller.abort(DEADLINE_EXCEEDED);
      else this.timer = setTimeout(() => this.abort(DEADLINE_EXCEEDED), timeoutMs);
    }
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  readonly timeoutMs = (): number | undefined => (this.deadline === undefined ? undefined : this.deadline - Date.now());

  /** The client reset the call, or its deadline passed. */
  abort(reason: ConnectError): void {
    this.end();
    if (!this.controller.signal.aborted) this.controller.abort(reason);
  }

  /** The call is over: no deadline any more. */
  end(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }
}

/**
 * Ends a call whose serving failed outside the handler's reach (a header the
 * response cannot carry, say) with RST_STREAM INTERNAL_ERROR, which gRPC
 * clients report as INTERNAL, so that the caller is not left waiting for its
 * deadline. The response's own headers may be what failed, so none are sent.
 */
export function resetWithInternalError(stream: http2.Http2Stream): void {
  if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
}

/** The implementation wrapped in the interceptors, as Connect wraps it for each call. */
function intercepted(entry: UnaryMethod, context: HandlerContext, interceptors: Interceptor[]) {
  type Next = (request: UnaryRequest<DescMethodUnary["input"], DescMethodUnary["output"]>) => Promise<UnaryResponse<DescMethodUnary["input"], DescMethodUnary["output"]>>;
  const implementation: Next = async (request) => {
    // What an interceptor may have replaced in the request, over the call's context.
    const handlerContext: HandlerContext = {
      method: context.method,
      service: request.service,
      signal: request.signal,
      timeoutMs: context.timeoutMs,
      requestMethod: context.requestMethod,
      requestHeader: request.header,
      responseHeader: context.responseHeader,
      responseTrailer: context.responseTrailer,
      protocolName: context.protocolName,
      values: request.contextValues,
      url: context.url,
    };
    const result = await entry.impl(request.message as never, handlerContext);
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

/** The request's headers without HTTP/2's pseudo-headers. */
function requestHeaders(headers: http2.IncomingHttpHeaders): Headers {
  const result = new Headers();
  for (const name in headers) {
    if (name.startsWith(":")) continue;
    const value = headerValue(headers[name]);
    if (value !== null) result.set(name, value);
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
function readBody(stream: http2.ServerHttp2Stream, signal: AbortSignal, max: number, call: string): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    /** The first envelope's announced length, once its 5-byte header is in. */
    let announced = -1;
    const finish = (error: unknown, body?: Uint8Array) => {
      stream.off("data", onData);
      stream.off("end", onEnd);
      stream.off("error", onError);
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
    stream.on("data", onData);
    stream.on("end", onEnd);
    stream.on("error", onError);
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
