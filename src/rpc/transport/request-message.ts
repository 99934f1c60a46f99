// The one request message of a unary or server-streaming call: read,
// decompressed and decoded once, here, by the request gate, before Connect or
// any interceptor sees the call. Connect would refuse an undecodable message
// as INTERNAL, before any interceptor and without an ErrorInfo; here every
// refusal is the status the contract names, with an ErrorInfo. Decoding is
// bounded for every caller (unknown fields skipped, DECODE_DEPTH, at most
// JSON_VALUES in a JSON body, counted before parsing). Connect then reads an
// empty stand-in and the handler gets this message through the call's
// context (./rpc-handler.ts). The framing below is the protocols' own: a
// 5-byte envelope per message for gRPC, gRPC-Web and Connect streaming.

import { type DescMessage, fromBinary, fromJsonString, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import {
  extraMessage,
  incompleteEnvelope,
  malformedMessage,
  messageTooLarge,
  missingMessage,
  type SingleMessageKind,
  unsupportedEncoding,
} from "../errors.js";
import type { RequestBody } from "./request-body.js";
import type { Compression } from "./compression.js";

/** How deep a message may nest (protobuf-es's own default), and how many values a JSON body may hold. */
const DECODE_DEPTH = 100;
const JSON_VALUES = 100_000;

/** The read options for both formats: also what Connect is given for the calls it decodes itself. */
export const BINARY_READ = { readUnknownFields: false, recursionLimit: DECODE_DEPTH } as const;
export const JSON_READ = { ignoreUnknownFields: true, recursionLimit: DECODE_DEPTH } as const;

const ENVELOPE_HEADER = 5;
const COMPRESSED_FLAG = 1;
/** Decodes a JSON body (TextDecoder keeps no state between calls to decode() without `stream`). */
const UTF8 = new TextDecoder();

export interface MessageReader {
  /** Refuses the request if its headers or first envelope announce more than the limit: nothing is decoded. */
  refuseIfAnnouncedTooLarge(signal: AbortSignal): Promise<void>;
  /** The request's one message, read to the end of the body and decoded; Connect gets the stand-in from then on. */
  read(signal: AbortSignal): Promise<MessageShape<DescMessage>>;
}

/**
 * The reader for a call, or null when the gate leaves its body to Connect:
 * a method that takes a stream of messages, or a GET (Connect's unary GET
 * carries the message in its query).
 */
export function messageReader(context: HandlerContext, body: RequestBody, compressions: readonly Compression[], max: number): MessageReader | null {
  const kind = singleMessageKind(context.method.methodKind);
  if (kind === null || context.requestMethod !== "POST") return null;
  const call = context.method.name;
  const header = context.requestHeader;
  const enveloped = !(context.protocolName === "connect" && kind === "unary");
  const binary = !/json/i.test(header.get("content-type") ?? "");
  const names = encodingHeaders(context.protocolName, enveloped);
  const requested = header.get(names.encoding) ?? "identity";
  const compression = requested === "identity" ? null : (compressions.find((c) => c.name === requested) ?? requested);
  const input = context.method.input;

  return {
    async refuseIfAnnouncedTooLarge(signal) {
      if (!enveloped) {
        if (body.announcedLength > max) throw messageTooLarge(body.announcedLength, max, call);
        return;
      }
      const head = await body.peek(ENVELOPE_HEADER, signal);
      if (head.byteLength === ENVELOPE_HEADER && head.readUInt32BE(1) > max) throw messageTooLarge(head.readUInt32BE(1), max, call);
    },

    async read(signal) {
      if (typeof compression === "string") {
        const supported = compressions.map((c) => c.name).join(",");
        throw unsupportedEncoding(compression, supported, names.accept, call);
      }
      if (!enveloped && body.announcedLength > max) throw messageTooLarge(body.announcedLength, max, call);
      const framing = enveloped ? new Envelopes(max, call, kind) : new Bare(max, call, compression !== null);
      await body.readAll((chunk) => framing.add(chunk), signal);
      const found = framing.end();
      let bytes = found.bytes;
      if (found.compressed) {
        if (compression === null) throw malformedMessage("the message is flagged compressed, but the request names no encoding (grpc-encoding)", call);
        bytes = await inflate(compression, bytes, max, call);
      }
      const message = binary ? decodeBinary(input, bytes, call) : decodeJson(input, bytes, call);
      body.replaceWith(await standIn(enveloped, binary, compression));
      return message;
    },
  };
}

function singleMessageKind(methodKind: string): SingleMessageKind | null {
  if (methodKind === "unary") return "unary";
  return methodKind === "server_streaming" ? "server-streaming" : null;
}

/** The header naming the request's encoding, and the one naming the encodings a client accepts. */
function encodingHeaders(protocol: string, enveloped: boolean): { encoding: string; accept: string } {
  if (protocol !== "connect") return { encoding: "grpc-encoding", accept: "grpc-accept-encoding" };
  return enveloped
    ? { encoding: "connect-content-encoding", accept: "connect-accept-encoding" }
    : { encoding: "content-encoding", accept: "accept-encoding" };
}

interface Found {
  readonly bytes: Uint8Array;
  readonly compressed: boolean;
}

/** A unary Connect call's body: the message itself (compressed whole if content-encoding names an encoding), counted as it arrives. */
class Bare {
  private readonly parts: Buffer[] = [];
  private size = 0;

  constructor(
    private readonly max: number,
    private readonly call: string,
    private readonly compressed: boolean,
  ) {}

  add(chunk: Buffer): void {
    this.size += chunk.byteLength;
    if (this.size > this.max) throw messageTooLarge(this.size, this.max, this.call);
    this.parts.push(chunk);
  }

  end(): Found {
    return { bytes: this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts), compressed: this.compressed };
  }
}

/**
 * An enveloped body that must hold exactly one message. Refused as soon as
 * an envelope announces more than the limit, or a second one starts; a body
 * that ends inside an envelope, or holds none, when it ends. (The order of
 * Connect's own checks: a message, then framing, then the count.)
 */
class Envelopes {
  private readonly head = Buffer.alloc(ENVELOPE_HEADER);
  private headRead = 0;
  private remaining = 0;
  private parts: Buffer[] = [];
  private first: Found | null = null;
  private extra = false;

  constructor(
    private readonly max: number,
    private readonly call: string,
    private readonly kind: SingleMessageKind,
  ) {}

  add(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.byteLength) {
      if (this.headRead < ENVELOPE_HEADER) {
        const take = Math.min(ENVELOPE_HEADER - this.headRead, chunk.byteLength - i);
        chunk.copy(this.head, this.headRead, i, i + take);
        this.headRead += take;
        i += take;
        if (this.headRead < ENVELOPE_HEADER) return;
        const length = this.head.readUInt32BE(1);
        if (length > this.max) throw messageTooLarge(length, this.max, this.call);
        // A second message: what is wrong with the first comes first, so it is checked once the body ends.
        if (this.first !== null) this.extra = true;
        this.remaining = length;
      }
      const take = Math.min(this.remaining, chunk.byteLength - i);
      if (this.first === null && take > 0) this.parts.push(chunk.subarray(i, i + take));
      this.remaining -= take;
      i += take;
      if (this.remaining === 0) this.completed();
    }
  }

  end(): Found {
    if (this.headRead > 0 && this.headRead < ENVELOPE_HEADER) throw incompleteEnvelope(this.call);
    if (this.headRead === ENVELOPE_HEADER && this.remaining > 0) throw incompleteEnvelope(this.call);
    if (this.first === null) throw missingMessage(this.kind, this.call);
    if (this.extra) throw extraMessage(this.kind, this.call);
    return this.first;
  }

  private completed(): void {
    if (this.first === null) {
      const bytes = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts);
      this.first = { bytes, compressed: (this.head[0] & COMPRESSED_FLAG) !== 0 };
      this.parts = [];
    }
    this.headRead = 0;
  }
}

/** The message inflated by the router's own compression, refused past the limit or when it is not what it claims. */
async function inflate(compression: Compression, bytes: Uint8Array, max: number, call: string): Promise<Uint8Array> {
  try {
    return await compression.decompress(bytes, max);
  } catch (error) {
    if (inflatedTooLarge(error)) throw messageTooLarge(null, max, call);
    throw malformedMessage(`the message does not decompress with ${compression.name}`, call);
  }
}

/**
 * Connect says RESOURCE_EXHAUSTED for zlib's ERR_BUFFER_TOO_LARGE, which it
 * recognizes by `instanceof Error`; zlib's errors come from Node's own realm,
 * which is not the caller's under a vm sandbox (as jest runs tests), so the
 * cause is read too.
 */
function inflatedTooLarge(error: unknown): boolean {
  if (error instanceof ConnectError && error.code === Code.ResourceExhausted) return true;
  return (error as { cause?: { code?: unknown } } | null)?.cause?.code === "ERR_BUFFER_TOO_LARGE";
}

function decodeBinary<Desc extends DescMessage>(input: Desc, bytes: Uint8Array, call: string): MessageShape<Desc> {
  try {
    return fromBinary(input, bytes, BINARY_READ);
  } catch (error) {
    throw malformedMessage(`the request is not a valid ${input.typeName} message: ${error instanceof Error ? error.message : String(error)}`, call);
  }
}

function decodeJson<Desc extends DescMessage>(input: Desc, bytes: Uint8Array, call: string): MessageShape<Desc> {
  const overBound = jsonOverBounds(bytes);
  if (overBound) throw malformedMessage(`the request JSON ${overBound}`, call);
  try {
    return fromJsonString(input, UTF8.decode(bytes), JSON_READ);
  } catch (error) {
    throw malformedMessage(error instanceof Error ? error.message : String(error), call);
  }
}

/**
 * Why a JSON text is refused before it is parsed (nests deeper than
 * DECODE_DEPTH, or holds more than JSON_VALUES values), or null. One pass
 * over its bytes, outside strings; what is not JSON at all is left to
 * JSON.parse.
 */
function jsonOverBounds(bytes: Uint8Array): string | null {
  let depth = 0;
  let values = 1;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i];
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped byte
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > DECODE_DEPTH) return `nests deeper than ${DECODE_DEPTH} levels`;
    } else if (c === 0x7d || c === 0x5d) depth--;
    else if (c === 0x2c && ++values > JSON_VALUES) return `holds more than ${JSON_VALUES} values`;
  }
  return null;
}

const EMPTY = new Uint8Array(0);
const EMPTY_JSON = new TextEncoder().encode("{}");

/** An empty message behind its envelope's 5-byte header (flags 0, length). */
function framed(empty: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(ENVELOPE_HEADER + empty.byteLength);
  bytes.set(empty, ENVELOPE_HEADER);
  new DataView(bytes.buffer).setUint32(1, empty.byteLength);
  return bytes;
}

// The stand-ins are the same for every call, and Connect only reads them (it copies what it reads).
const FRAMED_EMPTY = framed(EMPTY);
const FRAMED_EMPTY_JSON = framed(EMPTY_JSON);
const compressedStandIns = new Map<string, Promise<Uint8Array>>();

/**
 * What Connect reads once the message has been taken: an empty message in
 * the request's framing. An envelope that is not flagged compressed needs
 * no inflating whatever the request's encoding; a bare body is inflated
 * whole by Connect, so it is compressed the same way.
 */
async function standIn(enveloped: boolean, binary: boolean, compression: Compression | null): Promise<Uint8Array> {
  if (enveloped) return binary ? FRAMED_EMPTY : FRAMED_EMPTY_JSON;
  const empty = binary ? EMPTY : EMPTY_JSON;
  if (compression === null) return empty;
  const key = `${compression.name} ${binary ? "binary" : "json"}`;
  let compressed = compressedStandIns.get(key);
  if (compressed === undefined) {
    compressed = compression.compress(empty);
    // A failure is the call's alone: the next call tries again.
    compressed.catch(() => compressedStandIns.delete(key));
    compressedStandIns.set(key, compressed);
  }
  return compressed;
}
