// One port for every client: HTTP/2 (gRPC, and Connect/gRPC-Web from HTTP/2
// clients) and HTTP/1.1 (Connect and gRPC-Web from curl, fetch, browsers). A
// front server hands each connection to the HTTP/2 or the HTTP/1.1 server,
// chosen by ALPN with TLS and otherwise by the first bytes (HTTP/2's preface
// starts "PRI * HTTP/2.0"); Node makes the request and response objects. What
// a connection may cost is bounded here (MAX_CONNECTIONS,
// HANDSHAKE_TIMEOUT_MS, IDLE_TIMEOUT_SECONDS, MAX_STREAMS_PER_CONNECTION,
// keep-alive pings that find dead peers: docs/contract.md §2).

import { readFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import tls from "node:tls";
import type { Config } from "../../config.js";
import type { NodeHandler } from "./exchange.js";

export interface Listener {
  readonly port: number;
  /** Open connections, of either protocol. */
  readonly connections: number;
  /** Stops accepting connections and asks every open one to finish its calls and close. */
  drain(): void;
  /** Resolves when every connection has closed. */
  closed(): Promise<void>;
  /** Closes whatever is still open. */
  destroy(): void;
}

/** Why the listener refused or closed a connection. */
export type ConnectionEnd = "limit" | "handshake_timeout" | "idle" | "keepalive_timeout";

export interface ConnectionLimits {
  readonly maxConnections: number;
  readonly maxStreamsPerConnection: number;
  readonly handshakeTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly keepAliveIntervalMs: number;
  readonly keepAliveTimeoutMs: number;
}

/** The limits the configuration sets. */
export function connectionLimits(config: Config): ConnectionLimits {
  return {
    maxConnections: config.maxConnections,
    maxStreamsPerConnection: config.maxStreamsPerConnection,
    handshakeTimeoutMs: config.handshakeTimeoutMs,
    idleTimeoutMs: config.idleTimeoutSeconds * 1000,
    keepAliveIntervalMs: config.keepAliveIntervalSeconds * 1000,
    keepAliveTimeoutMs: config.keepAliveTimeoutSeconds * 1000,
  };
}

export interface ListenOptions {
  readonly host: string;
  readonly port: number;
  readonly tls?: { certFile: string; keyFile: string };
  readonly limits: ConnectionLimits;
  /** Told of each connection the listener refuses or closes, for the logs and metrics. */
  readonly onConnectionEnd?: (why: ConnectionEnd, remoteAddress: string | undefined) => void;
}

/** Node's own default for HTTP/1.1 keep-alive: the idle timeout applies when it is shorter. */
const HTTP1_KEEP_ALIVE_MS = 5_000;

export async function listen(handler: NodeHandler, options: ListenOptions): Promise<Listener> {
  const { limits } = options;
  const ended = (why: ConnectionEnd, socket: net.Socket | undefined) => options.onConnectionEnd?.(why, socket?.remoteAddress);
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();

  const h2 = http2.createServer({ settings: { maxConcurrentStreams: limits.maxStreamsPerConnection } }, (req, res) => {
    joinRepeatedAuthorization(req.headers, req.rawHeaders);
    handler(req, res);
  });
  h2.on("session", (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    watchSession(session, limits, (why) => ended(why, session.socket as net.Socket | undefined));
    session.once("close", () => sessions.delete(session));
  });
  const keepAlive = setInterval(() => {
    for (const session of sessions) ping(session, limits.keepAliveTimeoutMs, () => ended("keepalive_timeout", session.socket as net.Socket | undefined));
  }, limits.keepAliveIntervalMs);
  keepAlive.unref();

  const h1 = http.createServer(
    {
      keepAliveTimeout: Math.min(HTTP1_KEEP_ALIVE_MS, limits.idleTimeoutMs),
      headersTimeout: limits.handshakeTimeoutMs,
      // How often Node checks headersTimeout (by default every 30 s).
      connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.floor(limits.handshakeTimeoutMs / 2))),
    },
    (req, res) => {
      joinRepeatedAuthorization(req.headers, req.rawHeaders);
      handler(req, res);
    },
  );
  // h1 never listens (the front server hands it sockets), and Node starts an
  // HTTP/1.1 server's connection tracking on "listening": without it,
  // closeIdleConnections() on drain does nothing (a drain waits out every
  // client's keep-alive) and headersTimeout/requestTimeout are never checked.
  h1.emit("listening");

  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  };
  let front: net.Server;
  if (options.tls) {
    front = tls.createServer(
      {
        cert: readFileSync(options.tls.certFile),
        key: readFileSync(options.tls.keyFile),
        ALPNProtocols: ["h2", "http/1.1"],
        handshakeTimeout: limits.handshakeTimeoutMs,
      },
      (socket) => (socket.alpnProtocol === "h2" ? h2 : h1).emit("connection", socket),
    );
    front.on("connection", track);
    front.on("tlsClientError", (error: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
      if (error.code === "ERR_TLS_HANDSHAKE_TIMEOUT") ended("handshake_timeout", socket);
    });
  } else {
    front = net.createServer((socket) => {
      track(socket);
      const timer = setTimeout(() => {
        ended("handshake_timeout", socket);
        socket.destroy();
      }, limits.handshakeTimeoutMs);
      socket.once("close", () => clearTimeout(timer));
      // Read (not "data": that would switch the socket to flowing mode, and
      // the HTTP/2 session would miss what flowed) and put the bytes back.
      socket.once("readable", () => {
        const first: Buffer | null = socket.read();
        if (first === null) {
          socket.destroy();
          return;
        }
        socket.unshift(first);
        const http2Preface = first.subarray(0, 3).toString("latin1") === "PRI";
        // HTTP/2's handshake goes on until its SETTINGS (watchSession); HTTP/1.1's until its headers (headersTimeout).
        clearTimeout(timer);
        (http2Preface ? h2 : h1).emit("connection", socket);
      });
    });
  }
  front.maxConnections = limits.maxConnections;
  front.on("drop", (dropped?: { remoteAddress?: string }) => options.onConnectionEnd?.("limit", dropped?.remoteAddress));

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
    get connections() {
      return sockets.size;
    },
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
      clearInterval(keepAlive);
      for (const session of sessions) session.destroy();
      for (const socket of sockets) socket.destroy();
    },
  };
}

/**
 * An HTTP/2 connection's handshake and idle timers: destroyed if no SETTINGS
 * frame (the end of the client's preface) arrives within the handshake
 * timeout; closed (GOAWAY) once it has had no open stream for the idle
 * timeout.
 */
function watchSession(session: http2.ServerHttp2Session, limits: ConnectionLimits, ended: (why: ConnectionEnd) => void): void {
  const handshake = setTimeout(() => {
    ended("handshake_timeout");
    session.destroy();
  }, limits.handshakeTimeoutMs);
  session.once("remoteSettings", () => clearTimeout(handshake));
  let open = 0;
  let idle: NodeJS.Timeout | undefined;
  const armIdle = () => {
    idle = setTimeout(() => {
      ended("idle");
      session.close();
    }, limits.idleTimeoutMs);
  };
  armIdle();
  session.on("stream", (stream: http2.ServerHttp2Stream) => {
    if (open++ === 0) clearTimeout(idle);
    stream.once("close", () => {
      if (--open === 0 && !session.closed) armIdle();
    });
  });
  session.once("close", () => {
    clearTimeout(handshake);
    clearTimeout(idle);
  });
}

/** Sessions with a ping in flight, so that a slow peer gets one ping at a time. */
const pinging = new WeakSet<http2.ServerHttp2Session>();

/** Pings the peer; destroys the session if no answer comes within `timeoutMs`. */
function ping(session: http2.ServerHttp2Session, timeoutMs: number, ended: () => void): void {
  if (session.closed || session.destroyed || pinging.has(session)) return;
  pinging.add(session);
  const timer = setTimeout(() => {
    ended();
    session.destroy();
  }, timeoutMs);
  timer.unref();
  const sent = session.ping((error) => {
    clearTimeout(timer);
    pinging.delete(session);
    if (error && !session.destroyed) session.destroy();
  });
  if (!sent) {
    clearTimeout(timer);
    pinging.delete(session);
  }
}

/**
 * Authorization is not a list field, so a request may carry it once (RFC 9110
 * §5.3). Node keeps the first of several and silently drops the rest, so a
 * request with two tokens would act as the first. Joined, they read
 * `Bearer a, Bearer b`, which the auth check refuses (anything but one bearer
 * token is UNAUTHENTICATED).
 */
function joinRepeatedAuthorization(headers: http.IncomingHttpHeaders, raw: string[]): void {
  let values: string[] | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length === 13 && raw[i].toLowerCase() === "authorization") (values ??= []).push(raw[i + 1]);
  }
  if (values && values.length > 1) headers.authorization = values.join(", ");
}
