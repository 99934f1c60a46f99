// Job retention (docs/contract.md §10), off unless RETENTION_DAYS is set: finished jobs
// older than that are deleted with their events, a small batch per statement
// so that live traffic never waits behind a long delete.

import type { Logger } from "../log.js";

export interface FinishedJobPurger {
  deleteFinishedBefore(days: number, limit: number): Promise<number>;
}

const BATCH = 500;
const MAX_BATCHES_PER_SWEEP = 100;

export class Retention {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<number> | null = null;

  constructor(
    private readonly store: FinishedJobPurger,
    private readonly days: number,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.sweep(), this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  /** Deletes what is due; resolves with the number of jobs deleted. */
  sweep(): Promise<number> {
    this.running ??= (async () => {
      let deleted = 0;
      try {
        for (let i = 0; i < MAX_BATCHES_PER_SWEEP; i++) {
          const n = await this.store.deleteFinishedBefore(this.days, BATCH);
          deleted += n;
          if (n < BATCH) break;
        }
        if (deleted) this.log.info("retention deleted finished jobs", { deleted, olderThanDays: this.days });
      } catch (error) {
        this.log.warn("retention sweep failed; will retry", { error: error instanceof Error ? error.message : String(error) });
      } finally {
        this.running = null;
      }
      return deleted;
    })();
    return this.running;
  }
}
