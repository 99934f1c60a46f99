// grpc.health.v1.Health as any gRPC client sees it: stock grpc-js loading
// the vendored health.proto, no token. Check and Watch (support/grpc.ts only
// has Check).

import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { type Msg, reader, type RpcError, withErrorInfo } from "./grpc.js";

const PROTO_ROOT = join(import.meta.dirname, "..", "..", "proto");

const definition = protoLoader.loadSync(["grpc/health/v1/health.proto"], {
  includeDirs: [PROTO_ROOT],
  keepCase: true,
  enums: String,
  defaults: true,
});
const Health = (grpc.loadPackageDefinition(definition) as unknown as { grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } } })
  .grpc.health.v1.Health;

export interface HealthClient {
  /** The status name (SERVING, NOT_SERVING …); rejects with the RpcError. */
  check(service: string, deadlineMs?: number): Promise<string>;
  /** Check's outcome as a value: the status name, or the gRPC code name of the error. */
  checkOutcome(service: string, deadlineMs?: number): Promise<string>;
  /** A Watch stream and a reader over it. */
  watch(service: string): { stream: grpc.ClientReadableStream<Msg>; next(timeoutMs?: number): Promise<string | null> };
  close(): void;
}

export function healthClient(address: string): HealthClient {
  const client = new Health(address, grpc.credentials.createInsecure());
  const check = (service: string, deadlineMs = 10_000) =>
    new Promise<string>((resolve, reject) => {
      // biome-ignore lint: dynamic method on the untyped grpc-js client
      (client as any).check({ service }, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err: grpc.ServiceError | null, res: Msg) =>
        err ? reject(withErrorInfo(err)) : resolve(res.status as string),
      );
    });
  return {
    check,
    async checkOutcome(service, deadlineMs) {
      try {
        return await check(service, deadlineMs);
      } catch (error) {
        const code = (error as RpcError).code;
        if (code === undefined) throw error;
        return grpc.status[code];
      }
    },
    watch(service) {
      // biome-ignore lint: dynamic method on the untyped grpc-js client
      const stream = (client as any).watch({ service }) as grpc.ClientReadableStream<Msg>;
      stream.on("error", () => {}); // surfaced by the reader; keeps cancel()'s CANCELLED from going unhandled
      const messages = reader(stream);
      return {
        stream,
        async next(timeoutMs?: number) {
          const m = await messages.next(timeoutMs);
          return m === null ? null : (m.status as string);
        },
      };
    },
    close: () => client.close(),
  };
}
