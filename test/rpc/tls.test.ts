// TLS (SPEC §2: "TLS when a certificate is configured"): with TLS_CERT
// and TLS_KEY the same port serves gRPC over TLS.

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { startServer, type TestServer } from "../support/harness.js";

let server: TestServer;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "jobs-tls-"));
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
