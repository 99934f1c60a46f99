// Expired leases (docs/contract.md §9): every interval, fail or cancel jobs whose
// executor stopped heartbeating, in small batches so that live transitions
// never wait long. Safe with any number of replicas (each expiry re-checks
// the lease under the job's row lock). After this replica loses the database it waits a grace period
// once it is back, so executors get a chance to heartbeat first (docs/contract.md §11).

import { Unavailable } from "../domain/errors.js";
import type { EventRecord } from "../domain/job.js";
import type { Logger } from "../log.js";
import type { DatabaseProbe } from "../store/database-probe.js";
import { isConnectionError } from "../store/sql.js";

export interface ReaperOptions {
  readonly intervalMs: number;
  readonly graceMs: number;
  readonly batchSize: number;
  /** Told of every pass (metrics): how it went and how many jobs it reaped. */
  readonly onRun?: (outcome: "ok" | "failed" | "skipped", reaped: number) => void;
}

export interface ExpiredLeaseReaper {
  reapExpired(limit: number): Promise<EventRecord[]>;
}

/** Batches per tick at most: a backlog drains over a few ticks rather than in one long burst. */
const MAX_BATCHES_PER_TICK = 20;

export class Reaper {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private quietUntil = 0;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly store: ExpiredLeaseReaper,
    private readonly probe: Pick<DatabaseProbe, "onChange" | "state">,
    private readonly options: ReaperOptions,
    private readonly log: Logger,
  ) {
    this.unsubscribe = probe.onChange((state) => {
      this.quietUntil = state === "down" ? Number.POSITIVE_INFINITY : Date.now() + options.graceMs;
    });
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.options.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.unsubscribe();
    await this.running;
  }

  /** One pass; resolves with the number of jobs reaped. Exposed for tests. */
  async tick(): Promise<number> {
    if (this.running) return 0;
    if (Date.now() < this.quietUntil || this.probe.state === "down") {
      this.options.onRun?.("skipped", 0);
      return 0;
    }
    let reaped = 0;
    let outcome: "ok" | "failed" = "ok";
    const pass = (async () => {
      try {
        for (let batch = 0; batch < MAX_BATCHES_PER_TICK; batch++) {
          const events = await this.store.reapExpired(this.options.batchSize);
          for (const event of events) {
            this.log.info("lease expired", {
              job_id: event.jobId,
              executor_id: event.previousExecutorId,
              attempt: event.job.attempt,
              state: event.toState,
            });
          }
          reaped += events.length;
          if (events.length < this.options.batchSize) break;
        }
      } catch (error) {
        outcome = "failed";
        // Lost the database: wait out the grace once it is back. Shed for overload, it is up: just retry next tick.
        if (isConnectionError(error) || (error instanceof Unavailable && error.reason !== "OVERLOADED")) {
          this.quietUntil = Date.now() + this.options.graceMs;
        }
        this.log.warn("reaping expired leases failed; will retry", {
          error: error instanceof Error ? error.message : String(error),
        });
      }
    })();
    this.running = pass;
    await pass;
    this.running = null;
    this.options.onRun?.(outcome, reaped);
    return reaped;
  }
}
