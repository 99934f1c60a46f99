// The load generator's gRPC client: stock @grpc/grpc-js with the .proto files
// loaded at run time (as test/support/grpc.ts does), not our generated code,
// so the benchmark sees the service as any other gRPC client would.

import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const PROTO_ROOT = join(import.meta.dirname, "..", "..", "proto");

const definition = protoLoader.loadSync(["jobs/v1/job_service.proto"], {
  includeDirs: [PROTO_ROOT],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
const JobService = (grpc.loadPackageDefinition(definition) as unknown as {
  jobs: { v1: { JobService: grpc.ServiceClientConstructor } };
}).jobs.v1.JobService;

// biome-ignore lint: protobufjs messages are untyped here by design
export type Msg = Record<string, any>;

export class JobsClient {
  private readonly client: grpc.Client;

  /** Each JobsClient has its own HTTP/2 connection (a local subchannel pool), like a separate client process. */
  constructor(
    address: string,
    private readonly token: string,
  ) {
    this.client = new JobService(address, grpc.credentials.createInsecure(), {
      "grpc.use_local_subchannel_pool": 1,
      "grpc.max_receive_message_length": 64 * 1024 * 1024,
    });
  }

  private metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${this.token}`);
    return md;
  }

  /** A unary call by method name (camelCase, as grpc-js names them). */
  call(method: string, request: Msg): Promise<Msg> {
    return new Promise((resolve, reject) => {
      // biome-ignore lint: dynamic method lookup
      (this.client as any)[method](request, this.metadata(), (error: grpc.ServiceError | null, response: Msg) =>
        error ? reject(error) : resolve(response),
      );
    });
  }

  watchJob(jobId: string, afterRevision: number): grpc.ClientReadableStream<Msg> {
    // biome-ignore lint: dynamic method lookup
    return (this.client as any).watchJob({ job_id: jobId, after_revision: String(afterRevision) }, this.metadata());
  }

  /** Resolves once the connection is up, so that connecting is not part of a measurement. */
  ready(timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) =>
      this.client.waitForReady(Date.now() + timeoutMs, (error) => (error ? reject(error) : resolve())),
    );
  }

  close(): void {
    this.client.close();
  }
}

export { grpc };
