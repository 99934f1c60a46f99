// Hostile requests for every JobService RPC, as fast-check arbitraries: what
// the hostile-input proof (test/rpc/fuzz.test.ts) throws at the server. Four
// families, as issue 10 names them:
//   bytes      random bytes, or a valid message with bytes flipped, cut or
//              inserted, as a gRPC protobuf body
//   json       Connect JSON with wrong types, unknown fields, huge strings,
//              unknown enum names and numbers, bad UUIDs and page tokens,
//              deep arrays/objects (up to 200 levels), or text that is not JSON
//   oversized  messages over MAX_MESSAGE_BYTES, and envelopes claiming to be
//   framing    gRPC bodies whose 5-byte framing lies (flags, lengths, counts),
//              or that name an encoding the server lacks
//   compressed gzip or brotli bodies: of hostile bytes or JSON, of a valid
//              message, bytes that do not decompress, and small bodies that
//              decompress past MAX_MESSAGE_BYTES
//   valid      well-formed messages of the right type with random field
//              values, built from the proto descriptors, so every field of
//              every request is reached
// The requests are derived from the descriptors in src/gen, so a field added
// to a request is fuzzed without anyone editing this file.

import { create, type DescField, type DescMessage, type DescMethod, fromJson, type JsonValue, ScalarType, toBinary, toJson } from "@bufbuild/protobuf";
import { TimestampSchema, ValueSchema } from "@bufbuild/protobuf/wkt";
import { brotliCompressSync, gzipSync } from "node:zlib";
import fc from "fast-check";
import { JobService } from "../../src/gen/jobs/v1/job_service_pb.js";
import { envelope } from "./raw-calls.js";

export type Family = "bytes" | "json" | "oversized" | "framing" | "compressed" | "valid";

export interface Probe {
  readonly method: DescMethod;
  readonly family: Family;
  /** grpc: protobuf over gRPC; connect: JSON over the Connect protocol. */
  readonly protocol: "grpc" | "connect";
  /** gRPC: the message bytes (or the whole body when `framed`); Connect: the JSON text. */
  readonly body: Uint8Array | string;
  /** The body already carries its own (possibly lying) gRPC framing. */
  readonly framed: boolean;
  /** Which of the context's tokens it sends. */
  readonly token: string;
  /** More request headers (an encoding). */
  readonly headers?: Record<string, string>;
}

export interface HostileContext {
  /** Ids of jobs that exist, of every company and state. */
  readonly jobIds: readonly string[];
  /** Page tokens the server issued (for some listing, to some caller). */
  readonly pageTokens: readonly string[];
  /** Names of the tokens a probe may send (the caller maps them to secrets, "none" to no header). */
  readonly tokens: readonly string[];
  readonly maxMessageBytes: number;
}

export const METHODS: readonly DescMethod[] = JobService.methods;

// Bodies from the denial-of-service probe (issue 24): each costs the sender
// nothing and, unbounded, cost the server about a second of CPU to decode.

/** A Connect JSON body of about `bytes` bytes: a GetJob request followed by as many unknown keys as fit. */
export function unknownKeysJson(bytes: number): Buffer {
  const keys: string[] = [];
  let size = 60;
  for (let i = 0; size < bytes; i++) {
    const key = `"k${i.toString(36)}":1`;
    keys.push(key);
    size += key.length + 1;
  }
  return Buffer.from(`{"jobId":"00000000-0000-4000-8000-000000000000",${keys.join(",")}}`);
}

/** A Connect JSON body whose unknown field nests `levels` arrays deep. */
export function deepNestingJson(levels: number): Buffer {
  return Buffer.from(`{"jobId":"00000000-0000-4000-8000-000000000000","x":${"[".repeat(levels)}${"]".repeat(levels)}}`);
}

/** A protobuf message of `bytes` bytes made only of unknown fields: field 15, varint 0, two bytes each. */
export function unknownFieldsBinary(bytes: number): Buffer {
  const message = Buffer.alloc(bytes - (bytes % 2));
  for (let i = 0; i < message.length; i += 2) message[i] = 0x78;
  return message;
}

/** `depth` arrays (or objects) around a leaf. */
export function nested(depth: number, shape: "array" | "object" = "array"): JsonValue {
  let value: JsonValue = "leaf";
  for (let i = 0; i < depth; i++) value = shape === "array" ? [value] : { k: value };
  return value;
}

const INTERESTING_INT32 = [0, 1, -1, 2, 50, 999, 1000, 1001, 86_400, 86_401, 2_147_483_647, -2_147_483_648];
const INTERESTING_INT64 = [0n, 1n, -1n, 2n, 3n, 100n, 200n, 9_007_199_254_740_991n, 9_007_199_254_740_993n, 9_223_372_036_854_775_807n, -9_223_372_036_854_775_808n];

const jsonLeaf = fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<JsonValue>;

/** A string field's value: by the field's name where the name says what it holds. */
function stringArb(name: string, ctx: HostileContext): fc.Arbitrary<string> {
  const garbage = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: "binary", maxLength: 40 }), fc.constant(""));
  switch (name) {
    case "job_id":
      return fc.oneof(
        { arbitrary: fc.constantFrom(...ctx.jobIds), weight: 5 },
        { arbitrary: fc.uuid(), weight: 2 },
        { arbitrary: fc.constantFrom(...ctx.jobIds).map((id) => id.toUpperCase()), weight: 1 },
        { arbitrary: garbage, weight: 1 },
      );
    case "request_id":
      return fc.oneof(fc.uuid(), fc.constantFrom("00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"), garbage);
    case "page_token":
      return fc.oneof(fc.constantFrom(...ctx.pageTokens), base64Garbage(), forgedPageToken(), garbage);
    case "executor_id":
      return fc.oneof({ arbitrary: fc.constantFrom("executor-1", "executor-2"), weight: 4 }, fc.string({ maxLength: 300 }), garbage);
    default:
      return fc.oneof(fc.string({ maxLength: 60 }), garbage);
  }
}

function base64Garbage(): fc.Arbitrary<string> {
  return fc.uint8Array({ maxLength: 120 }).map((bytes) => Buffer.from(bytes).toString("base64url"));
}

/** Tokens shaped like the server's (base64url JSON {v, f, p}) with made-up fingerprints and positions. */
function forgedPageToken(): fc.Arbitrary<string> {
  return fc
    .record({ v: fc.oneof(fc.constant(1), jsonLeaf), f: fc.oneof(fc.string({ maxLength: 22 }), jsonLeaf), p: jsonLeaf })
    .map((envelope) => Buffer.from(JSON.stringify(envelope)).toString("base64url"));
}

/** Values that get a call past validation, for the int fields whose name says what they hold: so that "valid" calls often succeed and change jobs. */
const SANE: Record<string, readonly (number | bigint)[]> = {
  company_id: [100n, 200n, 7n],
  attempt: [0n, 1n, 2n],
  after_revision: [0n, 1n, 2n, 3n],
  lease_seconds: [0, 3600],
  page_size: [0, 1, 2, 50],
};

function scalarArb(scalar: ScalarType, name: string, ctx: HostileContext): fc.Arbitrary<unknown> {
  const sane = SANE[name];
  if (sane) return fc.oneof({ arbitrary: fc.constantFrom(...sane), weight: 3 }, { arbitrary: anyScalarArb(scalar, name, ctx), weight: 1 });
  return anyScalarArb(scalar, name, ctx);
}

function anyScalarArb(scalar: ScalarType, name: string, ctx: HostileContext): fc.Arbitrary<unknown> {
  switch (scalar) {
    case ScalarType.STRING:
      return stringArb(name, ctx);
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return fc.oneof(fc.constantFrom(...INTERESTING_INT32), fc.integer());
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return fc.nat();
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return fc.oneof(fc.constantFrom(...INTERESTING_INT64), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }));
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return fc.double();
    case ScalarType.BYTES:
      return fc.uint8Array({ maxLength: 40 });
  }
}

function enumArb(values: readonly number[]): fc.Arbitrary<number> {
  // Known values, and numbers the enum does not have (proto3 enums are open: they travel).
  return fc.oneof({ arbitrary: fc.constantFrom(...values.filter((v) => v !== 0)), weight: 5 }, { arbitrary: fc.integer({ min: -3, max: 64 }), weight: 1 });
}

/** A message of type `desc` with random field values; `depth` bounds how far message fields recurse. */
export function messageArb(desc: DescMessage, ctx: HostileContext, depth = 3): fc.Arbitrary<unknown> {
  switch (desc.typeName) {
    case "google.protobuf.Value":
      return fc.oneof(jsonLeaf, fc.integer({ min: 0, max: 40 }).map((d) => nested(d)), fc.integer({ min: 0, max: 40 }).map((d) => nested(d, "object"))).map(
        (json) => fromJson(ValueSchema, json),
      );
    case "google.protobuf.Struct":
      // protobuf-es holds a Struct field as the plain JSON object it stands for.
      return fc.oneof(fc.dictionary(fc.string({ maxLength: 8 }), jsonLeaf, { maxKeys: 4 }), fc.integer({ min: 1, max: 40 }).map((d) => nested(d, "object")));
    case "google.protobuf.Timestamp":
      return fc
        .record({ seconds: fc.bigInt({ min: -62_135_596_800n, max: 253_402_300_799n }), nanos: fc.integer({ min: 0, max: 999_999_999 }) })
        .map((ts) => create(TimestampSchema, ts));
  }
  const model: Record<string, fc.Arbitrary<unknown>> = {};
  for (const member of desc.members) {
    if (member.kind === "oneof") {
      const cases = member.fields.flatMap((f) => {
        const value = fieldArb(f, ctx, depth);
        return value ? [value.map((v) => ({ case: f.localName, value: v }))] : [];
      });
      if (cases.length > 0) model[member.localName] = fc.option(fc.oneof(...cases), { nil: undefined });
      continue;
    }
    const value = fieldArb(member, ctx, depth);
    if (value) model[member.localName] = fc.option(value, { nil: undefined, freq: 6 });
  }
  return fc.record(model).map((init) => create(desc, Object.fromEntries(Object.entries(init).filter(([, v]) => v !== undefined))));
}

function fieldArb(field: DescField, ctx: HostileContext, depth: number): fc.Arbitrary<unknown> | null {
  switch (field.fieldKind) {
    case "scalar":
      return scalarArb(field.scalar, field.name, ctx);
    case "enum":
      return enumArb(field.enum.values.map((v) => v.number));
    case "message":
      return depth > 0 ? messageArb(field.message, ctx, depth - 1) : null;
    case "list": {
      const element =
        field.listKind === "enum"
          ? enumArb(field.enum.values.map((v) => v.number))
          : field.listKind === "message"
            ? depth > 0
              ? messageArb(field.message, ctx, depth - 1)
              : null
            : scalarArb(field.scalar, field.name, ctx);
      return element && fc.array(element, { maxLength: 4 });
    }
    case "map":
      return null; // no request has one
  }
}

/** A JSON value for a field that is wrong in one of the ways issue 10 lists (or right, now and then). */
function hostileValue(field: DescField, ctx: HostileContext, depth: number): fc.Arbitrary<unknown> {
  const right = fieldArb(field, ctx, depth);
  const rightJson = right ? right.map((v) => jsonOf(field, v)) : fc.constant(null);
  return fc.oneof(
    { arbitrary: rightJson, weight: 4 },
    { arbitrary: fc.oneof(fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(jsonLeaf, { maxLength: 3 }), fc.object({ maxDepth: 2 })), weight: 3 },
    { arbitrary: fc.integer({ min: 100, max: 30_000 }).map((n) => "x".repeat(n)), weight: 1 },
    { arbitrary: fc.constantFrom("JOB_STATE_NOPE", "JOB_TYPE_", "jobState.RUNNING", "RUNNING", "1e3", "0x10", "NaN", "Infinity", "-0", " 7", "99999999999999999999"), weight: 1 },
    { arbitrary: fc.oneof(fc.uuid().map((u) => u.slice(1)), fc.uuid().map((u) => `${u}0`), fc.constant("00000000-0000-0000-0000-00000000000g")), weight: 1 },
    { arbitrary: fc.oneof(base64Garbage(), forgedPageToken()), weight: 1 },
    { arbitrary: fc.integer({ min: 1, max: 200 }).chain((d) => fc.constantFrom(nested(d), nested(d, "object"))), weight: 1 },
  );
}

/** The JSON form of a field value made by `fieldArb`. */
function jsonOf(field: DescField, value: unknown): unknown {
  // Round-trip through a one-field message so that int64, enums, Value and Timestamp take their JSON shapes.
  const message = create(field.parent, field.oneof ? { [field.oneof.localName]: { case: field.localName, value } } : { [field.localName]: value });
  const json = toJson(field.parent, message, { alwaysEmitImplicit: true }) as Record<string, unknown>;
  return json[field.jsonName];
}

function hostileJson(method: DescMethod, ctx: HostileContext): fc.Arbitrary<string> {
  const model: Record<string, fc.Arbitrary<unknown>> = {};
  const names: Record<string, fc.Arbitrary<string>> = {};
  for (const field of method.input.fields) {
    model[field.name] = fc.option(hostileValue(field, ctx, 2), { nil: undefined });
    names[field.name] = fc.constantFrom(field.jsonName, field.name);
  }
  const unknownFields = fc.dictionary(fc.string({ maxLength: 12 }), jsonLeaf, { maxKeys: 3 });
  const object = fc.tuple(fc.record(model), fc.record(names), unknownFields).map(([values, keys, extra]) => {
    const out: Record<string, unknown> = { ...extra };
    for (const [name, value] of Object.entries(values)) if (value !== undefined) out[keys[name]] = value;
    return JSON.stringify(out);
  });
  // Text that is not JSON at all, or JSON cut short or of the wrong shape.
  const broken = fc.oneof(
    fc.string({ maxLength: 80 }),
    object.chain((text) => fc.nat(text.length).map((n) => text.slice(0, n))),
    fc.constantFrom("[]", "null", "1", '"x"', "{", "{}}", '{"a":1,"a":2}', "\u0000"),
  );
  return fc.oneof({ arbitrary: object, weight: 6 }, { arbitrary: broken, weight: 1 });
}

function validBytes(method: DescMethod, ctx: HostileContext): fc.Arbitrary<Uint8Array> {
  return messageArb(method.input, ctx).map((m) => toBinary(method.input, m as never));
}

/** Random bytes, or a valid message with a few bytes flipped, cut off or inserted. */
function hostileBytes(method: DescMethod, ctx: HostileContext): fc.Arbitrary<Uint8Array> {
  const mutated = fc
    .tuple(validBytes(method, ctx), fc.array(fc.tuple(fc.nat(), fc.nat(255), fc.constantFrom("flip", "cut", "insert")), { minLength: 1, maxLength: 4 }))
    .map(([bytes, edits]) => {
      let out = Buffer.from(bytes);
      for (const [at, byte, edit] of edits) {
        const i = out.length === 0 ? 0 : at % out.length;
        if (edit === "flip" && out.length > 0) out[i] = byte;
        if (edit === "cut") out = out.subarray(0, i);
        if (edit === "insert") out = Buffer.concat([out.subarray(0, i), Buffer.from([byte]), out.subarray(i)]);
      }
      return new Uint8Array(out);
    });
  return fc.oneof(fc.uint8Array({ maxLength: 200 }), mutated);
}

/** gRPC bodies whose framing is wrong: no message, two, a cut-off one, or flags no client sends. */
function hostileFraming(method: DescMethod, ctx: HostileContext): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(validBytes(method, ctx), fc.constantFrom("empty", "two", "short", "long", "flags", "header-only"), fc.nat(255))
    .map(([bytes, how, flags]) => {
      const one = envelope(bytes);
      switch (how) {
        case "empty":
          return new Uint8Array(0);
        case "two":
          return new Uint8Array(Buffer.concat([one, one]));
        case "short":
          return new Uint8Array(one.subarray(0, Math.max(1, one.length - 1)));
        case "long":
          return new Uint8Array(Buffer.concat([one, Buffer.from([0, 0, 0])]));
        case "flags":
          return new Uint8Array(envelope(bytes, flags));
        default:
          return new Uint8Array(one.subarray(0, 3));
      }
    });
}

/** Over MAX_MESSAGE_BYTES: a real message padded with an unknown field, random bytes, JSON, or an envelope that claims to be. */
function oversized(method: DescMethod, ctx: HostileContext): fc.Arbitrary<{ protocol: "grpc" | "connect"; body: Uint8Array | string; framed: boolean }> {
  const max = ctx.maxMessageBytes;
  const size = fc.integer({ min: max + 1, max: max * 3 });
  return fc.oneof(
    fc.tuple(validBytes(method, ctx), size).map(([bytes, n]) => {
      // Field 1000, length-delimited: unknown to every request, so only the size is wrong.
      const pad = Buffer.alloc(n);
      const tag = Buffer.from([0xc2, 0x3e]);
      const length = varint(n);
      return { protocol: "grpc" as const, body: new Uint8Array(Buffer.concat([bytes, tag, length, pad])), framed: false };
    }),
    size.map((n) => ({ protocol: "grpc" as const, body: new Uint8Array(n), framed: false })),
    fc.tuple(size, fc.constantFrom(...method.input.fields.map((f) => f.jsonName))).map(([n, key]) => ({
      protocol: "connect" as const,
      body: JSON.stringify({ [key]: "y".repeat(n) }),
      framed: false,
    })),
    fc.integer({ min: max + 1, max: 2 ** 32 - 1 }).map((claimed) => {
      const head = Buffer.alloc(5);
      head.writeUInt32BE(claimed, 1);
      return { protocol: "grpc" as const, body: new Uint8Array(Buffer.concat([head, Buffer.alloc(16)])), framed: true };
    }),
  );
}

type Encoded = { protocol: "grpc" | "connect"; body: Uint8Array; framed: boolean; headers: Record<string, string> };

/** Compressed requests: the right encoding of hostile or valid content, bytes that do not decompress, bombs, a flag with no encoding. */
function compressed(method: DescMethod, ctx: HostileContext): fc.Arbitrary<Encoded> {
  const encoding = fc.constantFrom("gzip", "br");
  const squeeze = (how: string, bytes: Uint8Array) => new Uint8Array(how === "gzip" ? gzipSync(bytes) : brotliCompressSync(bytes));
  const content = fc.oneof(hostileBytes(method, ctx), validBytes(method, ctx), fc.integer({ min: ctx.maxMessageBytes + 1, max: ctx.maxMessageBytes * 8 }).map((n) => new Uint8Array(n)));
  const grpc = (body: Uint8Array, headers: Record<string, string>): Encoded => ({ protocol: "grpc", body: new Uint8Array(envelope(body, 1)), framed: true, headers });
  return fc.oneof(
    fc.tuple(encoding, content).map(([how, bytes]) => grpc(squeeze(how, bytes), { "grpc-encoding": how })),
    fc.tuple(encoding, fc.uint8Array({ maxLength: 100 })).map(([how, junk]) => grpc(junk, { "grpc-encoding": how })),
    fc.tuple(encoding, content).map(([how, bytes]) => grpc(squeeze(how, bytes), {})),
    fc.tuple(encoding, hostileJson(method, ctx)).map(([how, text]) => ({
      protocol: "connect" as const,
      body: squeeze(how, Buffer.from(text)),
      framed: false,
      headers: { "content-encoding": how },
    })),
  );
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 127) {
    out.push((n & 127) | 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

/** One hostile call: an RPC, a family, a body and a token. */
export function probeArb(ctx: HostileContext): fc.Arbitrary<Probe> {
  const token = fc.oneof({ arbitrary: fc.constant(ctx.tokens[0]), weight: 3 }, { arbitrary: fc.constantFrom(...ctx.tokens), weight: 2 });
  return fc.tuple(fc.constantFrom(...METHODS), token).chain(([method, tokenName]) => {
    const probe = (family: Family, protocol: "grpc" | "connect", framed: boolean, headers?: Record<string, string>) => (body: Uint8Array | string): Probe => ({
      method,
      family,
      protocol,
      body,
      framed,
      token: tokenName,
      headers,
    });
    return fc.oneof(
      { arbitrary: hostileBytes(method, ctx).map(probe("bytes", "grpc", false)), weight: 3 },
      { arbitrary: hostileJson(method, ctx).map(probe("json", "connect", false)), weight: 3 },
      { arbitrary: oversized(method, ctx).map((o) => probe("oversized", o.protocol, o.framed)(o.body)), weight: 1 },
      { arbitrary: hostileFraming(method, ctx).map(probe("framing", "grpc", true)), weight: 1 },
      {
        arbitrary: fc.tuple(validBytes(method, ctx), fc.constantFrom("snappy", "zstd", "GZIP")).map(([bytes, how]) => probe("framing", "grpc", true, { "grpc-encoding": how })(new Uint8Array(envelope(bytes, 1)))),
        weight: 1,
      },
      { arbitrary: compressed(method, ctx).map((c) => probe("compressed", c.protocol, c.framed, c.headers)(c.body)), weight: 1 },
      { arbitrary: validBytes(method, ctx).map(probe("valid", "grpc", false)), weight: 3 },
      {
        arbitrary: messageArb(method.input, ctx).map((m) => JSON.stringify(toJson(method.input, m as never))).map(probe("valid", "connect", false)),
        weight: 1,
      },
    );
  });
}

/** A probe in a line, for failure messages: enough to see what was sent. */
export function describeProbe(p: Probe): string {
  const body = typeof p.body === "string" ? JSON.stringify(p.body.length > 300 ? `${p.body.slice(0, 300)}…(${p.body.length} chars)` : p.body) : `0x${Buffer.from(p.body.subarray(0, 64)).toString("hex")}${p.body.length > 64 ? `…(${p.body.length} bytes)` : ""}`;
  const headers = p.headers && Object.keys(p.headers).length > 0 ? `, ${JSON.stringify(p.headers)}` : "";
  return `${p.method.name} [${p.family}, ${p.protocol}${p.framed ? ", framed" : ""}${headers}, token ${p.token}] ${body}`;
}
