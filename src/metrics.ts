// Prometheus metrics (docs/contract.md §10) on prom-client, at /metrics on METRICS_PORT
// (plain HTTP, off by default). Every app has its own registry: tests run
// several servers in one process, and nothing here is global.
//
// The hot path pays one counter increment and one histogram observation per
// RPC, through label-bound children cached per method and code; gauges are
// read only when Prometheus scrapes.

import http from "node:http";
import type pg from "pg";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

/** What a transition call came to: the table's answer, or the attempt fence's. */
export type TransitionOutcome = "changed" | "noop" | "rejected" | "stale_attempt";

interface RpcSeries {
  readonly count: { inc(): void };
  readonly duration: { observe(seconds: number): void };
}

/** Label-bound children by two label values, made once each: a lookup costs no allocation. */
class Children<T> {
  private readonly byFirst = new Map<string, Map<string, T>>();
  constructor(private readonly make: (first: string, second: string) => T) {}
  get(first: string, second: string): T {
    let bySecond = this.byFirst.get(first);
    if (!bySecond) {
      bySecond = new Map();
      this.byFirst.set(first, bySecond);
    }
    let child = bySecond.get(second);
    if (!child) {
      child = this.make(first, second);
      bySecond.set(second, child);
    }
    return child;
  }
}

export class Metrics {
  readonly registry = new Registry();

  private readonly rpcRequests = new Counter({
    name: "jobs_rpc_requests_total",
    help: "RPCs handled, by method and status code.",
    labelNames: ["method", "code"] as const,
    registers: [this.registry],
  });
  private readonly rpcDuration = new Histogram({
    name: "jobs_rpc_duration_seconds",
    help: "RPC handling time by method and status code (for streams: the stream's lifetime).",
    labelNames: ["method", "code"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 600],
    registers: [this.registry],
  });
  private readonly rpcSeries = new Children<RpcSeries>((method, code) => ({
    count: this.rpcRequests.labels(method, code),
    duration: this.rpcDuration.labels(method, code),
  }));

  private readonly transitions = new Counter({
    name: "jobs_transitions_total",
    help: "Transition calls (RunJob, CompleteJob, FailJob, RequestJobCancellation, CancelJob, and the reaper's lease expiries) by outcome: changed, noop, rejected (the table says REJECT) or stale_attempt.",
    labelNames: ["call", "outcome"] as const,
    registers: [this.registry],
  });
  private readonly transitionSeries = new Children((call, outcome) => this.transitions.labels(call, outcome));
  private readonly events = new Counter({
    name: "jobs_events_total",
    help: "Job events this process committed, by event type (CREATED, STARTED, …).",
    labelNames: ["type"] as const,
    registers: [this.registry],
  });
  private readonly eventSeries = new Children((type) => this.events.labels(type));
  private readonly notifierLag = new Histogram({
    name: "jobs_notifier_lag_seconds",
    help: "From an event's commit to its publication to this process's watchers, as the notifier sees it.",
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  private readonly reaperRuns = new Counter({
    name: "jobs_reaper_runs_total",
    help: "Passes of the lease reaper, by outcome: ok, failed, or skipped (database down or within REAPER_GRACE_SECONDS of its return).",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });
  private readonly rpcRefusals = new Counter({
    name: "jobs_rpc_refused_total",
    help: "RPCs refused before their handler ran (token, scope, size, a body that is not one valid message), by ErrorInfo reason. Each is also in jobs_rpc_requests_total under its code.",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  private readonly refusalSeries = new Children((reason) => this.rpcRefusals.labels(reason));
  private readonly connectionsEnded = new Counter({
    name: "jobs_connections_closed_total",
    help: "Client connections the server refused or closed, by reason: limit (over MAX_CONNECTIONS), handshake_timeout, idle, keepalive_timeout (the peer did not answer a ping).",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  private readonly reapedJobs = new Counter({
    name: "jobs_reaped_jobs_total",
    help: "Jobs whose lease expired and that the reaper failed or cancelled.",
    registers: [this.registry],
  });
  private readonly batchCalls = new Histogram({
    name: "jobs_write_batch_calls",
    help: "Write calls (creates, transitions, heartbeats, lease expiries) per committed write transaction.",
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
    registers: [this.registry],
  });
  private readonly batchDuration = new Histogram({
    name: "jobs_write_batch_duration_seconds",
    help: "Time of a write transaction, from taking its calls to COMMIT's reply, by outcome (committed or failed).",
    labelNames: ["outcome"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  /** One write transaction of the batched writer. */
  writeBatch(calls: number, seconds: number, outcome: "committed" | "failed"): void {
    if (outcome === "committed") this.batchCalls.observe(calls);
    this.batchDuration.observe({ outcome }, seconds);
  }

  /** Write calls waiting for a batch and write transactions in flight, read at scrape time. */
  writeQueue(read: () => { waiting: number; writing: number }): void {
    new Gauge({
      name: "jobs_write_queue",
      help: "Write calls waiting for a batch (state=waiting) and write transactions in flight (state=writing).",
      labelNames: ["state"] as const,
      registers: [this.registry],
      collect() {
        const queue = read();
        this.set({ state: "waiting" }, queue.waiting);
        this.set({ state: "writing" }, queue.writing);
      },
    });
  }

  /** Calls waiting for their share of the connection pool, by share, read at scrape time. */
  laneWaiting(read: () => Record<"reads" | "token_lookups", number>): void {
    new Gauge({
      name: "jobs_db_share_waiting",
      help: "Calls waiting for a connection in their share of the pool (reads, token_lookups); past DB_ACQUIRE_TIMEOUT_MS they are shed as UNAVAILABLE OVERLOADED.",
      labelNames: ["share"] as const,
      registers: [this.registry],
      collect() {
        for (const [share, waiting] of Object.entries(read())) this.set({ share }, waiting);
      },
    });
  }

  /** One finished RPC. */
  rpc(method: string, code: string, seconds: number): void {
    const series = this.rpcSeries.get(method, code);
    series.count.inc();
    series.duration.observe(seconds);
  }

  /** An RPC the transport refused before its handler ran. */
  refused(reason: string): void {
    this.refusalSeries.get(reason, "").inc();
  }

  /** A client connection refused or closed by the server. */
  connectionEnded(reason: string): void {
    this.connectionsEnded.inc({ reason });
  }

  /** Open client connections, read at scrape time. */
  connections(read: () => number): void {
    this.gauge("jobs_connections_open", "Open client connections (HTTP/2 and HTTP/1.1).", read);
  }

  transition(call: string, outcome: TransitionOutcome): void {
    this.transitionSeries.get(call, outcome).inc();
  }

  eventCommitted(type: string): void {
    this.eventSeries.get(type, "").inc();
  }

  published(lagSeconds: number): void {
    this.notifierLag.observe(lagSeconds);
  }

  /** One pass of the lease reaper; each job it reaped is also a transition of call "reaper". */
  reaperRun(outcome: "ok" | "failed" | "skipped", reaped = 0): void {
    this.reaperRuns.inc({ outcome });
    if (reaped > 0) {
      this.reapedJobs.inc(reaped);
      this.transitions.inc({ call: "reaper", outcome: "changed" }, reaped);
    }
  }

  /** Open watch streams, read at scrape time. */
  watchStreams(read: () => { WatchJob: number; WatchJobs: number }): void {
    new Gauge({
      name: "jobs_watch_streams_open",
      help: "Open watch streams, by kind (WatchJob, WatchJobs).",
      labelNames: ["kind"] as const,
      registers: [this.registry],
      collect() {
        const open = read();
        this.set({ kind: "WatchJob" }, open.WatchJob);
        this.set({ kind: "WatchJobs" }, open.WatchJobs);
      },
    });
  }

  /** The ORM's connection pool, read at scrape time. */
  pool(pool: pg.Pool, max: number): void {
    this.gauge("jobs_db_pool_in_use", "Pooled database connections lent out to calls right now.", () => pool.totalCount - pool.idleCount);
    this.gauge("jobs_db_pool_waiting", "Calls waiting for a pooled database connection.", () => pool.waitingCount);
    this.gauge("jobs_db_pool_max", "Size limit of the pool (DB_POOL_SIZE).", () => max);
  }

  /** 1 while the database answers the health probe. */
  databaseUp(read: () => boolean): void {
    this.gauge("jobs_database_up", "1 while the database answers the health probe, 0 otherwise.", () => (read() ? 1 : 0));
  }

  /**
   * The process's own figures (CPU, memory, event loop lag, GC). Only when
   * metrics are served: the event loop and GC monitors cost a little even
   * when nobody scrapes.
   */
  collectProcessMetrics(): void {
    collectDefaultMetrics({ register: this.registry });
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }

  /** A gauge without labels whose value is read at scrape time. */
  private gauge(name: string, help: string, read: () => number): void {
    new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.set(read());
      },
    });
  }
}

export async function serveMetrics(metrics: Metrics, host: string, port: number): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.method === "GET" && req.url?.split("?")[0] === "/metrics") {
      metrics.render().then(
        (text) => {
          res.writeHead(200, { "content-type": metrics.registry.contentType });
          res.end(text);
        },
        (error: unknown) => {
          res.writeHead(500, { "content-type": "text/plain" });
          res.end(`collecting metrics failed: ${error instanceof Error ? error.message : String(error)}\n`);
        },
      );
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("not found; metrics are at /metrics\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return server;
}
