// Prometheus metrics (SPEC §10) at /metrics on METRICS_PORT, plain HTTP,
// off by default. A few hand-rolled instruments: the text format is simple
// and a client library would be the service's largest dependency.

import http from "node:http";

type Labels = Record<string, string>;

const labelKey = (labels: Labels) =>
  Object.entries(labels)
    .map(([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`)
    .join(",");

interface Instrument {
  render(): string[];
}

export class Counter implements Instrument {
  private readonly values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  inc(labels: Labels = {}, by = 1): void {
    const key = labelKey(labels);
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }
  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const [key, value] of this.values) lines.push(`${this.name}${key ? `{${key}}` : ""} ${value}`);
    return lines;
  }
}

export class Histogram implements Instrument {
  private readonly series = new Map<string, { counts: number[]; sum: number; count: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  ) {}
  observe(labels: Labels, value: number): void {
    const key = labelKey(labels);
    let s = this.series.get(key);
    if (!s) {
      s = { counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]) s.counts[i]++;
    s.sum += value;
    s.count++;
  }
  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const [key, s] of this.series) {
      const sep = key ? `${key},` : "";
      this.buckets.forEach((b, i) => lines.push(`${this.name}_bucket{${sep}le="${b}"} ${s.counts[i]}`));
      lines.push(`${this.name}_bucket{${sep}le="+Inf"} ${s.count}`);
      lines.push(`${this.name}_sum${key ? `{${key}}` : ""} ${s.sum}`);
      lines.push(`${this.name}_count${key ? `{${key}}` : ""} ${s.count}`);
    }
    return lines;
  }
}

export class Gauge implements Instrument {
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly read: () => number | Array<[Labels, number]>,
  ) {}
  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`];
    const value = this.read();
    if (typeof value === "number") lines.push(`${this.name} ${value}`);
    else for (const [labels, v] of value) lines.push(`${this.name}{${labelKey(labels)}} ${v}`);
    return lines;
  }
}

export class Metrics {
  readonly rpcs = new Counter("jobs_rpc_requests_total", "RPCs handled, by method and status code.");
  readonly rpcSeconds = new Histogram("jobs_rpc_duration_seconds", "RPC handling time (for streams: stream lifetime), by method.");
  readonly transitions = new Counter("jobs_transitions_total", "Committed job events, by event type.");
  private readonly gauges: Gauge[] = [];

  gauge(name: string, help: string, read: () => number | Array<[Labels, number]>): void {
    this.gauges.push(new Gauge(name, help, read));
  }

  render(): string {
    return `${[this.rpcs, this.rpcSeconds, this.transitions, ...this.gauges].flatMap((i) => i.render()).join("\n")}\n`;
  }
}

export async function serveMetrics(metrics: Metrics, host: string, port: number): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.method === "GET" && req.url?.split("?")[0] === "/metrics") {
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
      res.end(metrics.render());
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("not found; metrics are at /metrics\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
