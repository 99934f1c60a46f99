// A request's body as the transport reads it, and as Connect then reads it.
//
// The request gate (./gate.ts) reads the body of a call that takes one
// message before Connect does: it peeks at the first bytes of a request it
// refuses, or reads the whole message, once, to decode it itself. Connect
// then iterates this object as the request body: it gets what the gate left
// for it, which is either the untouched body (calls the gate does not read,
// such as reflection's bidirectional stream) or an empty stand-in message
// once the gate has taken the real one.

import { SIGNAL_CANCELLED } from "../errors.js";
import type { NodeRequest } from "./exchange.js";

export class RequestBody implements AsyncIterable<Uint8Array> {
  /** Bytes read ahead of whoever reads next. */
  private ahead: Buffer[] = [];
  private aheadBytes = 0;
  private ended = false;
  private standIn: Uint8Array | null = null;

  constructor(private readonly request: NodeRequest) {}

  /** The body's length as its Content-Length header gives it (0 without one). */
  get announcedLength(): number {
    return Number(this.request.headers["content-length"] ?? "0") || 0;
  }

  /** The request has been read to its end, so nothing is left for Connect but `standIn`. */
  replaceWith(standIn: Uint8Array): void {
    this.standIn = standIn;
  }

  /** The first `n` bytes (fewer if the body is shorter), kept for whoever reads next. */
  async peek(n: number, signal: AbortSignal): Promise<Buffer> {
    if (this.aheadBytes < n) {
      await this.pump(signal, (chunk) => {
        this.ahead.push(chunk);
        this.aheadBytes += chunk.byteLength;
        return this.aheadBytes >= n;
      });
    }
    const all = this.ahead.length === 1 ? this.ahead[0] : Buffer.concat(this.ahead);
    this.ahead = all.byteLength === 0 ? [] : [all];
    return all.subarray(0, n);
  }

  /**
   * The rest of the body, each chunk handed to `onChunk` as it arrives (which
   * may throw to refuse it). Resolves once the body has ended.
   */
  async readAll(onChunk: (chunk: Buffer) => void, signal: AbortSignal): Promise<void> {
    const ahead = this.ahead;
    this.ahead = [];
    this.aheadBytes = 0;
    for (const chunk of ahead) onChunk(chunk);
    await this.pump(signal, (chunk) => {
      onChunk(chunk);
      return false;
    });
  }

  /** Connect's read: the stand-in, or else what was read ahead and the rest of the body. */
  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    if (this.standIn !== null) {
      yield this.standIn;
      return;
    }
    const ahead = this.ahead;
    this.ahead = [];
    yield* ahead;
    if (!this.ended) yield* this.request;
  }

  /**
   * Feeds chunks to `take` until it returns true (the rest stays in the
   * request, paused) or the body ends. Rejects with the signal's reason, or
   * CANCELLED if the client goes away mid-body.
   */
  private pump(signal: AbortSignal, take: (chunk: Buffer) => boolean): Promise<void> {
    const request = this.request;
    if (this.ended || request.readableEnded) {
      this.ended = true;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const finish = (error: unknown) => {
        request.off("data", onData);
        request.off("end", onEnd);
        request.off("close", onClose);
        request.off("error", onClose);
        signal.removeEventListener("abort", onAbort);
        if (error === null) resolve();
        else reject(error);
      };
      const onData = (chunk: Buffer) => {
        let enough: boolean;
        try {
          enough = take(chunk);
        } catch (error) {
          request.pause();
          return finish(error);
        }
        if (enough) {
          request.pause();
          finish(null);
        }
      };
      const onEnd = () => {
        this.ended = true;
        finish(null);
      };
      const onClose = () => finish(SIGNAL_CANCELLED);
      const onAbort = () => finish(signal.reason);
      if (signal.aborted) return onAbort();
      request.on("data", onData);
      request.once("end", onEnd);
      request.once("close", onClose);
      request.once("error", onClose);
      signal.addEventListener("abort", onAbort, { once: true });
      request.resume();
    });
  }
}
