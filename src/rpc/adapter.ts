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
 * before each message), the whole body otherwise (Connect unary).
 */
function limitBody(req: UniversalServerRequest, max: number, call: string): UniversalServerRequest {
  const body = req.body;
  if (!isByteStream(body)) return req;
  const enveloped = /^application\/(grpc|connect\+)/.test(req.header.get("content-type") ?? "");
  const tooLarge = (size: number) =>
    new ConnectError(
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
  if (!enveloped) {
    // Connect would refuse a large Content-Length itself, but without our
    // ErrorInfo; counting the body below refuses it the same, with one.
    req.header.delete("content-length");
  }
  async function* limited(): AsyncIterable<Uint8Array> {
    let total = 0;
    // Enveloped: bytes still to skip in the current message, and a partial header.
    let remaining = 0;
    let header: number[] = [];
    for await (const chunk of body as AsyncIterable<Uint8Array>) {
      if (!enveloped) {
        total += chunk.byteLength;
        if (total > max) throw tooLarge(total);
      } else {
        let i = 0;
        while (i < chunk.byteLength) {
          if (remaining > 0) {
            const skip = Math.min(remaining, chunk.byteLength - i);
            remaining -= skip;
            i += skip;
            continue;
          }
          header.push(chunk[i++]);
          if (header.length === 5) {
            const length = ((header[1] << 24) >>> 0) + (header[2] << 16) + (header[3] << 8) + header[4];
            if (length > max) throw tooLarge(length);
            remaining = length;
            header = [];
          }
        }
      }
      yield chunk;
    }
  }
  return { ...req, body: limited() };
}

function isByteStream(body: unknown): body is AsyncIterable<Uint8Array> {
  return typeof body === "object" && body !== null && Symbol.asyncIterator in body;
}
