// One port for every client: HTTP/2 (gRPC, and Connect/gRPC-Web from HTTP/2
// clients) and HTTP/1.1 (Connect and gRPC-Web from curl, fetch and browsers).
// Without TLS there is no ALPN to choose the protocol, so the first bytes of
// each connection do: HTTP/2's client preface starts with "PRI * HTTP/2.0".
// With TLS, ALPN chooses and Node's secure HTTP/2 server takes HTTP/1.1 too.

import { readFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";

type Handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void;

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
  readonly maxHeaderBytes?: number;
}

export async function listen(handler: Handler, options: ListenOptions): Promise<Listener> {
  handler = joinRepeatedAuthorization(handler);
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.Http2Session>();
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  };
  const http2Options: http2.ServerOptions = {
    // Watch streams are long-lived and many; let one connection carry them all.
    settings: { maxConcurrentStreams: 100_000 },
  };

  let front: net.Server;
  let h1: http.Server | null = null;
  let h2: http2.Http2Server | http2.Http2SecureServer;
  if (options.tls) {
    h2 = http2.createSecureServer(
      {
        ...http2Options,
        allowHTTP1: true,
        cert: readFileSync(options.tls.certFile),
        key: readFileSync(options.tls.keyFile),
      },
      handler as never,
    );
    front = h2;
    h2.on("connection", track);
  } else {
    h2 = http2.createServer(http2Options, handler as never);
    h1 = http.createServer({ keepAliveTimeout: 5_000 }, handler as never);
    // h1 never listens (the front server hands it sockets), and Node starts an
    // HTTP/1.1 server's connection tracking on "listening": without it,
    // closeIdleConnections() on drain does nothing (a drain waits out every
    // client's keep-alive) and headersTimeout/requestTimeout are never checked.
    h1.emit("listening");
    const plain1 = h1;
    const plain2 = h2;
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
        (first.subarray(0, 3).toString("latin1") === "PRI" ? plain2 : plain1).emit("connection", socket);
      });
    });
  }
  h2.on("session", (session: http2.Http2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });

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
      h1?.closeIdleConnections();
      if (h1) h1.close();
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
 * Authorization is not a list field, so a request may carry it once (RFC 9110
 * §5.3). Node keeps the first of several and silently drops the rest, so a
 * request with two tokens would act as the first. Joined, they read
 * `Bearer a, Bearer b`, which the auth check refuses (SPEC §6: anything but
 * one bearer token is UNAUTHENTICATED).
 */
function joinRepeatedAuthorization(handler: Handler): Handler {
  return (req, res) => {
    const raw = req.rawHeaders;
    let values: string[] | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i].length === 13 && raw[i].toLowerCase() === "authorization") (values ??= []).push(raw[i + 1]);
    }
    if (values && values.length > 1) req.headers.authorization = values.join(", ");
    handler(req, res);
  };
}
