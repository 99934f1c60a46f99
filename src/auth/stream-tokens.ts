// Open watch streams by the token each was opened with, so that revoking a
// token also ends its streams (docs/contract.md §6: a revoked token stops working within
// 5 s). A call checks its token when it starts; a stream runs for hours, so
// while any is open the tokens behind them are checked again every interval,
// all in one query, and the streams of a revoked token end UNAUTHENTICATED.
// A check the database cannot answer ends nothing: it is tried again at the
// next interval (an outage must not cut every watcher off).

import type { Logger } from "../log.js";

export interface Revocable {
  revoke(): void;
}

export interface LiveTokens {
  liveIds(ids: readonly string[]): Promise<Set<string>>;
}

export class StreamTokens {
  private readonly streams = new Map<string, Set<Revocable>>();
  private timer: NodeJS.Timeout | null = null;
  private checking = false;

  constructor(
    private readonly tokens: LiveTokens,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  add(tokenId: string, stream: Revocable): void {
    let set = this.streams.get(tokenId);
    if (set === undefined) {
      set = new Set();
      this.streams.set(tokenId, set);
    }
    set.add(stream);
    if (this.timer === null) {
      this.timer = setInterval(() => void this.check(), this.intervalMs);
      this.timer.unref();
    }
  }

  delete(tokenId: string, stream: Revocable): void {
    const set = this.streams.get(tokenId);
    if (set === undefined) return;
    set.delete(stream);
    if (set.size === 0) this.streams.delete(tokenId);
    if (this.streams.size === 0) this.stop();
  }

  /** Ends the streams of every token that is no longer live; returns how many ended. */
  async check(): Promise<number> {
    if (this.checking || this.streams.size === 0) return 0;
    this.checking = true;
    try {
      const ids = [...this.streams.keys()];
      const live = await this.tokens.liveIds(ids);
      let ended = 0;
      for (const id of ids) {
        if (live.has(id)) continue;
        const set = this.streams.get(id);
        if (set === undefined) continue;
        this.streams.delete(id);
        for (const stream of set) stream.revoke();
        ended += set.size;
        this.log.info("token revoked: its watch streams end", { token_id: id, streams: set.size });
      }
      if (this.streams.size === 0) this.stop();
      return ended;
    } catch (error) {
      this.log.warn("could not check the tokens of open watch streams; trying again", {
        error: error instanceof Error ? error.message : String(error),
      });
      return 0;
    } finally {
      this.checking = false;
    }
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}
