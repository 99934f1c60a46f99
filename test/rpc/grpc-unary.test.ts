// Plain unary gRPC calls are served by src/rpc/transport/grpc-unary.ts, not
// by Connect's gRPC handler, unless GRPC_UNARY_FAST_PATH is false; every other
// request goes to Connect. This file holds the two to the same answers: each
// request is sent twice over raw HTTP/2, once as plain gRPC (the unary path)
// and once naming `grpc-encoding: gzip` with the same uncompressed bytes,
// which only Connect serves. The HTTP status, every response header and
// trailer (grpc-status, grpc-message, the ErrorInfo in
// grpc-status-details-bin) and the reply bytes must match, for replies and
// for each way a call is refused. Which requests take which path, with the
// setting on and off, is pinned at the end.

import http2 from "node:http2";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { create, type DescMessage, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { loadConfig } from "../../src/config.js";
import { Health, HealthCheckResponseSchema } from "../../src/gen/grpc/health/v1/health_pb.js";
import { createLogger } from "../../src/log.js";
import { isPlainGrpcUnary } from "../../src/rpc/transport/grpc-unary.js";
import { type RpcService, rpcService } from "../../src/rpc/transport/rpc-handler.js";
import { healthCheck, transportOnly } from "../support/transport.js";
import {
  CreateJobRequestSchema,
  GetJobRequestSchema,
  ListJobsRequestSchema,
  RunJobRequestSchema,
} from "../../src/gen/jobs/v1/job_service_pb.js";
import { JobType } from "../../src/gen/jobs/v1/job_pb.js";
import { jobsClient, type JobsClient } from "../support/grpc.js";
import { startServer, type TestServer } from "../support/harness.js";
import { envelope } from "../support/raw-calls.js";

const MAX_MESSAGE_BYTES = 16 * 1024;

let server: TestServer;
let client: JobsClient;
let session: http2.ClientHttp2Session;
let jobId: string;

beforeAll(async () => {
  server = await startServer({ env: { MAX_MESSAGE_BYTES: String(MAX_MESSAGE_BYTES) } });
  client = jobsClient(server.address, server.tokens.service);
  // Enough jobs with bulky inputs that a page of them passes the 64 KiB from which responses are compressed.
  for (let i = 0; i < 40; i++) {
    const { job } = await client.call("CreateJob", {
      type: "JOB_TYPE_FORECAST",
      company_id: "77",
      input: { forecast: { nql: `select revenue by month ${i} ${"x".repeat(3000)}`, compiled_sql: "SELECT 1" } },
    });
    jobId = job.id as string;
  }
  session = http2.connect(server.url);
  session.on("error", () => {});
});
afterAll(async () => {
  session?.close();
  client?.close();
  await server?.stop();
});

interface Exchange {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly trailers: Record<string, string>;
  /** The reply's message bytes, decompressed if flagged compressed, or "" when there is none. */
  readonly reply: string;
  readonly replyCompressed: boolean;
}

/** One call over raw HTTP/2: everything the response says except its date. */
function exchange(method: string, body: Uint8Array, headers: http2.OutgoingHttpHeaders): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const stream = session.request({
      ":method": "POST",
      ":path": `/jobs.v1.JobService/${method}`,
      "content-type": "application/grpc",
      te: "trailers",
      ...headers,
    });
    let head: http2.IncomingHttpHeaders = {};
    let tail: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on("response", (h) => (head = h));
    stream.on("trailers", (t) => (tail = t));
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("error", reject);
    stream.on("end", () => {
      const data = Buffer.concat(chunks);
      const compressed = data.length > 0 && (data[0] & 1) === 1;
      const message = data.length >= 5 ? data.subarray(5, 5 + data.readUInt32BE(1)) : Buffer.alloc(0);
      resolve({
        status: Number(head[":status"]),
        headers: plain(head),
        trailers: plain(tail),
        reply: (compressed ? gunzipSync(message) : message).toString("base64"),
        replyCompressed: compressed,
      });
    });
    stream.end(body);
  });
}

function plain(headers: http2.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name === "date" || name === ":status" || value === undefined) continue;
    out[name] = String(value);
  }
  return out;
}

/** A raw GetJob call with the service's token; what it sends, and when it ends, is the caller's. */
function openGetJob(headers: http2.OutgoingHttpHeaders = {}): http2.ClientHttp2Stream {
  return session.request({
    ":method": "POST",
    ":path": "/jobs.v1.JobService/GetJob",
    "content-type": "application/grpc",
    te: "trailers",
    authorization: `Bearer ${server.tokens.service}`,
    ...headers,
  });
}

/** The same request by the unary path and by Connect (whose path the gzip request encoding forces). */
async function bothWays(method: string, body: Uint8Array, headers: http2.OutgoingHttpHeaders = {}) {
  const withToken = { authorization: `Bearer ${server.tokens.service}`, "grpc-accept-encoding": "identity", ...headers };
  const unaryPath = await exchange(method, body, withToken);
  const connect = await exchange(method, body, { ...withToken, "grpc-encoding": "gzip" });
  return { unaryPath, connect };
}

function framed<Desc extends DescMessage>(schema: Desc, init: MessageInitShape<Desc>): Buffer {
  return envelope(toBinary(schema, create(schema, init)));
}

const grpcStatus = (e: Exchange) => e.trailers["grpc-status"];

describe("the unary gRPC path answers as Connect's gRPC handler does", () => {
  test("a reply: same headers, trailers and message bytes", async () => {
    const { unaryPath, connect } = await bothWays("GetJob", framed(GetJobRequestSchema, { jobId }));
    expect(grpcStatus(unaryPath)).toBe("0");
    expect(unaryPath.reply.length).toBeGreaterThan(0);
    expect(unaryPath).toEqual(connect);
  });

  test("a large reply to a client that accepts gzip is compressed alike (and decompresses to the same bytes)", async () => {
    const request = framed(ListJobsRequestSchema, { companyId: 77n, pageSize: 40 });
    const { unaryPath, connect } = await bothWays("ListJobs", request, { "grpc-accept-encoding": "gzip" });
    expect(unaryPath.replyCompressed).toBe(true);
    expect(unaryPath.headers["grpc-encoding"]).toBe("gzip");
    expect(unaryPath).toEqual(connect);
    // A small reply to the same client goes uncompressed, under the same grpc-encoding header.
    const small = await bothWays("GetJob", framed(GetJobRequestSchema, { jobId }), { "grpc-accept-encoding": "gzip" });
    expect(small.unaryPath.replyCompressed).toBe(false);
    expect(small.unaryPath).toEqual(small.connect);
  });

  const refusals: Array<[string, string, () => Uint8Array, http2.OutgoingHttpHeaders, string]> = [
    ["an unknown job", "GetJob", () => framed(GetJobRequestSchema, { jobId: "00000000-0000-4000-8000-000000000000" }), {}, "5"],
    ["a job id that is not a UUID", "GetJob", () => framed(GetJobRequestSchema, { jobId: "nope" }), {}, "3"],
    ["a forbidden transition", "RunJob", () => framed(RunJobRequestSchema, { jobId, executorId: "" }), {}, "3"],
    ["an invalid create", "CreateJob", () => framed(CreateJobRequestSchema, { type: JobType.UNSPECIFIED }), {}, "3"],
    ["no token", "GetJob", () => framed(GetJobRequestSchema, { jobId }), { authorization: "" }, "16"],
    ["a wrong token", "GetJob", () => framed(GetJobRequestSchema, { jobId }), { authorization: "Bearer jobs_wrong" }, "16"],
    ["bytes that are not protobuf", "GetJob", () => envelope(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f])), {}, "3"],
    ["an empty body", "GetJob", () => new Uint8Array(0), {}, "12"],
    ["a body shorter than an envelope", "GetJob", () => Buffer.from([0, 0, 0]), {}, "3"],
    ["an envelope cut short", "GetJob", () => framed(GetJobRequestSchema, { jobId }).subarray(0, 20), {}, "3"],
    ["two messages", "GetJob", () => Buffer.concat([framed(GetJobRequestSchema, { jobId }), framed(GetJobRequestSchema, { jobId })]), {}, "12"],
    ["a message and a cut-off one", "GetJob", () => Buffer.concat([framed(GetJobRequestSchema, { jobId }), Buffer.from([0, 0, 0])]), {}, "3"],
    // A second message is refused as one, whatever it holds: it is not decoded.
    ["a valid message then garbage", "GetJob", () => Buffer.concat([framed(GetJobRequestSchema, { jobId }), envelope(Buffer.from([0xff, 0xff]))]), {}, "12"],
    ["an envelope announcing more than the limit", "GetJob", () => Buffer.from([0, 0, 1, 0, 0]), {}, "8"],
    ["a body over the limit", "CreateJob", () => framed(CreateJobRequestSchema, { type: JobType.FORECAST, dataPlaneId: "y".repeat(MAX_MESSAGE_BYTES * 2) }), {}, "8"],
    ["a malformed grpc-timeout", "GetJob", () => framed(GetJobRequestSchema, { jobId }), { "grpc-timeout": "soon" }, "3"],
  ];

  test.each(refusals)("refused alike: %s", async (_what, method, body, headers, code) => {
    const { unaryPath, connect } = await bothWays(method, body(), headers);
    expect(grpcStatus(unaryPath)).toBe(code);
    expect(unaryPath).toEqual(connect);
  });

  test("a body that never ends is answered DEADLINE_EXCEEDED at the call's deadline, not held open", async () => {
    const answer = await new Promise<Record<string, string>>((resolve, reject) => {
      const stream = openGetJob({ "grpc-timeout": "300m" });
      // The answer ends the server's side; the request side stays open, so the trailers are the end of it.
      stream.on("trailers", (t) => {
        resolve(plain(t));
        stream.close(http2.constants.NGHTTP2_CANCEL);
      });
      stream.on("data", () => {});
      stream.on("error", reject);
      // Half a message, and the request side left open.
      stream.write(framed(GetJobRequestSchema, { jobId }).subarray(0, 10));
    });
    expect(answer["grpc-status"]).toBe("4");
  });

  const resets: Array<[string, string, number, boolean]> = [];
  for (const [when, whole] of [
    ["while its body is arriving", false],
    ["once its request is in, before the answer", true],
  ] as const) {
    for (const code of ["CANCEL", "INTERNAL_ERROR", "PROTOCOL_ERROR"] as const) {
      resets.push([code, when, http2.constants[`NGHTTP2_${code}`], whole]);
    }
  }
  test.each(resets)("a call the client resets (%s) %s ends there, and the server serves on", async (_name, _when, code, whole) => {
    const request = framed(GetJobRequestSchema, { jobId });
    await new Promise<void>((resolve) => {
      const stream = openGetJob();
      stream.on("error", () => {});
      stream.on("close", () => resolve());
      if (whole) stream.end(request, () => stream.close(code));
      else stream.write(request.subarray(0, 10), () => stream.close(code));
    });
    const { job } = await client.call("GetJob", { job_id: jobId });
    expect(job.id).toBe(jobId);
  });

  test("the server still serves after all of them", async () => {
    const { job } = await client.call("GetJob", { job_id: jobId });
    expect(job.id).toBe(jobId);
  });
});

describe("which requests take the unary path", () => {
  const h2 = (headers: http2.IncomingHttpHeaders) => isPlainGrpcUnary("POST", 2, headers);

  test("gRPC binary over HTTP/2 with no request compression: what grpc-js and other stock clients send", () => {
    expect(h2({ "content-type": "application/grpc" })).toBe(true);
    expect(h2({ "content-type": "application/grpc+proto" })).toBe(true);
    expect(h2({ "content-type": "application/grpc", "grpc-encoding": "identity", "grpc-accept-encoding": "identity,deflate,gzip" })).toBe(true);
  });

  test("everything else goes to Connect", () => {
    expect(h2({ "content-type": "application/grpc", "grpc-encoding": "gzip" })).toBe(false);
    expect(h2({ "content-type": "application/grpc+json" })).toBe(false);
    expect(h2({ "content-type": "application/grpc-web+proto" })).toBe(false);
    expect(h2({ "content-type": "application/proto" })).toBe(false);
    expect(h2({ "content-type": "application/connect+proto" })).toBe(false);
    expect(h2({})).toBe(false);
    expect(isPlainGrpcUnary("GET", 2, { "content-type": "application/grpc" })).toBe(false);
    expect(isPlainGrpcUnary("POST", 1, { "content-type": "application/grpc" })).toBe(false);
  });
});

describe("GRPC_UNARY_FAST_PATH", () => {
  // Connect aborts a call's signal when the call completes (HandlerContext.signal's documented contract);
  // the unary path leaves it as it is. So a handler can tell which path served it.
  const signals: Array<{ contentType: string; signal: AbortSignal }> = [];
  const recorded: RpcService = rpcService(Health, {
    check(_req, ctx: HandlerContext) {
      signals.push({ contentType: ctx.requestHeader.get("content-type") ?? "", signal: ctx.signal });
      return create(HealthCheckResponseSchema, {});
    },
  });
  const CALLS: Array<[string, http2.OutgoingHttpHeaders]> = [
    ["application/grpc", {}],
    ["application/grpc+proto", {}],
    ["application/grpc", { "grpc-encoding": "gzip" }],
    ["application/grpc-web+proto", {}],
  ];

  /** For each call, whether Connect served it. */
  async function servedByConnect(fastPath: boolean): Promise<boolean[]> {
    signals.length = 0;
    const listener = await transportOnly([recorded], [], fastPath, createLogger("silent"), MAX_MESSAGE_BYTES);
    const session = http2.connect(`http://127.0.0.1:${listener.port}`);
    try {
      for (const [contentType, headers] of CALLS) expect((await healthCheck(session, contentType, headers)).grpcStatus).toBe("0");
    } finally {
      session.close();
      listener.drain();
      listener.destroy();
    }
    expect(signals.map((s) => s.contentType)).toEqual(CALLS.map(([type]) => type));
    return signals.map((s) => s.signal.aborted);
  }

  test("on: plain unary gRPC calls take the unary path, the others Connect", async () => {
    expect(await servedByConnect(true)).toEqual([false, false, true, true]);
  });

  test("off: every call goes through Connect", async () => {
    expect(await servedByConnect(false)).toEqual([true, true, true, true]);
  });

  test("the setting is read from the environment, on unless set false", () => {
    expect(loadConfig({}).grpcUnaryFastPath).toBe(true);
    expect(loadConfig({ GRPC_UNARY_FAST_PATH: "false" }).grpcUnaryFastPath).toBe(false);
  });
});
