// What a connection may cost, bounded by the listener: connections that never
// finish their handshake and HTTP/2 connections left idle are closed after
// their (here short) timeouts, a connection with an open stream is not, one
// connection cannot open more streams than MAX_STREAMS_PER_CONNECTION, a
// peer that stops answering pings is dropped, and connections past
// MAX_CONNECTIONS are refused while the others are served. Each closing is
// counted in jobs_connections_closed_total.

import http2 from "node:http2";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { freePort } from "../../src/store/embedded-postgres.js";
import { create, toBinary } from "@bufbuild/protobuf";
import { WatchJobRequestSchema } from "../../src/gen/jobs/v1/job_service_pb.js";
import { jobsClient } from "../support/grpc.js";
import { errorCode, FRAME, PREFACE, RawHttp2, SETTINGS_MAX_CONCURRENT_STREAMS, setting } from "../support/h2-frames.js";
import { startServer, type TestServer } from "../support/harness.js";
import { envelope } from "../support/raw-calls.js";
import { eventually } from "../support/watching.js";

const PROTOCOL_ERROR = 0x1;

/** One connection's answer to a Health Check over HTTP/2 (the service needs no token). */
function healthCheck(session: http2.ClientHttp2Session): Promise<string | undefined> {
  return new Promise((resolve) => {
    const stream = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Check", "content-type": "application/grpc", te: "trailers" });
    let status: string | undefined;
    stream.on("trailers", (t) => (status = String(t["grpc-status"])));
    stream.on("data", () => {});
    stream.on("error", () => {});
    stream.on("close", () => resolve(status));
    stream.end(Buffer.from([0, 0, 0, 0, 0]));
  });
}

/** How many gRPC messages start in a chunk of a stream's body (each heartbeat arrives whole, in a chunk of its own here). */
function envelopesIn(chunk: Buffer): number {
  let count = 0;
  for (let i = 0; i + 5 <= chunk.length; i += 5 + chunk.readUInt32BE(i + 1)) count++;
  return count;
}

/** A connection's lifetime: resolves once the server has closed it, or rejects after `timeoutMs` (a bound, not a measure). */
function closedWithin(socket: net.Socket, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.destroyed) return resolve();
    const timer = setTimeout(() => reject(new Error(`the server kept the connection open ${timeoutMs} ms`)), timeoutMs);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** A TCP connection whose incoming bytes are read and dropped, so that the server's closing is seen. */
function connectTcp(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => resolve(socket));
    socket.on("error", () => {});
    socket.once("error", reject);
    socket.resume();
  });
}

/** A server with these settings and its metrics port; the URL of its /metrics. */
async function startWithMetrics(env: Record<string, string>): Promise<{ server: TestServer; metricsUrl: string }> {
  const metricsPort = await freePort();
  const server = await startServer({ env: { ...env, METRICS_PORT: String(metricsPort) } });
  return { server, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics` };
}

async function scrapeClosed(metricsUrl: string, reason: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  const line = text.split("\n").find((l) => l.startsWith(`jobs_connections_closed_total{reason="${reason}"} `));
  return line === undefined ? 0 : Number(line.split(" ")[1]);
}

describe("timeouts and the stream limit", () => {
  let server: TestServer;
  let metricsUrl: string;

  beforeAll(async () => {
    ({ server, metricsUrl } = await startWithMetrics({
      HANDSHAKE_TIMEOUT_MS: "300",
      IDLE_TIMEOUT_SECONDS: "1",
      MAX_STREAMS_PER_CONNECTION: "3",
      KEEPALIVE_INTERVAL_SECONDS: "1",
      KEEPALIVE_TIMEOUT_SECONDS: "1",
      WATCH_HEARTBEAT_SECONDS: "1",
    }));
  });
  afterAll(async () => {
    await server?.stop();
  });

  test.each([
    ["sends nothing at all", Buffer.alloc(0)],
    ["sends HTTP/2's preface but no SETTINGS", PREFACE],
    ["starts HTTP/1.1 request headers and never finishes them", Buffer.from("POST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: x\r\n", "latin1")],
  ])("a connection that %s is closed after HANDSHAKE_TIMEOUT_MS", async (_what, bytes) => {
    const before = await scrapeClosed(metricsUrl, "handshake_timeout");
    const socket = await connectTcp(server.port);
    if (bytes.length > 0) socket.write(bytes);
    await closedWithin(socket);
    // HTTP/1.1's timeout is Node's own (headersTimeout), which answers 408 and is not counted here.
    if (bytes.length === 0 || bytes === PREFACE) await eventually(async () => (await scrapeClosed(metricsUrl, "handshake_timeout")) === before + 1, "the closing to be counted");
  });

  test("an HTTP/2 connection with no open stream is closed (GOAWAY) after IDLE_TIMEOUT_SECONDS, and the client comes back", async () => {
    const before = await scrapeClosed(metricsUrl, "idle");
    const session = http2.connect(server.url);
    session.on("error", () => {});
    try {
      expect(await healthCheck(session)).toBe("0");
      const goaway = new Promise<number>((resolve) => session.once("goaway", (code: number) => resolve(code)));
      await closedWithin(session.socket as net.Socket);
      expect(await goaway).toBe(http2.constants.NGHTTP2_NO_ERROR);
    } finally {
      session.destroy();
    }
    expect(await scrapeClosed(metricsUrl, "idle")).toBe(before + 1);
    const again = http2.connect(server.url);
    again.on("error", () => {});
    try {
      expect(await healthCheck(again)).toBe("0");
    } finally {
      again.destroy();
    }
  });

  test("a connection with an open stream is not closed as idle: three heartbeats later (past IDLE_TIMEOUT_SECONDS) it takes a new call", async () => {
    const client = jobsClient(server.address, server.tokens.service);
    const { job } = await client.call("CreateJob", { type: "JOB_TYPE_HEALTH_CHECK", company_id: "1" });
    client.close();
    const session = http2.connect(server.url);
    session.on("error", () => {});
    let goaway = false;
    session.on("goaway", () => (goaway = true));
    try {
      const watch = session.request({
        ":method": "POST",
        ":path": "/jobs.v1.JobService/WatchJob",
        "content-type": "application/grpc",
        te: "trailers",
        authorization: `Bearer ${server.tokens.service}`,
      });
      watch.on("error", () => {});
      // Nothing to replay after revision 1: the stream's messages are heartbeats, one a second (WATCH_HEARTBEAT_SECONDS=1).
      const heartbeats = new Promise<void>((resolve, reject) => {
        let messages = 0;
        watch.on("data", (chunk: Buffer) => {
          messages += envelopesIn(chunk);
          if (messages >= 3) resolve();
        });
        watch.on("close", () => reject(new Error(`the stream closed after ${messages} messages`)));
      });
      watch.end(envelope(toBinary(WatchJobRequestSchema, create(WatchJobRequestSchema, { jobId: job.id, afterRevision: 1n }))));
      await heartbeats;
      expect(goaway).toBe(false);
      expect(await healthCheck(session)).toBe("0");
      watch.close(http2.constants.NGHTTP2_CANCEL);
    } finally {
      session.destroy();
    }
  });

  test("one connection gets at most MAX_STREAMS_PER_CONNECTION streams at once: its SETTINGS say so, and a client that opens more is cut off", async () => {
    const raw = await RawHttp2.connect(server.port);
    try {
      const settings = await raw.handshake();
      expect(setting(settings, SETTINGS_MAX_CONCURRENT_STREAMS)).toBe(3);
      const watch: Array<[string, string]> = [
        [":method", "POST"],
        [":scheme", "http"],
        [":path", "/grpc.health.v1.Health/Watch"],
        [":authority", "localhost"],
        ["content-type", "application/grpc"],
        ["te", "trailers"],
      ];
      // Four streams, none with its request message: the first three wait for theirs, the fourth is over the limit.
      for (const id of [1, 3, 5, 7]) raw.openStream(id, watch);
      const goaway = await raw.next((f) => f.type === FRAME.GOAWAY);
      // nghttp2 treats a stream past the limit the client acknowledged as a protocol error: the whole connection goes.
      expect(errorCode(goaway)).toBe(PROTOCOL_ERROR);
      // The last stream it processed is the third.
      expect(goaway.payload.readUInt32BE(0) & 0x7fffffff).toBe(5);
      await raw.closed;
    } finally {
      raw.destroy();
    }
  });

  test("a peer that stops answering pings is closed after KEEPALIVE_TIMEOUT_SECONDS, even with a stream open", async () => {
    const before = await scrapeClosed(metricsUrl, "keepalive_timeout");
    const raw = await RawHttp2.connect(server.port);
    try {
      await raw.handshake();
      // An open stream, so that the idle timeout does not apply; then silence.
      raw.openStream(1, [
        [":method", "POST"],
        [":scheme", "http"],
        [":path", "/grpc.health.v1.Health/Watch"],
        [":authority", "localhost"],
        ["content-type", "application/grpc"],
      ]);
      await raw.next((f) => f.type === FRAME.PING && (f.flags & 1) === 0);
      await raw.closed;
    } finally {
      raw.destroy();
    }
    expect(await scrapeClosed(metricsUrl, "keepalive_timeout")).toBe(before + 1);
  });
});

describe("MAX_CONNECTIONS", () => {
  let server: TestServer;
  let metricsUrl: string;

  beforeAll(async () => {
    ({ server, metricsUrl } = await startWithMetrics({ MAX_CONNECTIONS: "2" }));
  });
  afterAll(async () => {
    await server?.stop();
  });

  test("a connection past the limit is closed as it arrives, while the open ones are served; one closing makes room", async () => {
    const sessions = [http2.connect(server.url), http2.connect(server.url)];
    for (const s of sessions) s.on("error", () => {});
    try {
      for (const s of sessions) expect(await healthCheck(s)).toBe("0");
      const third = await connectTcp(server.port);
      await closedWithin(third);
      expect(await scrapeClosed(metricsUrl, "limit")).toBe(1);
      for (const s of sessions) expect(await healthCheck(s)).toBe("0");

      await new Promise<void>((resolve) => sessions[0].close(() => resolve()));
      await eventually(async () => {
        const next = http2.connect(server.url);
        next.on("error", () => {});
        try {
          return (await healthCheck(next)) === "0";
        } finally {
          next.destroy();
        }
      }, "a connection to be served again");
    } finally {
      for (const s of sessions) s.destroy();
    }
  });
});
