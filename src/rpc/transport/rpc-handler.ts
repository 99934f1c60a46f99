// The Node request handler for every call: the services on Connect's router,
// configured with Connect's own options (limits, compression, decoding
// bounds, the drain signal, the request gate). A path that names no RPC goes
// to `otherPaths`, in one place.
//
// Each call's body reaches Connect through a RequestBody, which the request
// gate (./gate.ts) reads first: a refused call's body is never decoded, and
// an admitted call's one message is decoded once, by the gate, and handed to
// the handler by requestMessageInterceptor. Plain unary gRPC calls may take
// the shorter path of ./grpc-unary.ts instead (GRPC_UNARY_FAST_PATH).

import type { DescService } from "@bufbuild/protobuf";
import { createConnectRouter, createContextValues, type Interceptor, type ServiceImpl } from "@connectrpc/connect";
import { universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { CallLog } from "../call-log.js";
import { COMPRESS_MIN_BYTES, COMPRESSIONS } from "./compression.js";
import { beginCall, type NodeHandler, type NodeRequest, type NodeResponse, pathOf, unanswered } from "./exchange.js";
import { createRequestGate, type GateOptions, type RequestGate, requestMessageInterceptor } from "./gate.js";
import { withGrpcUnaryFastPath } from "./grpc-unary.js";
import { BINARY_READ, JSON_READ } from "./request-message.js";

/** A service and its implementation, as registered with the router. */
export interface RpcService {
  readonly service: DescService;
  readonly implementation: Partial<ServiceImpl<DescService>>;
}

export function rpcService<S extends DescService>(service: S, implementation: Partial<ServiceImpl<S>>): RpcService {
  return { service, implementation: implementation as Partial<ServiceImpl<DescService>> };
}

export interface RpcOptions extends GateOptions {
  readonly services: readonly RpcService[];
  /** The interceptors every admitted call passes, outermost first. */
  readonly interceptors: readonly Interceptor[];
  /** Aborted (with a ConnectError) when the server starts draining: every call's signal aborts with it. */
  readonly shutdownSignal: AbortSignal;
  /** Serve plain unary gRPC calls on ./grpc-unary.ts rather than through Connect. */
  readonly grpcUnaryFastPath: boolean;
  /** Writes each call's log line and metrics once its response has closed. */
  readonly callLog: CallLog;
  /** Answers requests for paths that name no RPC; unset: an empty 404. */
  readonly otherPaths?: NodeHandler;
}

/** The options, and the request gate built from them: what both paths serve calls with. */
export interface RpcSetup extends RpcOptions {
  readonly gate: RequestGate;
}

export function createRpcHandler(options: RpcOptions): NodeHandler {
  const setup: RpcSetup = { ...options, gate: createRequestGate(options) };
  const connect = connectHandler(setup);
  return options.grpcUnaryFastPath ? withGrpcUnaryFastPath(connect, setup) : connect;
}

function connectHandler(options: RpcSetup): NodeHandler {
  const router = createConnectRouter({
    interceptors: [requestMessageInterceptor, ...options.interceptors],
    requestGate: options.gate,
    // The gate reads and bounds every call that takes one message; these hold for the others (reflection).
    readMaxBytes: options.maxMessageBytes,
    binaryOptions: BINARY_READ,
    // JSON answers (Connect, gRPC-Web) carry every field: a no-op's `changed: false`, a new job's `attempt: 0`.
    jsonOptions: { ...JSON_READ, alwaysEmitImplicit: true },
    acceptCompression: [...COMPRESSIONS],
    compressMinBytes: COMPRESS_MIN_BYTES,
    shutdownSignal: options.shutdownSignal,
  });
  for (const { service, implementation } of options.services) router.service(service, implementation);
  const handlers = new Map(router.handlers.map((handler) => [handler.requestPath, handler]));

  return (request, response) => {
    const handler = handlers.get(pathOf(request));
    if (handler === undefined) return (options.otherPaths ?? notFound)(request, response);
    const values = createContextValues();
    const body = beginCall(request, response, values, options.callLog);
    const universal = { ...universalRequestFromNodeRequest(request as never, response as never, undefined, values), body };
    // The gate checks the body's announced length (RequestBody.announcedLength); Connect may read a stand-in of another length.
    universal.header.delete("content-length");
    handler(universal)
      .then((answer) => universalResponseToNodeResponse(answer, response as never))
      .catch((reason: unknown) => unanswered(handler.method.name, reason, request, response, options.log));
  };
}

function notFound(_request: NodeRequest, response: NodeResponse): void {
  response.statusCode = 404;
  response.end();
}
