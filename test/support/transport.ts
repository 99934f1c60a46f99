// The transport alone, without a database: a listener and RPC handler
// serving the services a test gives it, for tests of what the transport does
// whatever the service (which path a call takes, a call whose answer cannot
// be written). And a Health Check over raw HTTP/2, in any content type.

import http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import { loadConfig } from "../../src/config.js";
import { HealthCheckRequestSchema } from "../../src/gen/grpc/health/v1/health_pb.js";
import type { Logger } from "../../src/log.js";
import { CallLog } from "../../src/rpc/call-log.js";
import { connectionLimits, type Listener, listen } from "../../src/rpc/transport/listener.js";
import { createRpcHandler, type RpcService } from "../../src/rpc/transport/rpc-handler.js";
import { envelope } from "./raw-calls.js";

/** A listener serving `services` with `interceptors`, the unary gRPC path on or off; the configuration's other defaults. */
export async function transportOnly(
  services: RpcService[],
  interceptors: Interceptor[],
  grpcUnaryFastPath: boolean,
  log: Logger,
  maxMessageBytes = 16 * 1024,
): Promise<Listener> {
  const handler = createRpcHandler({
    services,
    interceptors,
    authenticate: () => Promise.reject(new Error("no JobService here")),
    maxMessageBytes,
    shutdownSignal: new AbortController().signal,
    grpcUnaryFastPath,
    callLog: new CallLog(log),
    log,
  });
  return listen(handler, { host: "127.0.0.1", port: 0, limits: connectionLimits(loadConfig({})) });
}

/** A Health Check over raw HTTP/2 with this content type (and headers); its status, from the trailers or a gRPC-Web body, and the stream's reset code. */
export function healthCheck(session: http2.ClientHttp2Session, contentType: string, headers: http2.OutgoingHttpHeaders = {}) {
  return new Promise<{ rstCode: number | undefined; grpcStatus: string | undefined }>((resolve) => {
    const stream = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Check", "content-type": contentType, te: "trailers", ...headers });
    let grpcStatus: string | undefined;
    stream.on("trailers", (t) => (grpcStatus = String(t["grpc-status"])));
    // gRPC-Web carries its status in the body, after the message: flag 0x80, "grpc-status:0".
    stream.on("data", (chunk: Buffer) => (grpcStatus ??= /grpc-status:\s*(\d+)/.exec(chunk.toString("latin1"))?.[1]));
    stream.on("error", () => {});
    stream.on("close", () => resolve({ rstCode: stream.rstCode, grpcStatus }));
    stream.end(envelope(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: "" }))));
  });
}
