// Client commands: call a running server with the generated Connect client
// (the same way another Node service would; see examples/).

import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { create, fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  type Job,
  type JobEvent,
  JobEventSchema,
  JobInputSchema,
  JobResultSchema,
  JobSchema,
  JobState,
  JobType,
  ExecutionCluster,
} from "../gen/jobs/v1/job_pb.js";
import { JobService, ListJobsRequestSchema } from "../gen/jobs/v1/job_service_pb.js";
import { EXIT, UsageError } from "./exit-codes.js";

export const CLIENT_HELP = `  create --type TYPE [--company N] [--input JSON] [--data-plane ID] [--compute-pool ID]
         [--cluster dedicated|shared] [--request-id UUID]
  get JOB_ID
  list [--state S,...] [--type T,...] [--executor ID] [--data-plane ID] [--company N]
       [--page-size N] [--page-token T]
  events JOB_ID
  run JOB_ID --executor ID [--lease-seconds N]
  complete JOB_ID --result JSON [--attempt N]
  fail JOB_ID --message TEXT [--diagnostic JSON] [--attempt N]
  request-cancellation JOB_ID [--reason TEXT]
  cancel JOB_ID
  heartbeat JOB_ID --executor ID --attempt N
  watch JOB_ID [--after REVISION]   print each event live until the job finishes
  Each takes --json (one JSON document; one per line for watch). TYPE and states
  are enum names with or without their prefix (forecast, JOB_TYPE_FORECAST).
  JSON is the proto JSON form, e.g. --result '{"forecast":{"cost":"12","rows":"3"}}'.
`;

export const CLIENT_COMMANDS = new Set([
  "create",
  "get",
  "list",
  "events",
  "run",
  "complete",
  "fail",
  "request-cancellation",
  "cancel",
  "heartbeat",
  "watch",
]);

const OPTIONS = {
  server: { type: "string" },
  token: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  type: { type: "string" },
  company: { type: "string" },
  input: { type: "string" },
  "data-plane": { type: "string" },
  "compute-pool": { type: "string" },
  cluster: { type: "string" },
  "request-id": { type: "string" },
  state: { type: "string" },
  executor: { type: "string" },
  "page-size": { type: "string" },
  "page-token": { type: "string" },
  "lease-seconds": { type: "string" },
  result: { type: "string" },
  attempt: { type: "string" },
  message: { type: "string" },
  diagnostic: { type: "string" },
  reason: { type: "string" },
  after: { type: "string" },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>["values"];

export async function runClientCommand(command: string, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: OPTIONS, allowPositionals: true });
  if (values.help) {
    process.stdout.write(`Usage: jobsctl ${command} …\n\n${CLIENT_HELP}`);
    return EXIT.ok;
  }
  const client = connect(values);
  const out = new Output(values.json ?? false);
  const jobId = () => {
    const id = positionals[0];
    if (!id) throw new UsageError(`${command} needs a JOB_ID`);
    return id;
  };
  switch (command) {
    case "create": {
      const { job } = await client.createJob({
        type: enumValue(JobType, "JOB_TYPE_", required(values.type, "--type")),
        companyId: int(values.company, "--company"),
        input: values.input ? fromJson(JobInputSchema, parseJson(values.input, "--input")) : undefined,
        dataPlaneId: values["data-plane"] ?? "",
        computePoolId: values["compute-pool"] ?? "",
        executionCluster: values.cluster ? enumValue(ExecutionCluster, "EXECUTION_CLUSTER_", values.cluster) : 0,
        requestId: values["request-id"] ?? "",
      });
      out.job(job);
      return EXIT.ok;
    }
    case "get":
      out.job((await client.getJob({ jobId: jobId() })).job);
      return EXIT.ok;
    case "list": {
      const res = await client.listJobs(
        create(ListJobsRequestSchema, {
          states: list(values.state).map((s) => enumValue(JobState, "JOB_STATE_", s)),
          types: list(values.type).map((t) => enumValue(JobType, "JOB_TYPE_", t)),
          executorId: values.executor ?? "",
          dataPlaneId: values["data-plane"] ?? "",
          companyId: int(values.company, "--company"),
          pageSize: Number(int(values["page-size"], "--page-size")),
          pageToken: values["page-token"] ?? "",
        }),
      );
      if (out.json) out.print({ jobs: res.jobs.map((j) => toJson(JobSchema, j)), nextPageToken: res.nextPageToken });
      else {
        for (const job of res.jobs) out.line(jobLine(job));
        if (res.nextPageToken) out.line(`next page: --page-token ${res.nextPageToken}`);
      }
      return EXIT.ok;
    }
    case "events": {
      const id = jobId();
      let pageToken = "";
      const events: JobEvent[] = [];
      do {
        const res = await client.listJobEvents({ jobId: id, pageSize: 1000, pageToken });
        events.push(...res.events);
        pageToken = res.nextPageToken;
      } while (pageToken);
      if (out.json) out.print(events.map((e) => toJson(JobEventSchema, e)));
      else for (const event of events) out.line(eventLine(event));
      return EXIT.ok;
    }
    case "run":
      out.transition(
        await client.runJob({
          jobId: jobId(),
          executorId: required(values.executor, "--executor"),
          leaseSeconds: Number(int(values["lease-seconds"], "--lease-seconds")),
        }),
      );
      return EXIT.ok;
    case "complete":
      out.transition(
        await client.completeJob({
          jobId: jobId(),
          result: fromJson(JobResultSchema, parseJson(required(values.result, "--result"), "--result")),
          attempt: int(values.attempt, "--attempt"),
        }),
      );
      return EXIT.ok;
    case "fail":
      out.transition(
        await client.failJob({
          jobId: jobId(),
          message: required(values.message, "--message"),
          diagnostic: values.diagnostic ? fromJson(ValueSchema, parseJson(values.diagnostic, "--diagnostic")) : undefined,
          attempt: int(values.attempt, "--attempt"),
        }),
      );
      return EXIT.ok;
    case "request-cancellation":
      out.transition(await client.requestJobCancellation({ jobId: jobId(), reason: values.reason ?? "" }));
      return EXIT.ok;
    case "cancel":
      out.transition(await client.cancelJob({ jobId: jobId() }));
      return EXIT.ok;
    case "heartbeat": {
      const res = await client.heartbeatJob({
        jobId: jobId(),
        executorId: required(values.executor, "--executor"),
        attempt: int(values.attempt, "--attempt"),
      });
      out.job(res.job);
      return EXIT.ok;
    }
    case "watch": {
      for await (const res of client.watchJob({ jobId: jobId(), afterRevision: int(values.after, "--after") })) {
        if (res.kind.case === "event") {
          if (out.json) out.print(toJson(JobEventSchema, res.kind.value), false);
          else out.line(eventLine(res.kind.value));
        }
      }
      return EXIT.ok;
    }
    default:
      throw new UsageError(`unknown command ${command}`);
  }
}

function connect(values: Values): Client<typeof JobService> {
  const baseUrl = values.server ?? process.env.JOBS_SERVER ?? "http://127.0.0.1:50051";
  const token = values.token ?? process.env.JOBS_TOKEN ?? developmentToken();
  if (!token) {
    throw new UsageError("no token: pass --token, set JOBS_TOKEN, or run `jobsctl serve` with the embedded database once to get a development token");
  }
  const transport = createGrpcTransport({
    baseUrl,
    interceptors: [(next) => (req) => {
      req.header.set("authorization", `Bearer ${token}`);
      return next(req);
    }],
  });
  return createClient(JobService, transport);
}

function developmentToken(): string | undefined {
  const file = join(resolve(process.env.JOBS_DATA_DIR || ".data"), "dev-token");
  return existsSync(file) ? readFileSync(file, "utf8").trim() : undefined;
}

class Output {
  constructor(readonly json: boolean) {}
  line(text: string) {
    process.stdout.write(`${text}\n`);
  }
  print(value: unknown, pretty = true) {
    process.stdout.write(`${JSON.stringify(value, null, pretty ? 2 : undefined)}\n`);
  }
  job(job: Job | undefined) {
    if (!job) return;
    if (this.json) this.print(toJson(JobSchema, job));
    else this.line(jobDetails(job));
  }
  transition(res: { job?: Job; changed: boolean }) {
    if (this.json) this.print({ job: res.job ? toJson(JobSchema, res.job) : null, changed: res.changed });
    else {
      this.line(res.changed ? "changed" : "unchanged (no-op)");
      if (res.job) this.line(jobDetails(res.job));
    }
  }
}

const stateName = (s: JobState) => JobState[s] ?? String(s);

function jobLine(job: Job): string {
  return `${job.id}  ${JobType[job.type]}  ${stateName(job.state)}  rev ${job.revision}  company ${job.companyId}${job.executorId ? `  executor ${job.executorId}` : ""}`;
}

function jobDetails(job: Job): string {
  return Object.entries(toJson(JobSchema, job) as Record<string, JsonValue>)
    .map(([key, value]) => `${key}: ${typeof value === "object" ? JSON.stringify(value) : value}`)
    .join("\n");
}

function eventLine(event: JobEvent): string {
  const at = event.occurredAt ? new Date(Number(event.occurredAt.seconds) * 1000 + event.occurredAt.nanos / 1e6).toISOString() : "";
  return `rev ${event.revision}  ${at}  ${stateName(event.fromState)} -> ${stateName(event.toState)}`;
}

function required(value: string | undefined, flag: string): string {
  if (!value) throw new UsageError(`${flag} is required`);
  return value;
}

function int(value: string | undefined, flag: string): bigint {
  if (value === undefined) return 0n;
  if (!/^\d+$/.test(value)) throw new UsageError(`${flag} must be a whole number, got "${value}"`);
  return BigInt(value);
}

function list(value: string | undefined): string[] {
  return value ? value.split(",").map((s) => s.trim()).filter(Boolean) : [];
}

function enumValue<E extends Record<string, string | number>>(enumObject: E, prefix: string, name: string): number {
  const key = name.toUpperCase().replace(/-/g, "_").replace(new RegExp(`^${prefix}`), "");
  const value = enumObject[key];
  if (typeof value !== "number" || value === 0) {
    const names = Object.keys(enumObject).filter((k) => Number.isNaN(Number(k)) && enumObject[k] !== 0);
    throw new UsageError(`unknown value "${name}"; use one of ${names.map((n) => n.toLowerCase()).join(", ")}`);
  }
  return value;
}

function parseJson(text: string, flag: string): JsonValue {
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    throw new UsageError(`${flag} must be JSON`);
  }
}
