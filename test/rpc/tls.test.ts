// TLS (docs/contract.md §2: "TLS when a certificate is configured"): with TLS_CERT
// and TLS_KEY the same port serves gRPC over TLS, and Connect by HTTP/1.1 or
// HTTP/2 as the client's ALPN chooses.

import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import http2 from "node:http2";
import https from "node:https";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { startServer, type TestServer } from "../support/harness.js";
import { scratchDir } from "../support/scratch.js";

let server: TestServer;
let dir: string;

beforeAll(async () => {
  dir = scratchDir("jobs-tls-");
  // A self-signed certificate for localhost, made with the system's openssl.
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
    "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"),
  ], { stdio: "ignore" });
  server = await startServer({ env: { TLS_CERT: join(dir, "cert.pem"), TLS_KEY: join(dir, "key.pem") } });
});
afterAll(async () => {
  await server?.stop();
});

test("gRPC over TLS works with the certificate, and the server says https", async () => {
  expect(server.url).toMatch(/^https:\/\//);
  const definition = protoLoader.loadSync(["jobs/v1/job_service.proto"], {
    includeDirs: [join(import.meta.dirname, "..", "..", "proto")],
    keepCase: true,
    longs: String,
    enums: String,
  });
  const { JobService } = (grpc.loadPackageDefinition(definition) as unknown as { jobs: { v1: { JobService: grpc.ServiceClientConstructor } } }).jobs.v1;
  const credentials = grpc.credentials.createSsl(readFileSync(join(dir, "cert.pem")));
  const client = new JobService(`localhost:${server.port}`, credentials);
  try {
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${server.tokens.service}`);
    const res = await new Promise<{ job: { state: string } }>((resolve, reject) =>
      // biome-ignore lint: untyped grpc-js client
      (client as any).createJob({ type: "JOB_TYPE_HEALTH_CHECK", company_id: "1" }, metadata, (err: Error | null, r: { job: { state: string } }) =>
        err ? reject(err) : resolve(r),
      ),
    );
    expect(res.job.state).toBe("JOB_STATE_PENDING");
  } finally {
    client.close();
  }
});

test("a plaintext client is refused on the TLS port", async () => {
  const definition = protoLoader.loadSync(["jobs/v1/job_service.proto"], { includeDirs: [join(import.meta.dirname, "..", "..", "proto")] });
  const { JobService } = (grpc.loadPackageDefinition(definition) as unknown as { jobs: { v1: { JobService: grpc.ServiceClientConstructor } } }).jobs.v1;
  const client = new JobService(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  try {
    const error = await new Promise<grpc.ServiceError>((resolve) =>
      // biome-ignore lint: untyped grpc-js client
      (client as any).getJob({ job_id: "00000000-0000-0000-0000-000000000000" }, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (err: grpc.ServiceError) => resolve(err)),
    );
    expect(error.code).toBe(grpc.status.UNAVAILABLE);
  } finally {
    client.close();
  }
});

/** A Connect unary call with JSON over TLS, by HTTP/2 (ALPN h2) or by HTTP/1.1 with no ALPN at all, as Node's https sends it. */
async function connectJsonOverTls(alpn: "none" | "h2"): Promise<{ protocol: string; status: number; body: { job?: { id?: string } } }> {
  const ca = readFileSync(join(dir, "cert.pem"));
  const body = JSON.stringify({ type: "JOB_TYPE_HEALTH_CHECK", companyId: "1" });
  const headers = { "content-type": "application/json", authorization: `Bearer ${server.tokens.service}` };
  if (alpn === "h2") {
    const session = http2.connect(`https://localhost:${server.port}`, { ca });
    try {
      return await new Promise((resolve, reject) => {
        const stream = session.request({ ":method": "POST", ":path": "/jobs.v1.JobService/CreateJob", ...headers });
        let status = 0;
        let text = "";
        stream.on("response", (h) => (status = Number(h[":status"])));
        stream.setEncoding("utf8");
        stream.on("data", (chunk: string) => (text += chunk));
        stream.on("end", () => resolve({ protocol: (session.socket as TLSSocket).alpnProtocol || "", status, body: JSON.parse(text) }));
        stream.on("error", reject);
        stream.end(body);
      });
    } finally {
      session.close();
    }
  }
  return new Promise((resolve, reject) => {
    const options: https.RequestOptions = {
      host: "localhost",
      port: server.port,
      path: "/jobs.v1.JobService/CreateJob",
      method: "POST",
      ca,
      headers,
      agent: false,
    };
    const req = https.request(options, (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (text += chunk));
        res.on("end", () => resolve({ protocol: `HTTP/${res.httpVersion}`, status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

test.each([
  ["HTTP/1.1 (no ALPN)", "none", "HTTP/1.1"],
  ["HTTP/2", "h2", "h2"],
] as const)("Connect JSON over TLS by %s is served on the same port", async (_name, alpn, protocol) => {
  const answer = await connectJsonOverTls(alpn);
  expect(answer.protocol).toBe(protocol);
  expect(answer.status).toBe(200);
  expect(answer.body.job?.id).toMatch(/^[0-9a-f-]{36}$/);
});
