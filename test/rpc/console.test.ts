// The console's files as the server answers them (src/rpc/console.ts), over
// real sockets: the page and its hashed assets with their policy and caching
// headers, a plain-text 404 everywhere else (a request path never reaches the
// file system), the RPC protocols still answering on the same port,
// CONSOLE_ENABLED=false, and a server whose console was never built. What the
// page does in a browser is test/browser/.

import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { createLogger } from "../../src/log.js";
import { CONTENT_SECURITY_POLICY, createConsole } from "../../src/rpc/console.js";
import { jobsClient } from "../support/grpc.js";
import { startServer, type TestServer } from "../support/harness.js";
import { scratchDir } from "../support/scratch.js";

let server: TestServer;
let turnedOff: TestServer;

beforeAll(async () => {
  [server, turnedOff] = await Promise.all([startServer(), startServer({ env: { CONSOLE_ENABLED: "false" } })]);
});

afterAll(async () => {
  await Promise.all([server?.stop(), turnedOff?.stop()]);
});

interface Answer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

/** One HTTP/1.1 request with exactly these headers and this path (not normalized, unlike fetch's). */
function request(base: string, path: string, options: { method?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${path}`, { method: options.method ?? "GET", headers: options.headers, path }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

const SECURITY = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

/** The assets index.html loads. */
async function assets(): Promise<string[]> {
  const html = (await request(server.url, "/")).body.toString();
  return [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]);
}

describe("the built console", () => {
  test("/ answers index.html with the security headers, revalidated on every load", async () => {
    const page = await request(server.url, "/");
    expect(page.status).toBe(200);
    expect(page.headers).toMatchObject({ ...SECURITY, "content-type": "text/html; charset=utf-8", "cache-control": "no-cache" });
    expect(page.body.toString()).toContain('<div id="app">');
    expect(CONTENT_SECURITY_POLICY).toMatch(/^default-src 'self'; script-src 'self';.* connect-src 'self'/);

    const again = await request(server.url, "/", { headers: { "if-none-match": String(page.headers.etag) } });
    expect([again.status, again.body.length, again.headers.etag]).toEqual([304, 0, page.headers.etag]);
  });

  test("hashed assets are cached for good, and sent gzipped to a client that asks", async () => {
    const paths = await assets();
    expect(paths.filter((p) => p.endsWith(".js")).length).toBe(1);
    expect(paths.filter((p) => p.endsWith(".css")).length).toBe(1);
    for (const path of paths) {
      const plain = await request(server.url, path);
      expect(plain.status).toBe(200);
      expect(plain.headers).toMatchObject({ ...SECURITY, "cache-control": "public, max-age=31536000, immutable" });
      expect(plain.headers["content-type"]).toBe(path.endsWith(".js") ? "text/javascript; charset=utf-8" : "text/css; charset=utf-8");
      expect(Number(plain.headers["content-length"])).toBe(plain.body.length);

      const gzipped = await request(server.url, path, { headers: { "accept-encoding": "gzip, deflate, br" } });
      expect(gzipped.headers["content-encoding"]).toBe("gzip");
      expect(gunzipSync(gzipped.body).equals(plain.body)).toBe(true);
      expect(gzipped.headers.etag).not.toBe(plain.headers.etag);
    }
  });

  test("HEAD answers the headers without a body", async () => {
    const head = await request(server.url, "/", { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers).toMatchObject(SECURITY);
    expect(Number(head.headers["content-length"])).toBeGreaterThan(100);
    expect(head.body.length).toBe(0);
  });

  test.each([
    ["an unknown path", "GET", "/jobs"],
    ["a path out of the build", "GET", "/assets/../../package.json"],
    ["the build's own stamp", "GET", "/.build-stamp"],
    ["a POST to /", "POST", "/"],
    ["a method of no service", "POST", "/jobs.v1.JobService/Nope"],
  ])("%s is a plain-text 404 under the same policy", async (_what, method, path) => {
    const answer = await request(server.url, path, { method });
    expect(answer.status).toBe(404);
    expect(answer.headers).toMatchObject({ ...SECURITY, "content-type": "text/plain; charset=utf-8" });
    expect(answer.body.toString()).toBe("Not found. This port answers gRPC, gRPC-Web and Connect calls, and the operators' console at /.\n");
  });

  test("gRPC and Connect calls keep answering on the same port, and HTTP/2 clients get the page too", async () => {
    const grpc = jobsClient(server.address, server.tokens.service);
    try {
      expect((await grpc.call("CountJobs", {})).counts).toHaveLength(6);
    } finally {
      grpc.close();
    }
    const connect = await fetch(`${server.url}/jobs.v1.JobService/CountJobs`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${server.tokens.service}` },
      body: "{}",
    });
    expect(connect.status).toBe(200);
    expect(((await connect.json()) as { counts: unknown[] }).counts).toHaveLength(6);

    const session = http2.connect(server.url);
    try {
      const answer = await new Promise<{ status: number; csp: unknown; body: string }>((resolve, reject) => {
        const stream = session.request({ ":path": "/" });
        let status = 0;
        let csp: unknown;
        let body = "";
        stream.on("response", (headers) => {
          status = Number(headers[":status"]);
          csp = headers["content-security-policy"];
        });
        stream.on("data", (chunk: Buffer) => (body += chunk.toString()));
        stream.on("end", () => resolve({ status, csp, body }));
        stream.on("error", reject);
      });
      expect(answer).toMatchObject({ status: 200, csp: CONTENT_SECURITY_POLICY });
      expect(answer.body).toContain('<div id="app">');
    } finally {
      session.close();
    }
  });
});

test("CONSOLE_ENABLED=false: / is a 404 saying the console is off, and no file is served", async () => {
  const home = await request(turnedOff.url, "/");
  expect(home.status).toBe(404);
  expect(home.headers).toMatchObject(SECURITY);
  expect(home.body.toString()).toBe("Not found: the operators' console is turned off on this server (CONSOLE_ENABLED=false).\n");
  for (const path of await assets()) expect((await request(turnedOff.url, path)).status).toBe(404);
});

test("a console that was never built: one warning at start, and / says how to build it", async () => {
  const lines: string[] = [];
  const answer = createConsole({ enabled: true, dir: scratchDir("console-unbuilt-"), log: createLogger("info", (line) => lines.push(line)) });
  const plain = http.createServer(answer);
  await new Promise<void>((resolve) => plain.listen(0, "127.0.0.1", resolve));
  try {
    const base = `http://127.0.0.1:${(plain.address() as AddressInfo).port}`;
    const home = await request(base, "/");
    expect(home.status).toBe(404);
    expect(home.body.toString()).toMatch(/has not been built on this server: run `npm run build` .*then restart the server/);
    expect((await request(base, "/index.html")).status).toBe(404);
    expect(lines.map((line) => JSON.parse(line))).toEqual([expect.objectContaining({ level: "warn", msg: "console not built: / answers 404", fix: "npm run build" })]);
  } finally {
    plain.close();
  }
});
