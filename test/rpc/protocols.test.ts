// One port, every protocol (docs/contract.md §2): gRPC-Web and Connect (binary and JSON),
// over HTTP/1.1 and HTTP/2, through the generated TypeScript client; gRPC
// through Connect's own gRPC client (grpc-js is every other file's client);
// and a plain fetch of JSON, errors included. Server streams too.

import http from "node:http";
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, type Client, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import { ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { JobEventType, JobState, JobType } from "../../src/gen/jobs/v1/job_pb.js";
import { JobService } from "../../src/gen/jobs/v1/job_service_pb.js";
import { generateSecret } from "../../src/auth/tokens.js";
import type { Msg } from "../support/grpc.js";
import { startServer, type TestServer } from "../support/harness.js";

let server: TestServer;
const sessions: Http2SessionManager[] = [];

beforeAll(async () => {
  server = await startServer();
});

afterAll(async () => {
  for (const session of sessions) session.abort();
  await server?.stop();
});

interface Variant {
  readonly name: string;
  readonly transport: () => Transport;
}

function http2(): { httpVersion: "2"; sessionManager: Http2SessionManager } {
  const sessionManager = new Http2SessionManager(server.url);
  sessions.push(sessionManager);
  return { httpVersion: "2", sessionManager };
}

const VARIANTS: readonly Variant[] = [
  { name: "gRPC-Web binary over HTTP/1.1", transport: () => createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1", useBinaryFormat: true }) },
  { name: "gRPC-Web binary over HTTP/2", transport: () => createGrpcWebTransport({ baseUrl: server.url, ...http2(), useBinaryFormat: true }) },
  { name: "gRPC-Web JSON over HTTP/1.1", transport: () => createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1", useBinaryFormat: false }) },
  { name: "Connect binary over HTTP/1.1", transport: () => createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", useBinaryFormat: true }) },
  { name: "Connect binary over HTTP/2", transport: () => createConnectTransport({ baseUrl: server.url, ...http2(), useBinaryFormat: true }) },
  { name: "Connect JSON over HTTP/1.1", transport: () => createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", useBinaryFormat: false }) },
  { name: "Connect JSON over HTTP/2", transport: () => createConnectTransport({ baseUrl: server.url, ...http2(), useBinaryFormat: false }) },
  { name: "gRPC (Connect's client) over HTTP/2", transport: () => createGrpcTransport({ baseUrl: server.url, ...http2() }) },
];

const auth = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

describe.each(VARIANTS.map((v) => [v.name, v] as const))("%s", (_name, variant) => {
  let client: Client<typeof JobService>;
  beforeAll(() => {
    client = createClient(JobService, variant.transport());
  });

  test("creates and gets a job", async () => {
    const { job } = await client.createJob(
      { type: JobType.FORECAST, companyId: 7n, input: { kind: { case: "forecast", value: { nql: "select 1" } } } },
      auth(server.tokens.service),
    );
    expect(job?.state).toBe(JobState.PENDING);
    expect(job?.companyId).toBe(7n);
    const got = await client.getJob({ jobId: job?.id }, auth(server.tokens.reader));
    expect(got.job?.id).toBe(job?.id);
    expect(got.job?.input?.kind).toEqual({ case: "forecast", value: expect.objectContaining({ nql: "select 1" }) });
  });

  test("a bad token is UNAUTHENTICATED with an ErrorInfo", async () => {
    const error = await client.getJob({ jobId: "00000000-0000-4000-8000-000000000000" }, auth(generateSecret())).then(
      () => null,
      (e: unknown) => ConnectError.from(e),
    );
    expect(error?.code).toBe(Code.Unauthenticated);
    const [info] = error?.findDetails(ErrorInfoSchema) ?? [];
    expect(info).toMatchObject({ domain: "jobs.v1", reason: "INVALID_TOKEN" });
  });

  test("WatchJob streams a job's events until it completes", async () => {
    const { job } = await client.createJob({ type: JobType.FORECAST, companyId: 7n }, auth(server.tokens.service));
    const jobId = job?.id ?? "";
    const stream = client.watchJob({ jobId, afterRevision: 0n }, auth(server.tokens.reader))[Symbol.asyncIterator]();
    const types: JobEventType[] = [];
    const nextEvent = async () => {
      for (;;) {
        const r = await stream.next();
        if (r.done) return null;
        if (r.value.kind.case === "event") return r.value.kind.value;
      }
    };
    // The replayed CREATED event, then live ones as they commit.
    types.push((await nextEvent())?.type ?? JobEventType.UNSPECIFIED);
    await client.runJob({ jobId, executorId: "executor-1" }, auth(server.tokens.writer));
    types.push((await nextEvent())?.type ?? JobEventType.UNSPECIFIED);
    await client.completeJob({ jobId, result: { kind: { case: "forecast", value: { cost: 5n, rows: 6n } } } }, auth(server.tokens.writer));
    const completed = await nextEvent();
    types.push(completed?.type ?? JobEventType.UNSPECIFIED);
    expect(types).toEqual([JobEventType.CREATED, JobEventType.STARTED, JobEventType.COMPLETED]);
    expect(completed?.job?.result?.kind).toEqual({ case: "forecast", value: expect.objectContaining({ cost: 5n, rows: 6n }) });
    // The stream ends by itself (OK) after the COMPLETED event.
    expect(await nextEvent()).toBeNull();
  });
});

describe("plain fetch of JSON (Connect unary over HTTP/1.1)", () => {
  const post = (method: string, body: unknown, token: string | null) =>
    fetch(`${server.url}/jobs.v1.JobService/${method}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
  const json = async (res: Response) => (await res.json()) as Msg;

  test("CreateJob then GetJob", async () => {
    const created = await post("CreateJob", { type: "JOB_TYPE_FORECAST", companyId: "7", input: { forecast: { nql: "select 2" } } }, server.tokens.service);
    expect(created.status).toBe(200);
    expect(created.headers.get("content-type")).toMatch(/^application\/json/);
    const { job } = await json(created);
    expect(job).toMatchObject({ type: "JOB_TYPE_FORECAST", state: "JOB_STATE_PENDING", companyId: "7", revision: "1" });
    // JSON answers carry fields at their default values too (a service principal's ids are 0).
    expect(job.createdBy).toEqual({ type: "PRINCIPAL_TYPE_SERVICE", name: "test-service", companyId: "0", userId: "0" });

    const got = await post("GetJob", { jobId: job.id }, server.tokens.reader);
    expect(got.status).toBe(200);
    expect((await json(got)).job).toEqual(job);
  });

  test("proto field names are accepted too", async () => {
    const created = await post("CreateJob", { type: "JOB_TYPE_HEALTH_CHECK", company_id: "8" }, server.tokens.service);
    expect(created.status).toBe(200);
    expect((await json(created)).job.companyId).toBe("8");
  });

  test.each([
    ["a bad token", generateSecret(), "INVALID_TOKEN"],
    ["no token", null, "MISSING_TOKEN"],
  ])("%s gets a Connect JSON error with the code and an ErrorInfo detail", async (_what, token, reason) => {
    const res = await post("GetJob", { jobId: "00000000-0000-4000-8000-000000000000" }, token);
    expect(res.status).toBe(401);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    const body = await json(res);
    expect(body.code).toBe("unauthenticated");
    expect(typeof body.message).toBe("string");
    expect(body.message.length).toBeGreaterThan(10);
    expect(body.details).toHaveLength(1);
    expect(body.details[0].type).toBe("google.rpc.ErrorInfo");
    const info = fromBinary(ErrorInfoSchema, Buffer.from(body.details[0].value, "base64"));
    expect(info).toMatchObject({ domain: "jobs.v1", reason, metadata: { call: "GetJob" } });
  });

  test("a job another company cannot see is a JSON not_found error", async () => {
    const created = await json(await post("CreateJob", { type: "JOB_TYPE_FORECAST", companyId: "200" }, server.tokens.service));
    const res = await post("GetJob", { jobId: created.job.id }, server.tokens.companyA);
    expect(res.status).toBe(404);
    const body = await json(res);
    expect(body.code).toBe("not_found");
    const info = fromBinary(ErrorInfoSchema, Buffer.from(body.details[0].value, "base64"));
    expect(info).toMatchObject({ domain: "jobs.v1", reason: "JOB_NOT_FOUND", metadata: { job_id: created.job.id } });
  });
});

describe("a refused request's unread body", () => {
  /** One POST on `agent`; its status line, gRPC-Web status, and whether it went over a reused connection. */
  function post(agent: http.Agent, headers: http.OutgoingHttpHeaders, body: Buffer) {
    return new Promise<{ status: number; grpcStatus: string | undefined; reused: boolean }>((resolve, reject) => {
      const req = http.request(`${server.url}/jobs.v1.JobService/GetJob`, { method: "POST", agent, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, grpcStatus: /grpc-status: ?(\d+)/.exec(Buffer.concat(chunks).toString("latin1"))?.[1], reused: req.reusedSocket });
        });
      });
      const timer = setTimeout(() => reject(new Error("no answer within 10 s")), 10_000);
      req.on("error", reject);
      req.end(body);
    });
  }

  test("over HTTP/1.1 does not hold up the connection: the next request on it is answered", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      // A gRPC-Web body of one large envelope, no token: refused after a look at the envelope's length only.
      const body = Buffer.alloc(300_000);
      body.writeUInt32BE(body.length - 5, 1);
      const refused = [];
      for (let i = 0; i < 3; i++) refused.push(await post(agent, { "content-type": "application/grpc-web+proto" }, body));
      expect(refused.map((r) => [r.status, r.grpcStatus])).toEqual(Array(3).fill([200, "16"]));
      expect(refused.slice(1).every((r) => r.reused)).toBe(true);
      const json = Buffer.from(JSON.stringify({ jobId: "00000000-0000-4000-8000-000000000000" }));
      const served = await post(agent, { "content-type": "application/json", authorization: `Bearer ${server.tokens.service}` }, json);
      expect([served.status, served.reused]).toEqual([404, true]);
    } finally {
      agent.destroy();
    }
  });
});
