// Node request handler for the Connect router. Plain unary gRPC calls, the
// ones executors make at every job step, arrive as HTTP/2 streams
// (RequestHandler.stream) and go to ./grpc-unary.ts, which serves them with
// the same interceptors and implementations without Connect's streaming
// pipeline. Everything else goes to Connect through connect-node's adapter, plus the message size limit enforced as the body streams in, so an
// oversized request is refused first (SPEC §4's order) with RESOURCE_EXHAUSTED
// and an ErrorInfo like every other error. Connect's own readMaxBytes stays on
// as the backstop for compressed messages (it measures them decompressed).
//
// Request messages are also decoded once here (compressed ones decompressed
// first): Connect reports a binary message that is not valid protobuf, or
// does not decompress, as INTERNAL, with no ErrorInfo (and for unary calls
// before any interceptor runs), which would tell the caller the server is
// broken when the request is. Here it is INVALID_ARGUMENT (MALFORMED_MESSAGE).
// The other refusals Connect makes before any interceptor (JSON that does not
// decode, a body with no message or two, a cut-off envelope, an unknown
// encoding) are made here first, with Connect's codes and words and the
// ErrorInfo that SPEC §6 asks of every error.

import type http from "node:http";
import type http2 from "node:http2";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import { type DescMessage, type DescMethod, fromJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, createConnectRouter, createServiceImplSpec, type Interceptor } from "@connectrpc/connect";
import { createMethodUrl, type UniversalServerRequest } from "@connectrpc/connect/protocol";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import type { Logger } from "../log.js";
import type { RequestHandler } from "./listener.js";
import { errorInfo } from "./interceptors.js";
import { createGrpcUnaryServer, isPlainGrpcUnary, resetWithInternalError, type UnaryMethod } from "./grpc-unary.js";
import {
  decodeRequest,
  extraMessage,
  FLAGGED_COMPRESSED_WITHOUT_ENCODING,
  incompleteEnvelope,
  malformed,
  missingMessage,
  type SingleMessageKind,
  tooLarge,
} from "./request-errors.js";

export interface AdapterOptions {
  readonly routes: (router: ConnectRouter) => void;
  readonly interceptors: Interceptor[];
  readonly maxMessageBytes: number;
  readonly log: Logger;
  /** Answers requests for paths that name no RPC (the console, ./console.ts); unset: an empty 404. */
  readonly otherPaths?: (req: NodeRequest, res: NodeResponse) => void;
}

const COMPRESSIONS = [compressionGzip, compressionBrotli];
// Compress only big responses (long list pages). A job is 1–2 KiB, and
// gzipping every watch event once per stream cost more CPU than the
// loopback or LAN bandwidth it saved (zlib topped the profile).
const COMPRESS_MIN_BYTES = 64 * 1024;

type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

export function createRequestHandler(options: AdapterOptions): RequestHandler {
  // The unary gRPC path honours what is set here (interceptors, limit, compression):
  // a router option added later (a shutdownSignal, a requestGate …) must reach it too.
  const router = createConnectRouter({
    interceptors: options.interceptors,
    readMaxBytes: options.maxMessageBytes,
    acceptCompression: COMPRESSIONS,
    compressMinBytes: COMPRESS_MIN_BYTES,
  });
  const unary = new Map<string, UnaryMethod>();
  options.routes(recordingUnary(router, unary));
  const handlers = new Map(router.handlers.map((h) => [h.requestPath, h]));
  const serveUnary = createGrpcUnaryServer({
    interceptors: options.interceptors,
    maxMessageBytes: options.maxMessageBytes,
    compressions: COMPRESSIONS,
    compressMinBytes: COMPRESS_MIN_BYTES,
  });
  const handleRequest = (req: NodeRequest, res: NodeResponse) => {
    const path = req.url?.split("?", 2)[0] ?? "";
    const handler = handlers.get(path);
    if (!handler) {
      if (options.otherPaths) return options.otherPaths(req, res);
      res.statusCode = 404;
      res.end();
      return;
    }
    const uReq = universalRequestFromNodeRequest(req as never, res as never, undefined, undefined);
    handler(checkBody(uReq, options.maxMessageBytes, handler.method))
      .then((uRes) => universalResponseToNodeResponse(uRes, res as never))
      .catch((reason: unknown) => {
        if (ConnectError.from(reason).code === Code.Aborted) return;
        failed(handler.method.name, reason, res);
      });
  };
  return Object.assign(handleRequest, {
    stream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): boolean {
      const path = headers[":path"]?.split("?", 2)[0] ?? "";
      const unaryMethod = unary.get(path);
      if (unaryMethod === undefined || !isPlainGrpcUnary(headers[":method"] ?? "", 2, headers)) return false;
      serveUnary(unaryMethod, stream, headers).catch((reason: unknown) => failed(unaryMethod.method.name, reason, stream));
      return true;
    },
  });

  /** A call that could not be answered: logged, and ended now rather than left to the caller's deadline. */
  function failed(call: string, reason: unknown, answer: NodeResponse | http2.ServerHttp2Stream): void {
    options.log.error("handler failed", { call, error: reason instanceof Error ? reason.message : String(reason) });
    if ("respond" in answer) resetWithInternalError(answer);
    else if ("stream" in answer) resetWithInternalError(answer.stream);
    else answer.destroy();
  }
}

/** The router, noting each unary method's implementation as a service is registered. */
function recordingUnary(router: ConnectRouter, unary: Map<string, UnaryMethod>): ConnectRouter {
  return {
    get handlers() {
      return router.handlers;
    },
    service(service, implementation, serviceOptions) {
      const spec = createServiceImplSpec(service, implementation);
      for (const method of Object.values(spec.methods)) {
        if (method.kind !== "unary") continue;
        unary.set(createMethodUrl("/", method.method), { service, method: method.method, impl: method.impl as UnaryMethod["impl"] });
      }
      router.service(service, implementation, serviceOptions);
      return this;
    },
    rpc(method, implementation, methodOptions) {
      router.rpc(method, implementation, methodOptions);
      return this;
    },
  } as ConnectRouter;
}

/**
 * Counts request message bytes as they arrive: per envelope for the enveloped
 * protocols (gRPC, gRPC-Web, Connect streaming: 1 flag byte + 4 length bytes
 * before each message), the whole body otherwise (Connect unary). Binary
 * messages are decoded as they complete (see the top of this file), and an
 * enveloped body must hold whole envelopes and, for a method that takes one
 * message, exactly one: Connect refuses such bodies too, but without an
 * ErrorInfo. A plain iterator, not an async generator: it wraps every request
 * on the hot path.
 */
function checkBody(req: UniversalServerRequest, max: number, method: DescMethod): UniversalServerRequest {
  const body = req.body;
  if (!isByteStream(body)) return req;
  const call = method.name;
  const contentType = req.header.get("content-type") ?? "";
  const enveloped = /^application\/(grpc|connect\+)/.test(contentType);
  if (!enveloped) {
    // Connect would refuse a large Content-Length itself, but without our
    // ErrorInfo; counting the body below refuses it the same, with one.
    req.header.delete("content-length");
  }
  const headers = encodingHeaders(enveloped, req.header);
  const encoding = req.header.get(headers.encoding) || "identity";
  if (!Object.hasOwn(INFLATE, encoding)) return { ...req, body: failing(unknownEncoding(req, headers, encoding, call)) };
  const single = SINGLE_MESSAGE[method.methodKind] ?? null;
  const check = messageCheck(req, enveloped, encoding, method.input, max, call);
  let counter: MessageSizeCounter | null = new MessageSizeCounter(enveloped, max, call, single, check);
  const limited: AsyncIterable<Uint8Array> = {
    [Symbol.asyncIterator]() {
      let source: AsyncIterator<Uint8Array> | null = body[Symbol.asyncIterator]();
      return {
        async next() {
          if (source === null || counter === null) return { done: true as const, value: undefined };
          const result = await source.next();
          if (result.done) {
            counter.end();
            // Connect keeps this iterator for the whole call: a stream that idles for hours holds no counter or source.
            counter = null;
            source = null;
          } else {
            const oversized = counter.add(result.value);
            if (oversized > 0) throw tooLarge(oversized, max, call);
          }
          return result;
        },
        return: (value?: unknown) => source?.return?.(value) ?? Promise.resolve({ done: true as const, value: undefined }),
      };
    },
  };
  return { ...req, body: limited };
}

/** A body whose first read fails with `error`. */
function failing(error: ConnectError): AsyncIterable<Uint8Array> {
  return { [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(error) }) };
}

const SINGLE_MESSAGE: Partial<Record<DescMethod["methodKind"], SingleMessageKind>> = { unary: "unary", server_streaming: "server-streaming" };

/** Throws if a request message (its envelope flags and bytes) does not decompress, or is not valid protobuf. */
type MessageCheck = (flags: number, bytes: Uint8Array) => void;

const BINARY_CONTENT_TYPE = /^application\/(grpc(-web)?(\+proto)?|proto|connect\+proto)\s*(;|$)/i;
const JSON_CONTENT_TYPE = /^application\/(grpc(-web)?\+json|json|connect\+json)\s*(;|$)/i;

/** The encodings the router accepts (compressionGzip, compressionBrotli), as zlib calls bounded by an output size. */
const INFLATE: Record<string, ((bytes: Uint8Array, options: { maxOutputLength: number }) => Uint8Array) | null> = {
  identity: null,
  gzip: gunzipSync,
  br: brotliDecompressSync,
};

/** The header naming the request's encoding, for each protocol, and the one naming the encodings accepted. */
function encodingHeaders(enveloped: boolean, header: Headers): { encoding: string; accept: string } {
  if (!enveloped) return { encoding: "content-encoding", accept: "accept-encoding" };
  return header.has("connect-content-encoding")
    ? { encoding: "connect-content-encoding", accept: "connect-accept-encoding" }
    : { encoding: "grpc-encoding", accept: "grpc-accept-encoding" };
}

/**
 * A `requested` encoding the router lacks: Connect refuses it (UNIMPLEMENTED, naming
 * the ones it has) before reading the body, without an ErrorInfo. The same
 * refusal, with one, then comes from the body instead, and the header goes,
 * so that Connect reads it.
 */
function unknownEncoding(req: UniversalServerRequest, names: { encoding: string; accept: string }, requested: string, call: string): ConnectError {
  req.header.delete(names.encoding);
  const supported = COMPRESSIONS.map((c) => c.name).join(",");
  return new ConnectError(
    `unknown compression "${requested}": supported encodings are ${supported}`,
    Code.Unimplemented,
    { [names.accept]: supported },
    [errorInfo("UNSUPPORTED_ENCODING", { call })],
  );
}

/**
 * The check for a request: binary messages are decoded, JSON ones parsed,
 * compressed ones decompressed first. Connect would refuse the same messages,
 * but without an ErrorInfo, and binary ones as INTERNAL.
 */
function messageCheck(
  req: UniversalServerRequest,
  enveloped: boolean,
  encoding: string,
  input: DescMessage,
  max: number,
  call: string,
): MessageCheck | null {
  const contentType = req.header.get("content-type") ?? "";
  const binary = BINARY_CONTENT_TYPE.test(contentType);
  if (!binary && !JSON_CONTENT_TYPE.test(contentType)) return null;
  const inflate = INFLATE[encoding];
  return (flags, bytes) => {
    let message = bytes;
    if (enveloped ? (flags & 1) !== 0 : inflate !== null) {
      if (inflate === null) throw malformed(FLAGGED_COMPRESSED_WITHOUT_ENCODING, call);
      try {
        message = inflate(bytes, { maxOutputLength: max });
      } catch (error) {
        if ((error as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") throw tooLarge(null, max, call);
        throw malformed(`the message does not decompress with ${encoding}`, call);
      }
    }
    if (binary) decodeRequest(input, message, call);
    else decodeJsonRequest(input, message, call);
  };
}

/** Parses a JSON request as Connect will (unknown fields ignored), refusing it with Connect's words and an ErrorInfo. */
function decodeJsonRequest(input: DescMessage, bytes: Uint8Array, call: string): void {
  try {
    fromJsonString(input, new TextDecoder().decode(bytes), { ignoreUnknownFields: true });
  } catch (error) {
    throw malformed(error instanceof Error ? error.message : String(error), call);
  }
}

class MessageSizeCounter {
  private total = 0;
  /** Enveloped: bytes of the current message still to come, and of its header read so far. */
  private remaining = 0;
  private headerRead = 0;
  private length = 0;
  private flags = 0;
  /** The current message's bytes so far, kept only when there is a check to run on it. */
  private parts: Uint8Array[] = [];
  private messages = 0;

  constructor(
    private readonly enveloped: boolean,
    private readonly max: number,
    private readonly call: string,
    /** Set when the method takes exactly one message. */
    private readonly single: SingleMessageKind | null,
    private readonly check: MessageCheck | null,
  ) {}

  /** Counts a chunk; returns the size of a message over the limit, or 0. Throws if a completed message fails the check. */
  add(chunk: Uint8Array): number {
    if (!this.enveloped) {
      this.total += chunk.byteLength;
      if (this.check) this.parts.push(chunk);
      return this.total > this.max ? this.total : 0;
    }
    let i = 0;
    while (i < chunk.byteLength) {
      if (this.remaining > 0) {
        const skip = Math.min(this.remaining, chunk.byteLength - i);
        if (this.check) this.parts.push(chunk.subarray(i, i + skip));
        this.remaining -= skip;
        i += skip;
        if (this.remaining === 0) this.completed();
        continue;
      }
      // Header: a flag byte, then the length as 4 bytes, big-endian.
      const byte = chunk[i++];
      if (this.headerRead === 0) this.flags = byte;
      else this.length = this.length * 256 + byte;
      if (++this.headerRead === 5) {
        if (this.length > this.max) return this.length;
        this.remaining = this.length;
        this.headerRead = 0;
        this.length = 0;
        if (this.remaining === 0) this.completed();
      }
    }
    return 0;
  }

  /** The body ended: an unenveloped body is one whole message; an enveloped one must end between envelopes. */
  end(): void {
    if (!this.enveloped) return this.completed();
    if (this.headerRead > 0 || this.remaining > 0) throw incompleteEnvelope(this.call);
    if (this.single !== null && this.messages === 0) throw missingMessage(this.single, this.call);
  }

  /** A message is complete: checked first, then counted (the order of the unary gRPC path). */
  private completed(): void {
    if (this.check) {
      const parts = this.parts;
      this.parts = [];
      this.check(this.enveloped ? this.flags : 0, parts.length === 1 ? parts[0] : Buffer.concat(parts));
    }
    if (++this.messages > 1 && this.single !== null && this.enveloped) throw extraMessage(this.single, this.call);
  }
}

function isByteStream(body: unknown): body is AsyncIterable<Uint8Array> {
  return typeof body === "object" && body !== null && Symbol.asyncIterator in body;
}
