// Bounds how many watch streams read their replay or snapshot at once.
//
// A mass reconnect (every executor after a replica drains) opens thousands
// of streams together. Unbounded, they all queue for pooled connections, time
// out after DB_ACQUIRE_TIMEOUT_MS and fail UNAVAILABLE, while unary calls
// starve behind them. Admitted a few at a time, they wait here instead, and
// each one's reads are quick.

export class Admission {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly slots: number) {}

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.active >= this.slots) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}
