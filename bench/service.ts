// Load through the service: C clients, each on its own HTTP/2 connection,
// running job lifecycles back to back over gRPC; and the watch streams that
// follow jobs while that load runs.

import { grpc, JobsClient, type Msg } from "./client.js";
import { Load } from "./load.js";
import { type Recorder, Samples, sleep } from "./stats.js";
import { completeJobRequest, createJobRequest, runJobRequest } from "./workload.js";

export interface Target {
  readonly address: string;
  readonly token: string;
}

/** One lifecycle; reports each RPC's latency and the events it wrote (1 per call that changed the job). */
async function lifecycle(client: JobsClient, executorId: string, recorder: Recorder, prefix = ""): Promise<void> {
  let started = performance.now();
  const created = await client.call("createJob", createJobRequest());
  recorder.done(`${prefix}CreateJob`, performance.now() - started, 1);
  const jobId = created.job.id as string;
  started = performance.now();
  const run = await client.call("runJob", runJobRequest(jobId, executorId));
  recorder.done(`${prefix}RunJob`, performance.now() - started, run.changed ? 1 : 0);
  started = performance.now();
  const done = await client.call("completeJob", completeJobRequest(jobId, run.job.attempt));
  recorder.done(`${prefix}CompleteJob`, performance.now() - started, done.changed ? 1 : 0);
}

/** `concurrency` clients, each on its own connection, running lifecycles back to back while the load runs. */
export async function createServiceLoad(target: Target, concurrency: number, recorder: Recorder): Promise<{ load: Load; close(): Promise<void> }> {
  const clients = Array.from({ length: concurrency }, () => new JobsClient(target.address, target.token));
  await Promise.all(clients.map((c) => c.ready()));
  const load = new Load(concurrency, (index) => lifecycle(clients[index], `executor-${index}`, recorder), recorder, "lifecycle");
  return {
    load,
    async close() {
      await load.stop();
      for (const c of clients) c.close();
    },
  };
}

/**
 * A pool of connections for watch streams: streams are spread round-robin,
 * `perConnection` to a connection (a watcher process multiplexing its jobs).
 */
export class WatchPool {
  private readonly clients: JobsClient[] = [];
  private next = 0;

  constructor(
    target: Target,
    streams: number,
    readonly perConnection: number,
  ) {
    const connections = Math.max(1, Math.ceil(streams / perConnection));
    for (let i = 0; i < connections; i++) this.clients.push(new JobsClient(target.address, target.token));
  }

  get connections(): number {
    return this.clients.length;
  }

  async ready(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.ready()));
  }

  client(): JobsClient {
    const client = this.clients[this.next];
    this.next = (this.next + 1) % this.clients.length;
    return client;
  }

  close(): void {
    for (const c of this.clients) c.close();
  }
}

/** Anything a watch stream did that it should not have: a gap, a duplicate, an error. */
export interface WatchProblems {
  count: number;
  readonly messages: Map<string, number>;
}

/**
 * One WatchJob stream from revision 0: the replayed CREATED event tells that
 * the server has subscribed it (the server subscribes before it replays), so
 * after `ready` every later event of the job arrives live.
 */
export class Watch {
  readonly ready: Promise<void>;
  /** performance.now() at which each revision arrived. */
  readonly arrivals = new Map<number, number>();
  private readonly stream: grpc.ClientReadableStream<Msg>;
  private expected = 1;
  private cancelled = false;
  onArrival: ((revision: number, at: number) => void) | null = null;

  constructor(client: JobsClient, readonly jobId: string, problems: WatchProblems) {
    this.stream = client.watchJob(jobId, 0);
    const problem = (message: string) => {
      problems.count++;
      problems.messages.set(message, (problems.messages.get(message) ?? 0) + 1);
    };
    this.ready = new Promise<void>((resolve, reject) => {
      this.stream.on("data", (message: Msg) => {
        const at = performance.now();
        if (message.kind !== "event") return; // heartbeat
        const revision = Number(message.event.revision);
        if (revision !== this.expected) problem(`expected revision ${this.expected}, got ${revision}`);
        this.expected = revision + 1;
        this.arrivals.set(revision, at);
        if (revision === 1) resolve();
        this.onArrival?.(revision, at);
      });
      this.stream.on("error", (error: grpc.ServiceError) => {
        if (this.cancelled && error.code === grpc.status.CANCELLED) return;
        problem(`stream error ${grpc.status[error.code] ?? error.code}: ${error.details}`);
        reject(error);
      });
      this.stream.on("end", () => {
        if (!this.cancelled && this.expected !== 4) problem(`stream ended after revision ${this.expected - 1}`);
      });
    });
    this.ready.catch(() => undefined);
  }

  cancel(): void {
    this.cancelled = true;
    this.stream.cancel();
  }
}

/**
 * Opens a watch on each job, at most `inFlight` opening at a time: every open
 * reads the job and its log from the database, and a burst of thousands would
 * queue on the server's pool past DB_ACQUIRE_TIMEOUT_MS (UNAVAILABLE).
 */
export async function openWatches(pool: WatchPool, jobIds: readonly string[], problems: WatchProblems, inFlight = 32): Promise<Watch[]> {
  const watches: Watch[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(inFlight, jobIds.length) }, async () => {
      while (next < jobIds.length) {
        const watch = new Watch(pool.client(), jobIds[next++], problems);
        watches.push(watch);
        await watch.ready;
      }
    }),
  );
  return watches;
}

/** Creates `count` PENDING jobs, `concurrency` at a time; returns their ids. */
export async function createJobs(target: Target, count: number, concurrency = 8): Promise<string[]> {
  const clients = Array.from({ length: Math.min(concurrency, count) }, () => new JobsClient(target.address, target.token));
  const ids: string[] = [];
  let left = count;
  await Promise.all(
    clients.map(async (client) => {
      while (left > 0) {
        left--;
        ids.push((await client.call("createJob", createJobRequest())).job.id as string);
      }
    }),
  );
  for (const c of clients) c.close();
  return ids;
}

/**
 * The probe: a paced client whose jobs are watched. Each round it takes the
 * watched job that has waited longest, runs and completes it (its stream sees
 * revisions 2 and 3, then ends), and replaces it with a new job and a new
 * stream, so the number of open streams stays what `open()` made it.
 * Delivery time = arrival at the watcher − the RPC's reply (the caller learns
 * of the commit then); also measured from the request's start, which bounds
 * it from above. Without a pool the probe runs the same lifecycles unwatched.
 */
export class Probe {
  readonly fromReply = new Samples();
  readonly fromRequest = new Samples();
  private queue: Watch[] = [];
  /** PENDING jobs not watched now: what `open()` watches. */
  private readonly idleJobs: string[] = [];
  private readonly client: JobsClient;
  /** Events written by job creation outside the recorder (setup). */
  setupEvents = 0;

  constructor(
    private readonly target: Target,
    private readonly pool: WatchPool | null,
    private readonly problems: WatchProblems,
  ) {
    this.client = new JobsClient(target.address, target.token);
  }

  /** Opens `count` streams (creating jobs for them when needed) and waits until every one is live. */
  async open(count: number): Promise<void> {
    await this.client.ready();
    if (!this.pool || count === 0) return;
    await this.pool.ready();
    if (this.idleJobs.length < count) {
      const ids = await createJobs(this.target, count - this.idleJobs.length);
      this.setupEvents += ids.length;
      this.idleJobs.push(...ids);
    }
    this.queue = await openWatches(this.pool, this.idleJobs.splice(0, count), this.problems);
  }

  /** Closes every stream; their jobs (still PENDING) can be watched again. */
  closeStreams(): void {
    for (const w of this.queue) {
      w.cancel();
      this.idleJobs.push(w.jobId);
    }
    this.queue = [];
  }

  get streams(): number {
    return this.queue.length;
  }

  /**
   * The probe as a load: `workers` rounds in flight, each worker starting one
   * every workers/rate seconds, so the rate holds while a round takes less.
   */
  load(ratePerSecond: number, recorder: Recorder, workers = 4): Load {
    const period = (1000 * workers) / ratePerSecond;
    return new Load(
      workers,
      async () => {
        const started = performance.now();
        if (this.pool) {
          if (this.queue.length) await this.round(recorder);
        } else {
          await lifecycle(this.client, "probe", recorder, "probe:");
        }
        const wait = period - (performance.now() - started);
        if (wait > 0) await sleep(wait);
      },
      recorder,
      "probe",
    );
  }

  private async round(recorder: Recorder): Promise<void> {
    const watch = this.queue.shift() as Watch;
    const replies = new Map<number, { sent: number; replied: number; recording: boolean }>();
    const sample = (revision: number) => {
      const reply = replies.get(revision);
      const arrived = watch.arrivals.get(revision);
      if (!reply || arrived === undefined || !reply.recording) return;
      this.fromReply.add(arrived - reply.replied);
      this.fromRequest.add(arrived - reply.sent);
    };
    watch.onArrival = (revision) => sample(revision);

    let sent = performance.now();
    const run = await this.client.call("runJob", runJobRequest(watch.jobId, "probe"));
    let replied = performance.now();
    recorder.done("probe:RunJob", replied - sent, run.changed ? 1 : 0);
    replies.set(2, { sent, replied, recording: recorder.recording });
    sample(2);

    sent = performance.now();
    const done = await this.client.call("completeJob", completeJobRequest(watch.jobId, run.job.attempt));
    replied = performance.now();
    recorder.done("probe:CompleteJob", replied - sent, done.changed ? 1 : 0);
    replies.set(3, { sent, replied, recording: recorder.recording });
    sample(3);

    // The replacement: a new job, watched before it is run.
    sent = performance.now();
    const created = await this.client.call("createJob", createJobRequest());
    recorder.done("probe:CreateJob", performance.now() - sent, 1);
    const next = new Watch((this.pool as WatchPool).client(), created.job.id, this.problems);
    await next.ready;
    this.queue.push(next);
  }

  close(): void {
    this.closeStreams();
    this.client.close();
  }
}
