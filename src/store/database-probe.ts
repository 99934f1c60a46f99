// Tells whether the database answers, on its own connection so that a busy
// pool never reads as an outage. Health (docs/contract.md §11) and the reaper's grace
// period both follow it.

import pg from "pg";

export type DatabaseState = "up" | "down";

export class DatabaseProbe {
  private client: pg.Client | null = null;
  private timer: NodeJS.Timeout | null = null;
  private current: DatabaseState = "down";
  private readonly listeners = new Set<(state: DatabaseState) => void>();

  constructor(
    private readonly databaseUrl: string,
    private readonly intervalMs: number,
    private readonly timeoutMs: number,
  ) {}

  get state(): DatabaseState {
    return this.current;
  }

  onChange(listener: (state: DatabaseState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async start(): Promise<void> {
    await this.check();
    this.timer = setInterval(() => void this.check(), this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => undefined);
  }

  /** Checks now; resolves with the state. */
  async check(): Promise<DatabaseState> {
    let ok = false;
    try {
      if (!this.client) {
        const client = new pg.Client({
          connectionString: this.databaseUrl,
          connectionTimeoutMillis: this.timeoutMs,
          query_timeout: this.timeoutMs,
          application_name: "jobs-probe",
        });
        client.on("error", () => {
          if (this.client === client) this.client = null;
          client.end().catch(() => undefined);
        });
        await client.connect();
        this.client = client;
      }
      await this.client.query("select 1");
      ok = true;
    } catch {
      const broken = this.client;
      this.client = null;
      await broken?.end().catch(() => undefined);
    }
    this.set(ok ? "up" : "down");
    return this.current;
  }

  private set(state: DatabaseState): void {
    if (state === this.current) return;
    this.current = state;
    for (const listener of this.listeners) listener(state);
  }
}
