// An HTTP/2 client at the frame level, over a plain TCP socket: for tests of
// what the server does with a peer that a well-behaved client library would
// never be (one that opens more streams than the server's SETTINGS allow,
// stops answering PINGs, or never finishes its preface). Headers go out as
// HPACK literals without indexing (RFC 7541 §6.2.2), which every decoder
// takes.

import net from "node:net";

export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7 } as const;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const ACK = 0x1;
export const SETTINGS_MAX_CONCURRENT_STREAMS = 0x3;
export const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

export interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

export class RawHttp2 {
  readonly frames: Frame[] = [];
  /** Resolves when the server has closed the connection (or it broke). */
  readonly closed: Promise<void>;
  private buffered = Buffer.alloc(0);
  private readonly waiters = new Set<() => void>();

  private constructor(private readonly socket: net.Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      while (this.buffered.length >= 9) {
        const length = this.buffered.readUIntBE(0, 3);
        if (this.buffered.length < 9 + length) break;
        this.frames.push({
          type: this.buffered[3],
          flags: this.buffered[4],
          streamId: this.buffered.readUInt32BE(5) & 0x7fffffff,
          payload: this.buffered.subarray(9, 9 + length),
        });
        this.buffered = this.buffered.subarray(9 + length);
      }
      for (const wake of this.waiters) wake();
    });
    socket.on("error", () => {});
    this.closed = new Promise((resolve) => socket.once("close", () => resolve()));
    void this.closed.then(() => {
      for (const wake of this.waiters) wake();
    });
  }

  static connect(port: number): Promise<RawHttp2> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, "127.0.0.1", () => resolve(new RawHttp2(socket)));
      socket.once("error", reject);
    });
  }

  get isClosed(): boolean {
    return this.socket.destroyed;
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** The client preface and an empty SETTINGS frame, then the ACK of the server's SETTINGS once they come. */
  async handshake(timeoutMs = 10_000): Promise<Frame> {
    this.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0, Buffer.alloc(0))]));
    const settings = await this.next((f) => f.type === FRAME.SETTINGS && (f.flags & ACK) === 0, timeoutMs);
    this.write(frame(FRAME.SETTINGS, ACK, 0, Buffer.alloc(0)));
    return settings;
  }

  /** A HEADERS frame opening stream `streamId` with these headers (pseudo-headers first), its body left open unless `endStream`. */
  openStream(streamId: number, headers: ReadonlyArray<readonly [string, string]>, endStream = false): void {
    const block = Buffer.concat(headers.map(([name, value]) => literal(name, value)));
    this.write(frame(FRAME.HEADERS, END_HEADERS | (endStream ? END_STREAM : 0), streamId, block));
  }

  /** The first frame (received so far or later) that `match` accepts; rejects if none comes within `timeoutMs` or the connection closes. */
  next(match: (f: Frame) => boolean, timeoutMs = 10_000): Promise<Frame> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.frames.find(match);
        if (found) return finish(() => resolve(found));
        if (this.socket.destroyed) finish(() => reject(new Error("the connection closed before the frame came")));
      };
      const timer = setTimeout(() => finish(() => reject(new Error(`no such frame within ${timeoutMs} ms`))), timeoutMs);
      const finish = (settle: () => void) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        settle();
      };
      this.waiters.add(check);
      check();
    });
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** The value of one setting in a SETTINGS frame's payload, or undefined. */
export function setting(settings: Frame, id: number): number | undefined {
  for (let i = 0; i + 6 <= settings.payload.length; i += 6) {
    if (settings.payload.readUInt16BE(i) === id) return settings.payload.readUInt32BE(i + 2);
  }
  return undefined;
}

/** The error code of a RST_STREAM or GOAWAY frame. */
export function errorCode(f: Frame): number {
  return f.type === FRAME.GOAWAY ? f.payload.readUInt32BE(4) : f.payload.readUInt32BE(0);
}

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

/** A header as an HPACK literal without indexing, new name, no Huffman coding (lengths under 127). */
function literal(name: string, value: string): Buffer {
  const n = Buffer.from(name, "latin1");
  const v = Buffer.from(value, "latin1");
  return Buffer.concat([Buffer.from([0x00, n.length]), n, Buffer.from([v.length]), v]);
}
