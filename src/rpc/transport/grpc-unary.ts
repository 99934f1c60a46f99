// Plain unary gRPC calls (HTTP/2, binary, request not compressed: what stock
// gRPC clients send at every job step) served without Connect's per-call
// stream pipeline, which costs more server CPU than the rest of such a call
// (docs/performance.md). The gate reads the message as for any call; the same
// interceptors and implementation answer it in one write, closed by the
// trailers Connect's setTrailerStatus builds, byte for byte what Connect's
// gRPC handler would send (test/rpc/grpc-unary.test.ts compares the two).
// GRPC_UNARY_FAST_PATH=false turns it off. The one module that imports
// Connect's protocol internals, which do not follow semantic versioning; to
// remove it: this file, its test, the setting, one call in ./rpc-handler.ts.

import http2 from "node:http2";
import { create, type DescMethodUnary, type DescService, toBinary } from "@bufbuild/protobuf";
import {
  type ContextValues,
  createContextValues,
  createServiceImplSpec,
  type HandlerContext,
  type Interceptor,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { compressedFlag, compressionNegotiate, encodeEnvelope } from "@connectrpc/connect/protocol";
import { grpcStatusOk, parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { noteOutcome } from "../call-log.js";
import { internalError, SIGNAL_CANCELLED, SIGNAL_DEADLINE_EXCEEDED, toConnectError } from "../errors.js";
import { type Compression, COMPRESS_MIN_BYTES, COMPRESSIONS } from "./compression.js";
import { beginCall, type NodeHandler, pathOf, unanswered } from "./exchange.js";
import { requestMessageKey } from "./gate.js";
import type { RpcSetup } from "./rpc-handler.js";

/** A unary method and its implementation, as registered with the router. */
interface UnaryMethod {
  readonly service: DescService;
  readonly method: DescMethodUnary;
  readonly impl: (request: never, context: HandlerContext) => unknown;
}

const GRPC_BINARY = /^application\/grpc(\+proto)?$/i;

/** The encodings a response may be compressed with, as compressionNegotiate takes them. */
const ACCEPTED = [...COMPRESSIONS];

/** Whether this path serves a request with these headers: gRPC, binary, over HTTP/2, request messages not compressed. */
export function isPlainGrpcUnary(method: string, httpVersionMajor: number, headers: http2.IncomingHttpHeaders): boolean {
  if (method !== "POST" || httpVersionMajor !== 2) return false;
  const type = headers["content-type"];
  if (type === undefined || !GRPC_BINARY.test(type)) return false;
  const encoding = headers["grpc-encoding"];
  return encoding === undefined || encoding === "identity";
}

/** `next`, except that the plain unary gRPC calls among its requests are served here. */
export function withGrpcUnaryFastPath(next: NodeHandler, options: RpcSetup): NodeHandler {
  const unary = new Map<string, UnaryMethod>();
  for (const { service, implementation } of options.services) {
    for (const spec of Object.values(createServiceImplSpec(service, implementation).methods)) {
      if (spec.kind !== "unary") continue;
      unary.set(`/${service.typeName}/${spec.method.name}`, { service, method: spec.method, impl: spec.impl as UnaryMethod["impl"] });
    }
  }
  return (request, response) => {
    const entry = isPlainGrpcUnary(request.method ?? "", request.httpVersionMajor, request.headers) ? unary.get(pathOf(request)) : undefined;
    if (entry === undefined || !("stream" in request) || !("stream" in response)) return next(request, response);
    serve(entry, request, response, options).catch((reason: unknown) => unanswered(entry.method.name, reason, request, response, options.log));
  };
}

async function serve(entry: UnaryMethod, request: http2.Http2ServerRequest, response: http2.Http2ServerResponse, options: RpcSetup): Promise<void> {
  const timeout = parseTimeout(headerValue(request.headers["grpc-timeout"]), Number.MAX_SAFE_INTEGER);
  const context = new UnaryCallContext(entry, request, timeout.timeoutMs);
  beginCall(request, response, context.values, options.callLog);
  // A reset by the client ends the call's signal (as in connect-node); a call that ends normally costs nothing here.
  const onAborted = () => context.abort(SIGNAL_CANCELLED);
  request.once("aborted", onAborted);
  const compression = compressionNegotiate(ACCEPTED, null, headerValue(request.headers["grpc-accept-encoding"]), "grpc-accept-encoding").response;
  if (compression !== null) context.responseHeader.set("grpc-encoding", compression.name);

  let body: Uint8Array | null = null;
  try {
    // The gate first, then the deadline's header: Connect's gRPC handler raises a bad grpc-timeout as it reads the message.
    await options.gate(context);
    if (timeout.error) throw timeout.error;
    const answer = await intercepted(entry, context, options.interceptors)({
      stream: false,
      service: entry.service,
      method: entry.method,
      requestMethod: context.requestMethod,
      url: context.url,
      signal: context.signal,
      header: context.requestHeader,
      contextValues: context.values,
      message: context.values.get(requestMessageKey) as never,
    });
    replaceHeaders(answer.header, context.responseHeader);
    replaceHeaders(answer.trailer, context.responseTrailer);
    body = await envelope(toBinary(entry.method.output, answer.message), compression);
  } catch (reason) {
    const failure = internalError(reason);
    // A bad grpc-timeout is refused here, past the gate and before any interceptor: noted as Connect's refusal would be.
    noteOutcome(context.values, toConnectError(failure, entry.method.name, options.log));
    setTrailerStatus(context.responseTrailer, failure);
  } finally {
    context.end();
    request.off("aborted", onAborted);
  }
  if (response.stream.destroyed || response.stream.closed) return;
  response.writeHead(200, nodeHeaders(context.responseHeader));
  response.addTrailers(nodeHeaders(context.responseTrailer));
  if (body === null) response.end();
  else response.end(body);
}

/**
 * A unary call's HandlerContext, made for the one call this path serves
 * rather than by Connect's createHandlerContext, which makes a deadline
 * signal and a second, linked abort controller for every call and aborts
 * them at its end, dispatching an Event. Here one controller serves as the
 * call's signal, and a deadline timer exists only when the client set one.
 * The signal aborts on the client's reset or the deadline (a unary call in
 * flight when the server drains is let finish); a call that ends normally
 * leaves it as it is: nothing of a unary call outlives its answer.
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

  constructor(entry: UnaryMethod, request: http2.Http2ServerRequest, timeoutMs: number | undefined) {
    this.service = entry.service;
    this.method = entry.method;
    this.url = `${request.scheme}://${request.authority}${request.url}`;
    this.requestHeader = requestHeaders(request.headers);
    if (timeoutMs !== undefined) {
      this.deadline = Date.now() + timeoutMs;
      if (timeoutMs <= 0) this.controller.abort(SIGNAL_DEADLINE_EXCEEDED);
      else this.timer = setTimeout(() => this.abort(SIGNAL_DEADLINE_EXCEEDED), timeoutMs);
    }
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  readonly timeoutMs = (): number | undefined => (this.deadline === undefined ? undefined : this.deadline - Date.now());

  /** The client reset the call, or its deadline passed. */
  abort(reason: unknown): void {
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

/** The implementation wrapped in the interceptors, as Connect wraps it for each call. */
function intercepted(entry: UnaryMethod, context: HandlerContext, interceptors: readonly Interceptor[]) {
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

/** The response message behind gRPC's 5-byte prefix, compressed when it is large and the client accepts an encoding. */
async function envelope(message: Uint8Array, compression: Compression | null): Promise<Uint8Array> {
  if (compression === null || message.byteLength < COMPRESS_MIN_BYTES) return encodeEnvelope(0, message);
  return encodeEnvelope(compressedFlag, await compression.compress(message));
}
