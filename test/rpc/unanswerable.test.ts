// A call whose answer cannot be written (an interceptor sets a header HTTP/2
// forbids) is reset INTERNAL_ERROR at once and logged as a fault, not left
// to the caller's deadline, on plain unary gRPC and on gRPC-Web alike; the
// next call is served.

import http2 from "node:http2";
import { expect, test } from "@jest/globals";
import type { Interceptor } from "@connectrpc/connect";
import { Health } from "../../src/gen/grpc/health/v1/health_pb.js";
import { createLogger } from "../../src/log.js";
import { createHealthService, HealthState } from "../../src/rpc/health.js";
import { rpcService } from "../../src/rpc/transport/rpc-handler.js";
import { healthCheck, transportOnly } from "../support/transport.js";

test.each([
  ["plain unary gRPC", "application/grpc"],
  ["gRPC-Web", "application/grpc-web+proto"],
])("%s: reset INTERNAL_ERROR at once, not left to the caller's deadline, and the server serves on", async (_what, contentType) => {
  const lines: string[] = [];
  const badHeader: Interceptor = (next) => async (req) => {
    const res = await next(req);
    if (req.header.get("x-test-break") === "1") res.header.set("transfer-encoding", "chunked");
    return res;
  };
  const listener = await transportOnly([rpcService(Health, createHealthService(new HealthState()))], [badHeader], true, createLogger("error", (line) => lines.push(line)));
  const health = http2.connect(`http://127.0.0.1:${listener.port}`);
  try {
    expect(await healthCheck(health, contentType, { "x-test-break": "1" })).toEqual({ rstCode: http2.constants.NGHTTP2_INTERNAL_ERROR, grpcStatus: undefined });
    expect(lines.join("\n")).toMatch(/handler failed/);
    expect(await healthCheck(health, contentType)).toEqual({ rstCode: http2.constants.NGHTTP2_NO_ERROR, grpcStatus: "0" });
  } finally {
    health.close();
    listener.drain();
    listener.destroy();
  }
});
