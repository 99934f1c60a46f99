// A bounded share of the connection pool for one kind of work (reads, token
// lookups). The shares add up to no more than the pool, so the pool itself
// never has a queue: a burst of one kind (thousands of unknown tokens, a
// flood of listings) waits in its own lane and is shed there, saying the
// server is overloaded, while the other kinds, the batched writer and the
// reaper go on. A wait for the pool can then only mean that connecting
// failed, so DATABASE_UNAVAILABLE keeps meaning the database is unreachable.

import { Unavailable } from "../domain/errors.js";
import { DeadlineQueue } from "./deadline-queue.js";

interface Waiting {
  readonly since: number;
  readonly start: () => void;
  readonly fail: (error: unknown) => void;
}

export class Lane {
  private active = 0;
  private readonly queue: DeadlineQueue<Waiting>;

  constructor(
    /** What waits here, for the overload message ("reads", "token lookups"). */
    what: string,
    private readonly slots: number,
    /** The longest a call waits for a slot before it is shed. */
    maxWaitMs: number,
  ) {
    this.queue = new DeadlineQueue<Waiting>(maxWaitMs, (expired) => {
      const error = new Unavailable("OVERLOADED", `the server is overloaded: too many ${what} are waiting for a database connection; retry with backoff`);
      for (const waiting of expired) waiting.fail(error);
    });
  }

  /** Calls waiting for a slot (metrics). */
  get waiting(): number {
    return this.queue.length;
  }

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.active < this.slots) this.active++;
    else await this.slot();
    try {
      return await work();
    } catch (error) {
      // The calls waiting would only wait for the same unreachable database.
      if (error instanceof Unavailable && error.reason === "DATABASE_UNAVAILABLE") {
        for (const waiting of this.queue.remove(() => true)) waiting.fail(error);
      }
      throw error;
    } finally {
      const next = this.queue.shift();
      if (next) next.start();
      else this.active--;
    }
  }

  private slot(): Promise<void> {
    return new Promise<void>((resolve, reject) => this.queue.push({ since: performance.now(), start: resolve, fail: reject }));
  }
}
