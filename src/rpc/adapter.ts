// Node request handler for the Connect router: connect-node's adapter, plus
// the message size limit enforced as the body streams in, so an oversized
// request is refused first (SPEC §4's order) with RESOURCE_EXHAUSTED and an
// ErrorInfo like every other error. Connect's own readMaxBytes stays on as the
// backstop for compressed messages (it measures them decompressed).

import type http from "node:http";
import type http2 from "node:http2";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, createConnectRouter, type Interceptor } from "@connectrpc/connect";
import type { UniversalServerRequest } from "@connectrpc/connect/protocol";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import type { Logger } from "../log.js";

export interface AdapterOptions {
  readonly routes: (router: ConnectRouter) => void;
  readonly interceptors: Interceptor[];
  readonly maxMessageBytes: number;
  readonly log: Logger;
}

type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

export function createRequestHandler(options: AdapterOptions): (req: NodeRequest, res: NodeResponse) => void {
  const router = createConnectRouter({
    interceptors: options.interceptors,
    readMaxBytes: options.maxMessageBytes,
    acceptCompression: [compressionGzip, compressionBrotli],
    // Compress only big responses (long list pages). A job is 1–2 KiB, and
    // gzipping every watch event once per stream cost more CPU than the
    // loopback or LAN bandwidth it saved (zlib topped the profile).
    compressMinBytes: 64 * 1024,
  });
  options.routes(router);
  const handlers = new Map(router.handlers.map((h) => [h.requestPath, h]));
  return (req, res) => {
    const handler = handlers.get(req.url?.split("?", 2)[0] ?? "");
    if (!handler) {
      res.statusCode = 404;
      res.end();
      return;
    }
    const uReq = universalRequestFromNodeRequest(req as never, res as never, undefined, undefined);
    handler(limitBody(uReq, options.maxMessageBytes, handler.method.name))
      .then((uRes) => universalResponseToNodeResponse(uRes, res as never))
      .catch((reason: unknown) => {
        if (ConnectError.from(reason).code === Code.Aborted) return;
        options.log.error("handler failed", {
          call: handler.method.name,
          error: reason instanceof Error ? reason.message : String(reason),
        });
      });
  };
}

/**
 * Counts request message bytes as they arrive: per envelope for the enveloped
 * protocols (gRPC, gRPC-Web, Connect streaming: 1 flag byte + 4 length bytes
 * before each message), the whole body otherwise (Connect unary). A plain
 * iterator, not an async generator: it wraps every request on the hot path.
 */
function limitBody(req: UniversalServerRequest, max: number, call: string): UniversalServerRequest {
  const body = req.body;
  if (!isByteStream(body)) return req;
  const enveloped = /^application\/(grpc|connect\+)/.test(req.header.get("content-type") ?? "");
  if (!enveloped) {
    // Connect would refuse a large Content-Length itself, but without our
    // ErrorInfo; counting the body below refuses it the same, with one.
    req.header.delete("content-length");
  }
  const counter = new MessageSizeCounter(enveloped, max);
  const limited: AsyncIterable<Uint8Array> = {
    [Symbol.asyncIterator]() {
      const source = body[Symbol.asyncIterator]();
      return {
        async next() {
          const result = await source.next();
          if (!result.done) {
            const oversized = counter.add(result.value);
            if (oversized > 0) throw tooLarge(oversized, max, call);
          }
          return result;
        },
        return: (value?: unknown) => source.return?.(value) ?? Promise.resolve({ done: true as const, value: undefined }),
      };
    },
  };
  return { ...req, body: limited };
}

class MessageSizeCounter {
  private total = 0;
  /** Enveloped: bytes of the current message still to come, and of its header read so far. */
  private remaining = 0;
  private headerRead = 0;
  private length = 0;

  constructor(
    private readonly enveloped: boolean,
    private readonly max: number,
  ) {}

  /** Counts a chunk; returns the size of a message over the limit, or 0. */
  add(chunk: Uint8Array): number {
    if (!this.enveloped) {
      this.total += chunk.byteLength;
      return this.total > this.max ? this.total : 0;
    }
    let i = 0;
    while (i < chunk.byteLength) {
      if (this.remaining > 0) {
        const skip = Math.min(this.remaining, chunk.byteLength - i);
        this.remaining -= skip;
        i += skip;
        continue;
      }
      // Header: a flag byte, then the length as 4 bytes, big-endian.
      const byte = chunk[i++];
      if (this.headerRead > 0) this.length = this.length * 256 + byte;
      if (++this.headerRead === 5) {
        if (this.length > this.max) return this.length;
        this.remaining = this.length;
        this.headerRead = 0;
        this.length = 0;
      }
    }
    return 0;
  }
}

function tooLarge(size: number, max: number, call: string): ConnectError {
  return new ConnectError(
    `the request message is ${size} bytes, over this server's limit of ${max} bytes (MAX_MESSAGE_BYTES)`,
    Code.ResourceExhausted,
    undefined,
    [
      {
        desc: ErrorInfoSchema,
        value: create(ErrorInfoSchema, {
          reason: "MESSAGE_TOO_LARGE",
          domain: "jobs.v1",
          metadata: { call, limit: String(max), size: String(size) },
        }),
      },
    ],
  );
}

function isByteStream(body: unknown): body is AsyncIterable<Uint8Array> {
  return typeof body === "object" && body !== null && Symbol.asyncIterator in body;
}
