// One port for every client: HTTP/2 (gRPC, and Connect/gRPC-Web from HTTP/2
// clients) and HTTP/1.1 (Connect and gRPC-Web from curl, fetch and browsers).
// A front server takes each connection and hands it to the HTTP/2 or the
// HTTP/1.1 server. Without TLS there is no ALPN to choose the protocol, so the
// first bytes of each connection do: HTTP/2's client preface starts with
// "PRI * HTTP/2.0". With TLS, ALPN chooses (no ALPN: HTTP/1.1).
//
// The HTTP/2 server is driven by its streams, not by Node's compatibility
// API: the request handler may serve a stream itself (plain unary gRPC calls,
// on every job step) and otherwise gets the request/response objects Node
// would have made for it.

import { readFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import tls from "node:tls";

type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

export interface RequestHandler {
  (req: NodeRequest, res: NodeResponse): void;
  /** Serves an HTTP/2 stream on the stream API; false leaves it to the compatibility API (the call above). */
  stream?(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): boolean;
}

export interface Listener {
  readonly port: number;
  /** Stops accepting connections and asks every open one to finish its calls and close. */
  drain(): void;
  /** Resolves when every connection has closed. */
  closed(): Promise<void>;
  /** Closes whatever is still open. */
  destroy(): void;
}

export interface ListenOptions {
  readonly host: string;
  readonly port: number;
  readonly tls?: { certFile: string; keyFile: string };
}

export async function listen(handler: RequestHandler, options: ListenOptions): Promise<Listener> {
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.Http2Session>();
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  };
  const h2 = http2.createServer({
    // Watch streams are long-lived and many; let one connection carry them all.
    settings: { maxConcurrentStreams: 100_000 },
  });
  h2.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => {
    joinRepeatedAuthorization(headers, rawHeaders);
    if (handler.stream?.(stream, headers)) return;
    serveCompatible(handler, stream, headers, rawHeaders);
  });
  h2.on("session", (session: http2.Http2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  const h1 = http.createServer({ keepAliveTimeout: 5_000 }, (req, res) => {
    joinRepeatedAuthorization(req.headers, req.rawHeaders);
    handler(req, res);
  });
  // h1 never listens (the front server hands it sockets), and Node starts an
  // HTTP/1.1 server's connection tracking on "listening": without it,
  // closeIdleConnections() on drain does nothing (a drain waits out every
  // client's keep-alive) and headersTimeout/requestTimeout are never checked.
  h1.emit("listening");

  let front: net.Server;
  if (options.tls) {
    front = tls.createServer(
      { cert: readFileSync(options.tls.certFile), key: readFileSync(options.tls.keyFile), ALPNProtocols: ["h2", "http/1.1"] },
      (socket) => (socket.alpnProtocol === "h2" ? h2 : h1).emit("connection", socket),
    );
    front.on("connection", track);
  } else {
    front = net.createServer((socket) => {
      track(socket);
      // Read (not "data": that would switch the socket to flowing mode, and
      // the HTTP/2 session would miss what flowed) and put the bytes back.
      socket.once("readable", () => {
        const first: Buffer | null = socket.read();
        if (first === null) {
          socket.destroy();
          return;
        }
        socket.unshift(first);
        (first.subarray(0, 3).toString("latin1") === "PRI" ? h2 : h1).emit("connection", socket);
      });
    });
  }

  await new Promise<void>((resolve, reject) => {
    front.once("error", reject);
    front.listen(options.port, options.host, () => {
      front.off("error", reject);
      resolve();
    });
  });
  const address = front.address();
  const port = typeof address === "object" && address ? address.port : options.port;

  return {
    port,
    drain() {
      front.close();
      // GOAWAY: calls in flight finish, new ones go elsewhere.
      for (const session of sessions) session.close();
      h1.closeIdleConnections();
      h1.close();
    },
    closed() {
      return new Promise((resolve) => {
        const check = () => (sockets.size === 0 ? resolve() : setTimeout(check, 20).unref());
        check();
      });
    },
    destroy() {
      for (const session of sessions) session.destroy();
      for (const socket of sockets) socket.destroy();
    },
  };
}

/**
 * A stream that the handler did not serve itself gets the request and
 * response objects of Node's compatibility API, as Node's HTTP/2 server makes
 * them when it drives a "request" handler (including its answers to CONNECT
 * and to an Expect header, since no handler here takes those).
 */
function serveCompatible(
  handler: RequestHandler,
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  rawHeaders: string[],
): void {
  const req = new http2.Http2ServerRequest(stream, headers, undefined as never, rawHeaders);
  const res = new http2.Http2ServerResponse(stream);
  if (headers[":method"] === "CONNECT") {
    res.statusCode = http2.constants.HTTP_STATUS_METHOD_NOT_ALLOWED;
    res.end();
    return;
  }
  if (headers.expect !== undefined) {
    if (headers.expect !== "100-continue") {
      res.writeHead(http2.constants.HTTP_STATUS_EXPECTATION_FAILED);
      res.end();
      return;
    }
    res.writeContinue();
  }
  handler(req, res);
}

/**
 * Authorization is not a list field, so a request may carry it once (RFC 9110
 * §5.3). Node keeps the first of several and silently drops the rest, so a
 * request with two tokens would act as the first. Joined, they read
 * `Bearer a, Bearer b`, which the auth check refuses (SPEC §6: anything but
 * one bearer token is UNAUTHENTICATED).
 */
function joinRepeatedAuthorization(headers: http.IncomingHttpHeaders, raw: string[]): void {
  let values: string[] | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length === 13 && raw[i].toLowerCase() === "authorization") (values ??= []).push(raw[i + 1]);
  }
  if (values && values.length > 1) headers.authorization = values.join(", ");
}
