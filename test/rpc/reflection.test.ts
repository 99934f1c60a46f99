// gRPC server reflection (docs/contract.md): `buf curl` finds and calls the
// service with no proto files, over both reflection versions; grpc-js speaking grpc.reflection.v1 and v1alpha
// directly gets the service list, every file a client needs to describe
// jobs.v1.JobService, google.rpc.ErrorInfo, and the protos' comments. No
// token anywhere.

import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { fromBinary } from "@bufbuild/protobuf";
import { type FileDescriptorProto, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import type { Msg } from "../support/grpc.js";
import { startServer, type TestServer } from "../support/harness.js";

const ROOT = join(import.meta.dirname, "..", "..");
const BUF = join(ROOT, "node_modules", ".bin", "buf");
const run = promisify(execFile);

const JOB_SERVICE_METHODS = [
  "CancelJob",
  "CompleteJob",
  "CountJobs",
  "CreateJob",
  "FailJob",
  "GetJob",
  "HeartbeatJob",
  "ListJobEvents",
  "ListJobs",
  "RequestJobCancellation",
  "RunJob",
  "WatchJob",
  "WatchJobs",
];
const SERVICES = ["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection", "jobs.v1.JobService"];

let server: TestServer;

beforeAll(async () => {
  server = await startServer();
});

afterAll(async () => {
  await server?.stop();
});

/** `buf curl` over h2c with the gRPC protocol (async: the server runs in this process). */
async function bufCurl(args: string[]): Promise<string> {
  const { stdout } = await run(BUF, ["curl", "--http2-prior-knowledge", "--protocol", "grpc", ...args], {
    cwd: ROOT,
    timeout: 30_000,
  });
  return stdout;
}

describe("buf curl, with no proto files", () => {
  test.each(["grpc-v1", "grpc-v1alpha"])("lists the services and methods through %s reflection", async (protocol) => {
    const services = (await bufCurl(["--reflect-protocol", protocol, "--list-services", server.url])).trim().split("\n");
    expect([...services].sort()).toEqual(SERVICES);
    // Every method of every service; JobService's are the twelve of docs/contract.md §2.
    const methods = (await bufCurl(["--reflect-protocol", protocol, "--list-methods", server.url])).trim().split("\n");
    expect(methods.filter((m) => m.startsWith("jobs.v1.JobService/")).sort()).toEqual(JOB_SERVICE_METHODS.map((m) => `jobs.v1.JobService/${m}`));
    expect(methods).toEqual(expect.arrayContaining(["grpc.health.v1.Health/Check", "grpc.health.v1.Health/Watch"]));
  });

  test.each(["grpc-v1", "grpc-v1alpha"])("creates and then gets a job from JSON through %s reflection", async (protocol) => {
    const auth = ["-H", `authorization: Bearer ${server.tokens.service}`];
    const created = JSON.parse(
      await bufCurl([
        "--reflect-protocol",
        protocol,
        ...auth,
        "-d",
        JSON.stringify({ type: "JOB_TYPE_FORECAST", companyId: "42", input: { forecast: { nql: "select 1" } } }),
        `${server.url}/jobs.v1.JobService/CreateJob`,
      ]),
    );
    expect(created.job).toMatchObject({ type: "JOB_TYPE_FORECAST", state: "JOB_STATE_PENDING", companyId: "42", revision: "1" });
    expect(created.job.input).toEqual({ forecast: { nql: "select 1" } });

    const got = JSON.parse(
      await bufCurl(["--reflect-protocol", protocol, ...auth, "-d", JSON.stringify({ jobId: created.job.id }), `${server.url}/jobs.v1.JobService/GetJob`]),
    );
    expect(got.job).toEqual(created.job);
  });

  test("reflection works with no token at all, while the call itself still needs one", async () => {
    // No -H at all: reflection answers (else buf could not encode the request), then CreateJob is refused for want of a token.
    const failed = await bufCurl(["-d", JSON.stringify({ type: "JOB_TYPE_FORECAST", companyId: "1" }), `${server.url}/jobs.v1.JobService/CreateJob`]).then(
      (out) => ({ ok: true, out }),
      (error: { code?: number; stderr?: string }) => ({ ok: false, out: error.stderr ?? "" }),
    );
    expect(failed.ok).toBe(false);
    expect(failed.out).toMatch(/unauthenticated/i);
  });
});

// grpc-js, loading the vendored reflection protos: both versions side by side.
const reflectionPackages = (() => {
  const definition = protoLoader.loadSync(["grpc/reflection/v1/reflection.proto", "grpc/reflection/v1alpha/reflection.proto"], {
    includeDirs: [join(ROOT, "proto")],
    keepCase: true,
    defaults: true,
    oneofs: true,
  });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    grpc: { reflection: Record<"v1" | "v1alpha", { ServerReflection: grpc.ServiceClientConstructor }> };
  };
  return loaded.grpc.reflection;
})();

/** Sends each request on one ServerReflectionInfo stream and resolves with the answers, in order. */
async function reflect(version: "v1" | "v1alpha", requests: Msg[], authorization?: string): Promise<Msg[]> {
  const client = new reflectionPackages[version].ServerReflection(server.address, grpc.credentials.createInsecure());
  try {
    const md = new grpc.Metadata();
    if (authorization) md.set("authorization", authorization);
    // biome-ignore lint: dynamic method on the untyped grpc-js client
    const call = (client as any).serverReflectionInfo(md) as grpc.ClientDuplexStream<Msg, Msg>;
    const answers = new Promise<Msg[]>((resolve, reject) => {
      const got: Msg[] = [];
      call.on("data", (m: Msg) => got.push(m));
      call.on("error", reject);
      call.on("end", () => resolve(got));
    });
    for (const request of requests) call.write(request);
    call.end();
    return await answers;
  } finally {
    client.close();
  }
}

function files(answer: Msg): FileDescriptorProto[] {
  expect(answer.message_response).toBe("file_descriptor_response");
  return (answer.file_descriptor_response.file_descriptor_proto as Buffer[]).map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes));
}

describe.each(["v1", "v1alpha"] as const)("grpc.reflection.%s over grpc-js", (version) => {
  test("list_services names every service, with no token", async () => {
    const [answer] = await reflect(version, [{ list_services: "" }]);
    expect(answer.message_response).toBe("list_services_response");
    expect(answer.list_services_response.service.map((s: Msg) => s.name).sort()).toEqual(SERVICES);
  });

  test("file_containing_symbol jobs.v1.JobService returns its file and every file it depends on", async () => {
    const [answer] = await reflect(version, [{ file_containing_symbol: "jobs.v1.JobService" }]);
    const returned = files(answer);
    expect(returned[0].name).toBe("jobs/v1/job_service.proto");
    const names = new Set(returned.map((f) => f.name));
    // Closed under imports: a client that knows no proto file can build them all.
    for (const file of returned) for (const dep of file.dependency) expect(names).toContain(dep);
    for (const expected of ["jobs/v1/job.proto", "google/protobuf/struct.proto", "google/protobuf/timestamp.proto"]) expect(names).toContain(expected);

    const service = returned[0].service.find((s) => s.name === "JobService");
    expect(service?.method.map((m) => m.name).sort()).toEqual(JOB_SERVICE_METHODS);
    const watch = service?.method.find((m) => m.name === "WatchJob");
    expect([watch?.inputType, watch?.outputType, watch?.serverStreaming]).toEqual([".jobs.v1.WatchJobRequest", ".jobs.v1.WatchJobResponse", true]);
  });

  test("describes methods, messages and files by name; unknown names are NOT_FOUND errors", async () => {
    const [method, message, byName, unknown] = await reflect(version, [
      { file_containing_symbol: "jobs.v1.JobService.CreateJob" },
      { file_containing_symbol: "jobs.v1.Job" },
      { file_by_filename: "jobs/v1/job.proto" },
      { file_containing_symbol: "jobs.v1.NoSuchThing" },
    ]);
    expect(files(method)[0].name).toBe("jobs/v1/job_service.proto");
    expect(files(message)[0].name).toBe("jobs/v1/job.proto");
    const job = files(byName);
    expect(job[0].name).toBe("jobs/v1/job.proto");
    expect(job[0].messageType.map((m) => m.name)).toEqual(expect.arrayContaining(["Job", "JobInput", "JobResult", "JobEvent", "Principal"]));
    expect(unknown.message_response).toBe("error_response");
    expect(unknown.error_response.error_code).toBe(grpc.status.NOT_FOUND);
  });

  test("resolves google.rpc.ErrorInfo, the type of every error's detail, by symbol and by file", async () => {
    const [bySymbol, byFile] = await reflect(version, [
      { file_containing_symbol: "google.rpc.ErrorInfo" },
      { file_by_filename: "google/rpc/error_details.proto" },
    ]);
    for (const answer of [bySymbol, byFile]) {
      const [file] = files(answer);
      expect(file.name).toBe("google/rpc/error_details.proto");
      expect(file.package).toBe("google.rpc");
      const info = file.messageType.find((m) => m.name === "ErrorInfo");
      expect(info?.field.map((f) => f.name)).toEqual(["reason", "domain", "metadata"]);
    }
  });

  test("serves the protos' comments (source info): a JobService method's descriptor carries its documentation", async () => {
    const [answer] = await reflect(version, [{ file_containing_symbol: "jobs.v1.JobService.CreateJob" }]);
    const [file] = files(answer);
    const service = file.service.findIndex((s) => s.name === "JobService");
    const method = file.service[service].method.findIndex((m) => m.name === "CreateJob");
    // SourceCodeInfo paths: 6 = FileDescriptorProto.service, 2 = ServiceDescriptorProto.method.
    const location = file.sourceCodeInfo?.location.find((l) => l.path.join(".") === `6.${service}.2.${method}`);
    expect(location?.leadingComments).toMatch(/^ Creates a job in PENDING\. With `request_id`/);
    const job = files((await reflect(version, [{ file_containing_symbol: "jobs.v1.Job" }]))[0])[0];
    expect(job.sourceCodeInfo?.location.some((l) => (l.leadingComments ?? "").length > 0)).toBe(true);
  });

  test("a garbage authorization header does not get in the way", async () => {
    const [answer] = await reflect(version, [{ list_services: "" }], "Bearer nope");
    expect(answer.list_services_response.service.map((s: Msg) => s.name)).toContain("jobs.v1.JobService");
  });
});
