// An independent client: stock @grpc/grpc-js loading the .proto files (not
// our generated TypeScript), so the tests check the wire contract as another
// language would see it.
//
// Messages use the proto field names (keepCase), int64 as strings, enums as
// names. google.protobuf.Value/Struct fields are camelCase even so
// (protobufjs quirk): { stringValue: "x" }, { fields: { k: { numberValue: 1 } } }.

import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const PROTO_ROOT = join(import.meta.dirname, "..", "..", "proto");

const definition = protoLoader.loadSync(["jobs/v1/job_service.proto", "grpc/health/v1/health.proto"], {
  includeDirs: [PROTO_ROOT],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
const loaded = grpc.loadPackageDefinition(definition) as unknown as {
  jobs: { v1: { JobService: grpc.ServiceClientConstructor } };
  grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
};

// biome-ignore lint: protobufjs messages are untyped here by design
export type Msg = Record<string, any>;

export interface RpcError extends grpc.ServiceError {
  /** The google.rpc.ErrorInfo detail, decoded from grpc-status-details-bin. */
  errorInfo?: { reason: string; domain: string; metadata: Record<string, string> };
}

export interface JobsClient {
  /** Calls a unary method; rejects with RpcError. */
  call(method: string, request: Msg, token?: string | null): Promise<Msg>;
  /** Calls a unary method; resolves with the error (or throws if it succeeded). */
  fail(method: string, request: Msg, token?: string | null): Promise<RpcError>;
  /** Opens a server stream. */
  stream(method: string, request: Msg, token?: string | null): grpc.ClientReadableStream<Msg>;
  health(service?: string): Promise<string>;
  raw: grpc.Client;
  close(): void;
}

/** `options` go to the channel: `{ "grpc.use_local_subchannel_pool": 1 }` gives the client a connection of its own. */
export function jobsClient(address: string, defaultToken: string | null, options: grpc.ChannelOptions = {}): JobsClient {
  const client = new loaded.jobs.v1.JobService(address, grpc.credentials.createInsecure(), {
    "grpc.max_receive_message_length": 64 * 1024 * 1024,
    "grpc.max_send_message_length": 64 * 1024 * 1024,
    ...options,
  });
  const healthClient = new loaded.grpc.health.v1.Health(address, grpc.credentials.createInsecure());
  const metadataFor = (token: string | null | undefined) => {
    const md = new grpc.Metadata();
    const t = token === undefined ? defaultToken : token;
    if (t !== null) md.set("authorization", `Bearer ${t}`);
    return md;
  };
  const lowerFirst = (m: string) => m[0].toLowerCase() + m.slice(1);
  const call = (method: string, request: Msg, token?: string | null) =>
    new Promise<Msg>((resolve, reject) => {
      // biome-ignore lint: dynamic method lookup
      (client as any)[lowerFirst(method)](request, metadataFor(token), (err: grpc.ServiceError | null, res: Msg) =>
        err ? reject(withErrorInfo(err)) : resolve(res),
      );
    });
  return {
    call,
    async fail(method, request, token) {
      try {
        const res = await call(method, request, token);
        throw new Error(`${method} succeeded but was expected to fail: ${JSON.stringify(res).slice(0, 300)}`);
      } catch (error) {
        if ((error as RpcError).code === undefined) throw error;
        return error as RpcError;
      }
    },
    stream(method, request, token) {
      // biome-ignore lint: dynamic method lookup
      const s = (client as any)[lowerFirst(method)](request, metadataFor(token)) as grpc.ClientReadableStream<Msg>;
      return s;
    },
    health(service = "") {
      return new Promise((resolve, reject) =>
        // biome-ignore lint: dynamic method lookup
        (healthClient as any).check({ service }, (err: grpc.ServiceError | null, res: Msg) =>
          err ? reject(err) : resolve(res.status as string),
        ),
      );
    },
    raw: client,
    close() {
      client.close();
      healthClient.close();
    },
  };
}

export function withErrorInfo(err: grpc.ServiceError): RpcError {
  const e = err as RpcError;
  const bin = err.metadata?.get("grpc-status-details-bin")?.[0];
  if (bin instanceof Buffer) e.errorInfo = decodeErrorInfo(bin);
  return e;
}

/** google.rpc.Status → the first google.rpc.ErrorInfo in its details, decoded by hand (no proto types needed). */
export function decodeErrorInfo(status: Buffer): RpcError["errorInfo"] {
  for (const [field, value] of fields(status)) {
    if (field !== 3 || !(value instanceof Buffer)) continue;
    let typeUrl = "";
    let payload: Buffer | undefined;
    for (const [f, v] of fields(value)) {
      if (f === 1 && v instanceof Buffer) typeUrl = v.toString("utf8");
      if (f === 2 && v instanceof Buffer) payload = v;
    }
    if (!typeUrl.endsWith("google.rpc.ErrorInfo") || !payload) continue;
    const info = { reason: "", domain: "", metadata: {} as Record<string, string> };
    for (const [f, v] of fields(payload)) {
      if (!(v instanceof Buffer)) continue;
      if (f === 1) info.reason = v.toString("utf8");
      if (f === 2) info.domain = v.toString("utf8");
      if (f === 3) {
        let key = "";
        let val = "";
        for (const [ef, ev] of fields(v)) {
          if (ef === 1 && ev instanceof Buffer) key = ev.toString("utf8");
          if (ef === 2 && ev instanceof Buffer) val = ev.toString("utf8");
        }
        info.metadata[key] = val;
      }
    }
    return info;
  }
  return undefined;
}

function* fields(buf: Buffer): Generator<[number, Buffer | bigint]> {
  let pos = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const byte = buf[pos++];
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return result;
      shift += 7n;
    }
  };
  while (pos < buf.length) {
    const key = Number(varint());
    const field = key >> 3;
    const wire = key & 7;
    if (wire === 0) yield [field, varint()];
    else if (wire === 2) {
      const len = Number(varint());
      yield [field, buf.subarray(pos, pos + len)];
      pos += len;
    } else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else throw new Error(`unsupported wire type ${wire}`);
  }
}

/** Collects a stream's messages until it ends; resolves with them and the final status. */
export function collect(stream: grpc.ClientReadableStream<Msg>): Promise<{ messages: Msg[]; error: RpcError | null }> {
  return new Promise((resolve) => {
    const messages: Msg[] = [];
    stream.on("data", (m: Msg) => messages.push(m));
    stream.on("error", (err: grpc.ServiceError) => resolve({ messages, error: withErrorInfo(err) }));
    stream.on("end", () => resolve({ messages, error: null }));
  });
}

/**
 * Reads a stream message by message. Use one reader per stream: it keeps the
 * stream's own buffering (a bare "data" listener would lose messages once
 * removed).
 */
export function reader(stream: grpc.ClientReadableStream<Msg>) {
  const it = stream[Symbol.asyncIterator]() as AsyncIterator<Msg>;
  return {
    /** The next message; null when the stream ended OK; rejects with the stream's error. */
    async next(timeoutMs = 10_000): Promise<Msg | null> {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no stream message within ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        const r = await Promise.race([it.next(), timeout]);
        return r.done ? null : r.value;
      } catch (error) {
        if ((error as grpc.ServiceError).code !== undefined) throw withErrorInfo(error as grpc.ServiceError);
        throw error;
      } finally {
        clearTimeout(timer);
      }
    },
    /** The next `n` messages. */
    async take(n: number, timeoutMs = 10_000): Promise<Msg[]> {
      const got: Msg[] = [];
      while (got.length < n) {
        const m = await this.next(timeoutMs);
        if (m === null) throw new Error(`stream ended after ${got.length} of ${n} messages`);
        got.push(m);
      }
      return got;
    },
  };
}
