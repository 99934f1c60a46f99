// How another Node service talks to jobs: the generated Connect client
// (src/gen, `npm run generate`) over gRPC, with the bearer token in an
// interceptor, ErrorInfo read from errors, and a watch that resumes from the
// last revision whenever its stream breaks. Copy what you need; the pieces are small.
//
//   npm run -s build && node dist/examples/ts-client.js --server http://127.0.0.1:50051 --token "$JOBS_TOKEN"
//
// It creates a FORECAST job, claims it as an executor, watches it,
// heartbeats, completes it, and prints a JSON summary.
//
// In another package: depend on @bufbuild/protobuf, @connectrpc/connect and
// @connectrpc/connect-node (the versions in this repo's package.json), and
// either copy src/gen/jobs/v1 and src/gen/google/rpc into it, or generate
// your own with protoc-gen-es from proto/ (buf.gen.yaml shows the options).

import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { type ErrorInfo, ErrorInfoSchema } from "../src/gen/google/rpc/error_details_pb.js";
import { type JobEvent, JobEventType, JobState, JobType } from "../src/gen/jobs/v1/job_pb.js";
import { JobService } from "../src/gen/jobs/v1/job_service_pb.js";

export type JobsClient = Client<typeof JobService>;

/** Sends `authorization: Bearer <token>` with every call. */
export function bearer(token: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

/** A JobService client over gRPC (HTTP/2; plaintext h2c for http:// URLs, TLS for https://). */
export function jobsClient(baseUrl: string, token: string): JobsClient {
  return createClient(JobService, createGrpcTransport({ baseUrl, interceptors: [bearer(token)] }));
}

/**
 * The google.rpc.ErrorInfo of a failed call (domain "jobs.v1", reason such as
 * JOB_NOT_FOUND, INVALID_TRANSITION or STALE_ATTEMPT, metadata job_id/state/call).
 * Connect decodes grpc-status-details-bin into ConnectError.details.
 */
export function errorInfo(error: unknown): ErrorInfo | undefined {
  return ConnectError.from(error).findDetails(ErrorInfoSchema)[0];
}

export interface WatchOptions {
  /** Start after this revision; 0 replays the whole history. */
  afterRevision?: bigint;
  /** First wait before reconnecting, in ms (doubles up to maxBackoffMs). */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Called before each reconnect with the revision it resumes after. */
  onReconnect?: (afterRevision: bigint, error: ConnectError) => void;
  /** Stops the watch (it throws CANCELED): the caller's own, or AbortSignal.timeout(ms) as a deadline. */
  signal?: AbortSignal;
}

/**
 * One job's events, oldest first, then live. When the stream breaks without
 * the server ending it (it drains, restarts or crashes, or the network drops)
 * it waits, with backoff, and calls WatchJob again after the last revision it
 * delivered: nothing is lost or repeated. It keeps trying until the job ends
 * (the server ends the stream with OK after COMPLETED, FAILED or CANCELLED) or
 * `signal` aborts; the server's own refusals (NOT_FOUND, OUT_OF_RANGE,
 * UNAUTHENTICATED …) are thrown. Heartbeats are skipped.
 */
export async function* watchJob(client: JobsClient, jobId: string, options: WatchOptions = {}): AsyncGenerator<JobEvent> {
  let after = options.afterRevision ?? 0n;
  let failures = 0;
  const initial = options.initialBackoffMs ?? 200;
  const max = options.maxBackoffMs ?? 10_000;
  for (;;) {
    try {
      for await (const message of client.watchJob({ jobId, afterRevision: after }, { signal: options.signal })) {
        failures = 0;
        if (message.kind.case === "event") {
          after = message.kind.value.revision;
          yield message.kind.value;
        }
      }
      return; // ended with OK: the job is finished
    } catch (error) {
      const err = ConnectError.from(error);
      if (!isBrokenStream(err) || options.signal?.aborted) throw err;
      failures += 1;
      const delay = Math.min(max, initial * 2 ** (failures - 1)) * (0.8 + Math.random() * 0.4);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        options.signal?.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
      });
      options.onReconnect?.(after, err);
    }
  }
}

/**
 * Whether a failed stream broke rather than being ended by the server:
 * UNAVAILABLE (the server drains, or the connection is refused or reset), or
 * a status connect-node made up for a connection that went away (a killed
 * server's reset is CANCELED, a cut-off body UNKNOWN or INTERNAL; a Node
 * error from another realm, as under jest's vm, is INTERNAL too). Every
 * error the jobs service itself sends carries an ErrorInfo, so one without
 * is the connection's.
 */
export function isBrokenStream(error: ConnectError): boolean {
  if (error.code === Code.Unavailable) return true;
  const madeUp = [Code.Canceled, Code.Unknown, Code.Internal, Code.Aborted].includes(error.code);
  return madeUp && errorInfo(error) === undefined;
}

export interface ExampleSummary {
  jobId: string;
  finalState: string;
  attempt: bigint;
  heartbeats: number;
  watched: { revision: bigint; type: string; toState: string }[];
  missingJob: { code: string; reason?: string; domain?: string };
}

/** The walk-through the script runs: create, claim, watch, heartbeat, complete. */
export async function runExample(baseUrl: string, token: string, executorId = "ts-example"): Promise<ExampleSummary> {
  const client = jobsClient(baseUrl, token);

  const { job } = await client.createJob({
    type: JobType.FORECAST,
    companyId: 7n,
    input: { kind: { case: "forecast", value: { nql: "select count(*) from sales" } } },
  });
  if (!job) throw new Error("CreateJob returned no job");

  const run = await client.runJob({ jobId: job.id, executorId, leaseSeconds: 30 });
  if (run.job?.executorId !== executorId) throw new Error(`job ${job.id} is run by ${run.job?.executorId}`);
  const attempt = run.job.attempt;

  // Watch from the start, in the background, until the job ends.
  const watched: ExampleSummary["watched"] = [];
  const watching = (async () => {
    for await (const event of watchJob(client, job.id)) {
      watched.push({ revision: event.revision, type: JobEventType[event.type], toState: JobState[event.toState] });
    }
  })();

  let heartbeats = 0;
  for (let i = 0; i < 2; i++) {
    const beat = await client.heartbeatJob({ jobId: job.id, executorId, attempt });
    if (beat.job?.state === JobState.PENDING_CANCELLATION) throw new Error("cancellation requested");
    heartbeats += 1;
  }
  const done = await client.completeJob({
    jobId: job.id,
    attempt,
    result: { kind: { case: "forecast", value: { cost: 42n, rows: 1000n } } },
  });
  await watching;

  let missingJob: ExampleSummary["missingJob"] = { code: "OK" };
  try {
    await client.getJob({ jobId: "00000000-0000-4000-8000-000000000000" });
  } catch (error) {
    const info = errorInfo(error);
    missingJob = { code: Code[ConnectError.from(error).code], reason: info?.reason, domain: info?.domain };
  }

  return {
    jobId: job.id,
    finalState: JobState[done.job?.state ?? JobState.UNSPECIFIED],
    attempt,
    heartbeats,
    watched,
    missingJob,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { server: { type: "string" }, token: { type: "string" }, "executor-id": { type: "string" } },
  });
  const server = values.server ?? process.env.JOBS_SERVER ?? "http://127.0.0.1:50051";
  const token = values.token ?? process.env.JOBS_TOKEN;
  if (!token) throw new Error("pass --token or set JOBS_TOKEN");
  const summary = await runExample(server, token, values["executor-id"]);
  process.stdout.write(`${JSON.stringify(summary, (_k, v) => (typeof v === "bigint" ? v.toString() : v), 2)}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
