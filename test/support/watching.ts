// Helpers for tests about watch streams (docs/contract.md §5): reading a stream to its
// end, following one job's whole history across the stream ends the spec
// prescribes, reading a live stream up to a marker (to tell that nothing more
// is on its way), and running many calls with bounded concurrency.

import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { type JobsClient, type Msg, reader, type RpcError } from "./grpc.js";

/** to_state values after which a WatchJob stream ends OK (docs/contract.md §5). */
export const FINISHED = new Set(["JOB_STATE_COMPLETED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"]);
/** States a job never leaves. */
export const FINAL = new Set(["JOB_STATE_COMPLETED", "JOB_STATE_CANCELLED"]);

export type Reader = ReturnType<typeof reader>;

export interface StreamEnd {
  readonly messages: Msg[];
  /** null: the stream ended OK. */
  readonly error: RpcError | null;
}

/** Reads until the stream ends (OK or not). `timeoutMs` bounds the wait for each message. */
export async function readToEnd(r: Reader, timeoutMs = 15_000): Promise<StreamEnd> {
  const messages: Msg[] = [];
  for (;;) {
    try {
      const m = await r.next(timeoutMs);
      if (m === null) return { messages, error: null };
      messages.push(m);
    } catch (error) {
      if ((error as RpcError).code === undefined) throw error;
      return { messages, error: error as RpcError };
    }
  }
}

/** Reads until `done` holds for a message (returned last), failing if the stream ends first. */
export async function readUntil(r: Reader, done: (m: Msg) => boolean, timeoutMs = 15_000): Promise<Msg[]> {
  const messages: Msg[] = [];
  for (;;) {
    const m = await r.next(timeoutMs);
    if (m === null) throw new Error(`stream ended OK before the awaited message; got ${describe(messages)}`);
    messages.push(m);
    if (done(m)) return messages;
  }
}

/** Names one event a stream must show: a change made to mark a point in it. */
export interface Marker {
  readonly jobId: string;
  readonly revision: string;
}

/**
 * Reads live WatchJobs streams until each has delivered everything published
 * before this call, so that a test can tell "these events, and nothing
 * more" (no duplicate on its way, nothing stray) without sleeping: `mark`
 * makes a change every stream must show, and each is read up to it; then a
 * second one. The second is committed after the first arrived, and a stream
 * sends what its process published in order, so whatever came out with or
 * before the first (a late duplicate included) arrives before the second.
 * Returns, per stream, the messages read before the markers, without
 * heartbeats and without the marker jobs' events.
 */
export async function drainToMarker(readers: readonly Reader[], mark: () => Promise<Marker>, timeoutMs = 15_000): Promise<Msg[][]> {
  const messages = readers.map((): Msg[] => []);
  const markerJobs = new Set<string>();
  for (let i = 0; i < 2; i++) {
    const marker = await mark();
    markerJobs.add(marker.jobId);
    const isMarker = (m: Msg) => m.kind === "event" && m.event.job_id === marker.jobId && m.event.revision === marker.revision;
    await Promise.all(readers.map(async (r, n) => messages[n].push(...(await readUntil(r, isMarker, timeoutMs)))));
  }
  return messages.map((list) => list.filter((m) => m.kind !== "heartbeat" && !(m.kind === "event" && markerJobs.has(m.event.job_id))));
}

/** Markers for drainToMarker: a new job (its CREATED event), made through each of `clients` in turn. */
export function newJobMarkers(clients: readonly JobsClient[], request: Msg): () => Promise<Marker> {
  let made = 0;
  return async () => ({ jobId: (await clients[made++ % clients.length].call("CreateJob", request)).job.id, revision: "1" });
}

/** The JobEvents among WatchJob/WatchJobs messages, in arrival order. */
export function eventsOf(messages: Msg[]): Msg[] {
  return messages.filter((m) => m.kind === "event").map((m) => m.event);
}

export function revisionsOf(events: Msg[]): number[] {
  return events.map((e) => Number(e.revision));
}

/** [from, from+1, …, to] */
export function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
}

/** One message in a few words, for failure messages: `ev 1a2b3c4d r3 JOB_STATE_FAILED`, or its kind. */
export function brief(m: Msg): string {
  return m.kind === "event" ? `ev ${m.event.job_id?.slice(0, 8)} r${m.event.revision} ${m.event.to_state}` : m.kind;
}

export function describe(messages: Msg[]): string {
  return JSON.stringify(messages.map(brief));
}

export interface Followed {
  /** Every event received, over every stream, in arrival order. */
  readonly events: Msg[];
  /** How many streams it took (one more after each FAILED end). */
  readonly streams: number;
}

/**
 * Follows a job's history the way a client that wants all of it must: a
 * WatchJob stream ends OK after a FAILED event (docs/contract.md §5), and the job may be
 * run again, so reconnect from the last revision seen until a COMPLETED or
 * CANCELLED event. Checks on the way that each stream ends right after a
 * finishing event and with OK; any other end throws.
 */
export async function followJob(client: JobsClient, jobId: string, afterRevision = 0, token?: string): Promise<Followed> {
  const events: Msg[] = [];
  let after = afterRevision;
  for (let streams = 1; ; streams++) {
    const stream = client.stream("WatchJob", { job_id: jobId, after_revision: String(after) }, token);
    const end = await readToEnd(reader(stream), 20_000);
    if (end.error) {
      throw new Error(`WatchJob(${jobId}, ${after}) ended with ${end.error.code} ${end.error.details} after ${describe(end.messages)}`);
    }
    const got = eventsOf(end.messages);
    const last = got.at(-1);
    if (!last || !FINISHED.has(last.to_state)) {
      throw new Error(`WatchJob(${jobId}, ${after}) ended OK but not after a finishing event: ${describe(end.messages)}`);
    }
    events.push(...got);
    if (FINAL.has(last.to_state)) return { events, streams };
    after = Number(last.revision);
  }
}

/** Runs `work` over `items`, at most `concurrency` at a time; resolves with the results in item order. */
export async function pool<T, R>(items: readonly T[], concurrency: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let nextIndex = 0;
  const worker = async () => {
    while (nextIndex < items.length) {
      const i = nextIndex++;
      results[i] = await work(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}

/** Polls `check` until it returns true (or throws after `timeoutMs`). For setup, never for timing assertions. */
export async function eventually(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Cancels a client stream and waits for grpc-js to report it closed. */
export function cancelStream(stream: grpc.ClientReadableStream<Msg>): Promise<void> {
  return new Promise((resolve) => {
    stream.on("error", () => resolve());
    stream.on("close", () => resolve());
    stream.cancel();
  });
}

/**
 * A server stream on a connection of its own (grpc-js otherwise shares one
 * connection between clients of the same address), for tests in which one
 * stream stalls and must not hold up the others' connection. Same message
 * conventions as support/grpc.ts.
 */
export function streamOnOwnConnection(address: string, token: string, method: string, request: Msg) {
  const definition = protoLoader.loadSync(["jobs/v1/job_service.proto"], {
    includeDirs: [join(import.meta.dirname, "..", "..", "proto")],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const { JobService } = (grpc.loadPackageDefinition(definition) as unknown as { jobs: { v1: { JobService: grpc.ServiceClientConstructor } } })
    .jobs.v1;
  const client = new JobService(address, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  const name = method[0].toLowerCase() + method.slice(1);
  // biome-ignore lint: dynamic method lookup
  const stream = (client as any)[name](request, metadata) as grpc.ClientReadableStream<Msg>;
  return { stream, close: () => client.close() };
}
