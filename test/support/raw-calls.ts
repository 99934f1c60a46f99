// JobService calls at the byte level, over one HTTP/2 connection (node:http2,
// no RPC library): a gRPC body of any bytes behind a 5-byte prefix, and the
// Connect protocol with any JSON text. For tests that send what no generated
// client would (hostile input). The outcome of every call, unary or stream,
// comes back as one shape: the status code name, the ErrorInfo if any, and
// the reply's message bytes. A stream counts as OK once its first message
// arrives, and is cancelled then.

import http2 from "node:http2";
import { fromBinary } from "@bufbuild/protobuf";
import { ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { decodeErrorInfo } from "./grpc.js";

/** gRPC code numbers → names; the Connect protocol uses the same names in lower case. */
export const CODE_NAMES = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
] as const;

export interface RawOutcome {
  /** A gRPC code name (OK, INVALID_ARGUMENT, …), or HANG if no answer came within the client's own deadline. */
  readonly code: string;
  readonly message: string;
  readonly errorInfo?: { reason: string; domain: string; metadata: Record<string, string> };
  /** The first reply message (protobuf bytes for gRPC, JSON text for Connect); undefined on error. */
  readonly reply?: Uint8Array | string;
  /** The HTTP status (Connect's error mapping is visible there). */
  readonly httpStatus: number;
}

export interface RawCaller {
  /** gRPC: `payload` goes in one uncompressed message (prefix written here) unless `framed` says the bytes are the whole body. */
  grpc(method: string, payload: Uint8Array, options?: { token?: string | null; framed?: boolean; headers?: Record<string, string> }): Promise<RawOutcome>;
  /** Connect protocol with a JSON body (text, or bytes such as gzipped JSON): unary as application/json, streams enveloped as application/connect+json. */
  connectJson(method: string, body: string | Uint8Array, options?: { token?: string | null; stream?: boolean; headers?: Record<string, string> }): Promise<RawOutcome>;
  close(): Promise<void>;
}

/** gRPC's 5-byte message prefix: flags, then the length big-endian. */
export function envelope(payload: Uint8Array, flags = 0): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(payload.byteLength, 1);
  return Buffer.concat([head, payload]);
}

/**
 * One HTTP/2 session to `url`; every call is a stream on it. `deadlineMs` is the
 * client's own patience: a call still unanswered then is reported as HANG (and
 * cancelled), never waited on forever.
 */
export function rawCaller(url: string, defaultToken: string, deadlineMs = 15_000): RawCaller {
  const session = http2.connect(url);
  session.on("error", () => {}); // surfaced per call
  const headersFor = (method: string, contentType: string, token: string | null | undefined, extra: http2.OutgoingHttpHeaders = {}) => {
    const t = token === undefined ? defaultToken : token;
    return {
      ":method": "POST",
      ":path": `/jobs.v1.JobService/${method}`,
      "content-type": contentType,
      ...(t === null ? {} : { authorization: `Bearer ${t}` }),
      ...extra,
    };
  };

  /** Sends `body`, collects the response until `done` says enough (or it ends), and hands everything to `finish`. */
  function exchange(
    headers: http2.OutgoingHttpHeaders,
    body: Uint8Array,
    done: (data: Buffer) => boolean,
    finish: (r: { status: number; headers: http2.IncomingHttpHeaders; trailers: http2.IncomingHttpHeaders; data: Buffer }) => RawOutcome,
  ): Promise<RawOutcome> {
    return new Promise((resolve) => {
      let status = 0;
      let head: http2.IncomingHttpHeaders = {};
      let trailers: http2.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      let settled = false;
      const stream = session.request(headers);
      const settle = (outcome: RawOutcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
        resolve(outcome);
      };
      const timer = setTimeout(() => settle({ code: "HANG", message: `no answer within ${deadlineMs} ms`, httpStatus: status }), deadlineMs);
      stream.on("response", (h) => {
        head = h;
        status = Number(h[":status"]);
      });
      stream.on("trailers", (t) => (trailers = t));
      stream.on("data", (chunk: Buffer) => {
        chunks.push(chunk);
        const data = Buffer.concat(chunks);
        if (done(data)) settle(finish({ status, headers: head, trailers, data }));
      });
      stream.on("close", () => settle(finish({ status, headers: head, trailers, data: Buffer.concat(chunks) })));
      stream.on("error", () => {}); // a reset shows as an unfinished exchange in `finish`
      stream.end(body);
    });
  }

  return {
    grpc(method, payload, options = {}) {
      const body = options.framed ? payload : envelope(payload);
      return exchange(
        headersFor(method, "application/grpc", options.token, { te: "trailers", ...options.headers }),
        body,
        // A whole first message: for a stream, that is enough to call it OK.
        (data) => data.length >= 5 && data.length >= 5 + data.readUInt32BE(1),
        ({ status, headers, trailers, data }) => {
          if (data.length >= 5 && data.length >= 5 + data.readUInt32BE(1)) {
            return { code: "OK", message: "", reply: new Uint8Array(data.subarray(5, 5 + data.readUInt32BE(1))), httpStatus: status };
          }
          const all = { ...headers, ...trailers };
          const grpcStatus = all["grpc-status"];
          if (grpcStatus === undefined) return { code: "NO_STATUS", message: `HTTP ${status}, no grpc-status`, httpStatus: status };
          const details = all["grpc-status-details-bin"];
          return {
            code: CODE_NAMES[Number(grpcStatus)] ?? `CODE_${grpcStatus}`,
            message: decodeURIComponent(String(all["grpc-message"] ?? "")),
            errorInfo: typeof details === "string" ? decodeErrorInfo(Buffer.from(details, "base64")) : undefined,
            httpStatus: status,
          };
        },
      );
    },

    connectJson(method, text, options = {}) {
      const stream = options.stream ?? false;
      const payload = typeof text === "string" ? Buffer.from(text, "utf8") : text;
      const headers = headersFor(method, stream ? "application/connect+json" : "application/json", options.token, {
        "connect-protocol-version": "1",
        ...options.headers,
      });
      return exchange(
        headers,
        stream ? envelope(payload) : payload,
        // Streams: the first whole envelope (a message, or the end-of-stream one) decides.
        (data) => stream && data.length >= 5 && data.length >= 5 + data.readUInt32BE(1),
        ({ status, data }) => {
          if (!stream || status !== 200) return connectUnaryOutcome(status, data);
          if (data.length < 5 || data.length < 5 + data.readUInt32BE(1)) {
            return { code: "NO_STATUS", message: "stream ended without an end-of-stream message", httpStatus: status };
          }
          const json = data.subarray(5, 5 + data.readUInt32BE(1)).toString("utf8");
          // Flag 0x02: the end-of-stream message, {"error": …} unless the stream ended OK.
          if ((data[0] & 0x02) === 0) return { code: "OK", message: "", reply: json, httpStatus: status };
          const end = JSON.parse(json) as { error?: ConnectErrorJson };
          return end.error ? fromConnectError(end.error, status) : { code: "OK", message: "", httpStatus: status };
        },
      );
    },

    close: () =>
      new Promise<void>((resolve) => {
        if (session.closed || session.destroyed) return resolve();
        session.close(() => resolve());
      }),
  };
}

interface ConnectErrorJson {
  code?: string;
  message?: string;
  details?: Array<{ type?: string; value?: string }>;
}

function connectUnaryOutcome(status: number, data: Buffer): RawOutcome {
  const text = data.toString("utf8");
  if (status === 200) return { code: "OK", message: "", reply: text, httpStatus: status };
  let error: ConnectErrorJson;
  try {
    error = JSON.parse(text) as ConnectErrorJson;
  } catch {
    return { code: `HTTP_${status}`, message: text.slice(0, 200), httpStatus: status };
  }
  return fromConnectError(error, status);
}

function fromConnectError(error: ConnectErrorJson, status: number): RawOutcome {
  const detail = error.details?.find((d) => d.type === "google.rpc.ErrorInfo");
  const info = detail?.value ? fromBinary(ErrorInfoSchema, Buffer.from(detail.value, "base64")) : undefined;
  return {
    code: (error.code ?? `HTTP_${status}`).toUpperCase(),
    message: error.message ?? "",
    errorInfo: info && { reason: info.reason, domain: info.domain, metadata: { ...info.metadata } },
    httpStatus: status,
  };
}

/**
 * One gRPC call on its own connection with `grpc-timeout` set and no timer of
 * the client's own, so what ends it is the server. `send` writes what it will
 * of the request body (a whole message, part of one, nothing). Resolves with
 * the grpc-status the call ended with, from trailers or a trailers-only reply.
 */
export async function grpcStatusAtEnd(
  url: string,
  token: string,
  method: string,
  grpcTimeout: string,
  send: (stream: http2.ClientHttp2Stream) => void,
): Promise<string | undefined> {
  const session = http2.connect(url);
  session.on("error", () => {});
  try {
    const ending = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
      const stream = session.request({
        ":method": "POST",
        ":path": `/jobs.v1.JobService/${method}`,
        "content-type": "application/grpc",
        te: "trailers",
        "grpc-timeout": grpcTimeout,
        authorization: `Bearer ${token}`,
      });
      stream.on("trailers", resolve);
      stream.on("response", (headers) => {
        if (headers["grpc-status"] !== undefined) resolve(headers);
      });
      stream.on("data", () => {});
      stream.on("error", reject);
      send(stream);
    });
    const status = ending["grpc-status"];
    return status === undefined ? undefined : String(status);
  } finally {
    session.close();
  }
}
