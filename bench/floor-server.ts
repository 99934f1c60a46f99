// A floor for the service's own cost: the least a Node server can do to
// answer the benchmark's three calls over gRPC, for measuring what the
// service's layers cost (`npm run bench -- --compare dist/bench/floor-server.js`).
//
// It answers CreateJob, RunJob and CompleteJob, and nothing else, with what
// the service cannot do without: node:http2's stream API, the generated
// protobuf-es codecs and the same conversions (src/rpc/convert.ts), the same
// domain decisions and the same statements, sent through the same pipelining
// pg client in a plain pg.Pool (bench/ceiling.ts's functions: BEGIN rides with
// the lock, COMMIT with the write, two round trips per transition, as in the
// server). What it leaves out is what the comparison prices: Connect (the
// handler context, the router), the interceptors (authentication: the token is
// not checked; errors, logging, metrics), request validation (beyond naming
// the enums), MikroORM and Kysely around the transaction, the per-job queue,
// the notifier. Not a server to run: no authentication, no limits, INTERNAL
// for any failure.

import http2 from "node:http2";
import { create, type DescMessage, fromBinary, toBinary } from "@bufbuild/protobuf";
import pg from "pg";
import {
  type CompleteJobRequest,
  CompleteJobRequestSchema,
  CompleteJobResponseSchema,
  type CreateJobRequest,
  CreateJobRequestSchema,
  CreateJobResponseSchema,
  type RunJobRequest,
  RunJobRequestSchema,
  RunJobResponseSchema,
} from "../src/gen/jobs/v1/job_service_pb.js";
import type { JobRecord } from "../src/domain/job.js";
import { inputToJson, jobToProto, resultToJson } from "../src/rpc/convert.js";
import { executionCluster, requireJobType } from "../src/rpc/validate.js";
import { PreparingClient } from "../src/store/prepared-client.js";
import { createJob, transition } from "./ceiling.js";

interface Method {
  readonly input: DescMessage;
  readonly output: DescMessage;
  readonly answer: (request: never, client: PreparingClient) => Promise<object>;
}

/** A transition response: the ceiling's transition() throws unless the call changed the job. */
const changed = (job: JobRecord) => ({ job: jobToProto(job), changed: true });

const METHODS: Record<string, Method> = {
  "/jobs.v1.JobService/CreateJob": {
    input: CreateJobRequestSchema,
    output: CreateJobResponseSchema,
    answer: async (req: CreateJobRequest, client) => {
      const fields = {
        // The enums' names, as the service converts them (an unknown value is refused).
        type: requireJobType(req.type),
        companyId: String(req.companyId),
        input: inputToJson(req.input),
        dataPlaneId: req.dataPlaneId,
        computePoolId: req.computePoolId,
        executionCluster: executionCluster(req.executionCluster),
      };
      return { job: jobToProto(await createJob(client, fields, req.requestId || null)) };
    },
  },
  "/jobs.v1.JobService/RunJob": {
    input: RunJobRequestSchema,
    output: RunJobResponseSchema,
    answer: async (req: RunJobRequest, client) =>
      changed(await transition(client, req.jobId, { call: "RunJob", executorId: req.executorId, leaseSeconds: req.leaseSeconds || 300 })),
  },
  "/jobs.v1.JobService/CompleteJob": {
    input: CompleteJobRequestSchema,
    output: CompleteJobResponseSchema,
    answer: async (req: CompleteJobRequest, client) => {
      const result = req.result;
      if (!result) throw new Error("result is required");
      const args = { call: "CompleteJob" as const, result: resultToJson(result), resultCase: result.kind.case ?? "", attempt: Number(req.attempt) };
      return changed(await transition(client, req.jobId, args));
    },
  },
};

async function serve(): Promise<void> {
  const poolConfig = {
    connectionString: process.env.DATABASE_URL,
    max: Number(process.env.DB_POOL_SIZE || 20),
    application_name: "jobs-bench-floor",
    Client: PreparingClient,
    // Passed on to each PreparingClient.
    pipelineTransactions: true,
    reuseRowDescriptions: true,
  } as pg.PoolConfig;
  const pool = new pg.Pool(poolConfig);

  const answer = async (method: Method, body: Buffer): Promise<Uint8Array> => {
    // One uncompressed message: a 5-byte envelope header, then the message.
    const request = fromBinary(method.input, body.subarray(5));
    const client = (await pool.connect()) as PreparingClient & pg.PoolClient;
    let message: object;
    try {
      message = await method.answer(request as never, client);
    } finally {
      client.release();
    }
    const bytes = toBinary(method.output, create(method.output, message as never));
    const framed = new Uint8Array(5 + bytes.length);
    new DataView(framed.buffer).setUint32(1, bytes.length);
    framed.set(bytes, 5);
    return framed;
  };

  const server = http2.createServer();
  server.on("stream", (stream, headers) => {
    const method = METHODS[String(headers[":path"])];
    const chunks: Buffer[] = [];
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () => {
      const reply = method ? answer(method, Buffer.concat(chunks)) : Promise.reject(new Error(`${headers[":path"]} is not served here`));
      reply.then(
        (framed) => respond(stream, framed, { "grpc-status": "0" }),
        (error: unknown) =>
          respond(stream, null, { "grpc-status": "13", "grpc-message": encodeURIComponent(error instanceof Error ? error.message : String(error)) }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(Number(process.env.PORT), process.env.HOST ?? "127.0.0.1", resolve));
  // bench/server.ts waits for this line.
  process.stderr.write("jobs is serving (benchmark floor server: CreateJob, RunJob, CompleteJob only)\n");
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  // bench/server.ts stops a server with SIGTERM and waits for it to exit.
  process.once("SIGTERM", () => {
    server.close();
    for (const session of sessions) session.close();
    void pool.end().finally(() => process.exit(0));
  });
}

function respond(stream: http2.ServerHttp2Stream, framed: Uint8Array | null, trailers: http2.OutgoingHttpHeaders): void {
  if (stream.destroyed) return;
  stream.respond({ ":status": 200, "content-type": "application/grpc+proto" }, { waitForTrailers: true });
  stream.once("wantTrailers", () => stream.sendTrailers(trailers));
  if (framed === null) stream.end();
  else stream.end(framed);
}

if (process.argv[2] === "serve") {
  await serve();
} else {
  process.stderr.write("usage: node dist/bench/floor-server.js serve (HOST, PORT, DATABASE_URL from the environment; started by npm run bench -- --compare)\n");
  process.exit(2);
}
