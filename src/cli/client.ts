// Client commands: call a running server with the generated Connect client
// (the same way another Node service would; see examples/).

import { create, fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { type Command, Option } from "commander";
import type { JobTypeName } from "../domain/states.js";
import { ExecutionCluster, type Job, JobEventSchema, JobSchema, JobState, JobType } from "../gen/jobs/v1/job_pb.js";
import { ListJobsRequestSchema } from "../gen/jobs/v1/job_service_pb.js";
import { addClientOptions, type ClientOptions, connect } from "./connection.js";
import { EVENT_COLUMNS, eventRow, JOB_COLUMNS, JSON_OUTPUT, jobBlock, jobRow, stateName, typeName } from "./format.js";
import { table } from "./table.js";
import { examples as withExamples } from "./help.js";
import { assignment, count, enumNames, enumValue, isoTime, json, listOf, positiveNumber, readJsonFile, wholeNumber } from "./options.js";
import { statusLine } from "./status-line.js";
import { buildInput, buildResult, checkResultArgs, parseResult } from "./variants.js";
import { type WatchOptions, watchJob } from "./watch.js";

type Assignments = Array<[string, string]>;

/** Registers every client command on `program`. */
export function registerClientCommands(program: Command): void {
  const command = (nameAndArgs: string, description: string) =>
    program.command(nameAndArgs).description(description).helpGroup("Client commands (against a running server):");
  // The connection and output options go last, so --help lists the command's own first.
  const examples = (cmd: Command, lines: readonly string[]) => withExamples(addClientOptions(cmd), lines);

  examples(
    command("create", "create a job in PENDING and print it")
      .addOption(new Option("--type <type>", `job type: ${enumNames(JobType).join(", ")}`).argParser(enumValue(JobType, "JOB_TYPE_")).makeOptionMandatory())
      .option("--company <id>", "company the job belongs to (required with a service token)", positiveNumber)
      .addOption(new Option("--input <json>", "the input as proto JSON, naming its variant").argParser(json).conflicts("inputFile"))
      .option("--input-file <path>", "read the input JSON from a file (- for stdin)")
      .option(
        "--set <field=value>",
        "set an input field (repeatable; a.b nests): forecast takes nql, compiled_sql; refresh_materialized_view nql, dataset_id, stats_enabled, compiled_sql; other types any key",
        assignment,
      )
      .option("--data-plane <id>", "data plane the job runs in")
      .option("--compute-pool <id>", "compute pool the job runs on")
      .option("--execution-cluster <cluster>", "dedicated or shared", enumValue(ExecutionCluster, "EXECUTION_CLUSTER_"))
      .option("--request-id <uuid>", "idempotency key: the same id again returns the same job, not a new one")
      .option("-q, --quiet", "print only the new job's id"),
    [
      `jobsctl create --type forecast --company 42 --set nql="orders per day"`,
      `jobsctl create --type refresh_materialized_view --company 42 --input '{"refresh_materialized_view": {"nql": "…", "dataset_id": "7"}}'`,
      `jobsctl create --type health_check --company 42 --input-file input.json --request-id "$(uuidgen)" --json`,
      `JOB=$(jobsctl create --type forecast --company 42 --quiet)`,
    ],
  ).action(async (opts: ClientOptions & CreateOptions) => {
    const type = JobType[opts.type] as JobTypeName;
    const inputJson = opts.input ?? (opts.inputFile ? readJsonFile(opts.inputFile, "--input-file") : undefined);
    const input = buildInput(type, { json: inputJson, sets: opts.set });
    const { job } = await connect(opts).createJob({
      type: opts.type,
      companyId: opts.company ?? 0n,
      input,
      dataPlaneId: opts.dataPlane ?? "",
      computePoolId: opts.computePool ?? "",
      executionCluster: opts.executionCluster ?? ExecutionCluster.UNSPECIFIED,
      requestId: opts.requestId ?? "",
    });
    if (opts.quiet && job) process.stdout.write(`${job.id}\n`);
    else printJob(opts, job);
  });

  examples(command("get <job-id>", "print one job"), ["jobsctl get 0b5e…", "jobsctl get 0b5e… --json | jq -r .state"]).action(
    async (jobId: string, opts: ClientOptions) => printJob(opts, (await connect(opts).getJob({ jobId })).job),
  );

  examples(
    command("list", "list jobs, newest first, a page at a time (or --all)")
      .option("--state <state>", `only these states (repeatable or comma-separated): ${enumNames(JobState).join(", ")}`, listOf(enumValue(JobState, "JOB_STATE_")))
      .option("--type <type>", "only these job types (repeatable or comma-separated)", listOf(enumValue(JobType, "JOB_TYPE_")))
      .option("--executor <id>", "only jobs run by this executor")
      .option("--data-plane <id>", "only jobs in this data plane")
      .option("--company <id>", "only this company's jobs (service tokens)", positiveNumber)
      .option("--created-after <time>", "only jobs created at or after this ISO 8601 time", isoTime)
      .option("--created-before <time>", "only jobs created before this ISO 8601 time", isoTime)
      .option("--page-size <n>", "jobs per page (server default 50, at most 1000)", count)
      .option("--page-token <token>", "continue a listing: the token the previous page printed")
      .option("--all", "follow every page to the end"),
    [
      "jobsctl list --state running,pending_cancellation --company 42",
      "jobsctl list --type forecast --created-after 2025-01-01 --all --json",
      "jobsctl list --page-size 20 --page-token \"$NEXT\"",
    ],
  ).action(async (opts: ClientOptions & ListOptions) => {
    const client = connect(opts);
    const { items, next } = await pages(opts, "jobs", async (pageToken, pageSize) => {
      const res = await client.listJobs(
        create(ListJobsRequestSchema, {
          states: opts.state ?? [],
          types: opts.type ?? [],
          executorId: opts.executor ?? "",
          dataPlaneId: opts.dataPlane ?? "",
          companyId: opts.company ?? 0n,
          createdAfter: opts.createdAfter,
          createdBefore: opts.createdBefore,
          pageSize,
          pageToken,
        }),
      );
      return { items: res.jobs, next: res.nextPageToken };
    });
    if (opts.json) printJson({ jobs: items.map((j) => toJson(JobSchema, j, JSON_OUTPUT)), nextPageToken: next });
    else printPage("jobs", items.length ? table(JOB_COLUMNS, items.map(jobRow)) : "no jobs\n", next);
  });

  examples(
    command("events <job-id>", "print a job's history of events, oldest first")
      .option("--page-size <n>", "events per page (server default 50, at most 1000)", count)
      .option("--page-token <token>", "continue: the token the previous page printed")
      .option("--all", "follow every page to the end"),
    ["jobsctl events 0b5e…", "jobsctl events 0b5e… --all --json | jq '.events[].type'"],
  ).action(async (jobId: string, opts: ClientOptions & PageOptions) => {
    const client = connect(opts);
    const { items, next } = await pages(opts, "events", async (pageToken, pageSize) => {
      const res = await client.listJobEvents({ jobId, pageSize, pageToken });
      return { items: res.events, next: res.nextPageToken };
    });
    if (opts.json) printJson({ events: items.map((e) => toJson(JobEventSchema, e, JSON_OUTPUT)), nextPageToken: next });
    else printPage("events", table(EVENT_COLUMNS, items.map(eventRow)), next);
  });

  examples(
    command("run <job-id>", "claim a job for an executor: PENDING or FAILED → RUNNING")
      .requiredOption("--executor <id>", "the executor that runs it")
      .option("--lease-seconds <n>", "lease to keep alive with heartbeat (1–86400; default LEASE_DEFAULT_SECONDS)", count),
    ["jobsctl run 0b5e… --executor executor-1", "jobsctl run 0b5e… --executor executor-1 --lease-seconds 300 --json"],
  ).action(async (jobId: string, opts: ClientOptions & { executor: string; leaseSeconds?: number }) =>
    printTransition(opts, await connect(opts).runJob({ jobId, executorId: opts.executor, leaseSeconds: opts.leaseSeconds ?? 0 })),
  );

  examples(
    command("complete <job-id>", "report a job's result: → COMPLETED")
      .addOption(new Option("--result <json>", "the result as proto JSON, naming its variant").argParser(json).conflicts("resultFile"))
      .option("--result-file <path>", "read the result JSON from a file (- for stdin)")
      .option("--set <field=value>", "set a field of the job type's result variant (repeatable; a.b for nested fields)", assignment)
      .option("--attempt <n>", "refuse (exit 4) unless this is still the job's current attempt", positiveNumber),
    [
      "jobsctl complete 0b5e… --set cost=120 --set rows=31",
      `jobsctl complete 0b5e… --result '{"forecast": {"cost": "120", "rows": "31"}}' --attempt 1`,
      "jobsctl complete 0b5e… --result-file result.json --set row_stats.affected_rows=10",
      "# The job is read first: a result variant that does not fit its type exits 2 and sends nothing.",
    ],
  ).action(async (jobId: string, opts: ClientOptions & CompleteOptions) => {
    const resultJson = opts.result ?? (opts.resultFile ? readJsonFile(opts.resultFile, "--result-file") : undefined);
    checkResultArgs({ json: resultJson, sets: opts.set });
    const client = connect(opts);
    let result;
    try {
      const { job } = await client.getJob({ jobId });
      result = buildResult(typeName(job!.type) as JobTypeName, { json: resultJson, sets: opts.set });
    } catch (error) {
      // A write-only token (an executor's) may not read the job; then only the server can check the variant.
      const denied = error instanceof ConnectError && error.code === Code.PermissionDenied;
      if (!denied || resultJson === undefined || opts.set?.length) throw error;
      result = parseResult(resultJson);
    }
    printTransition(opts, await client.completeJob({ jobId, result, attempt: opts.attempt ?? 0n }));
  });

  examples(
    command("fail <job-id>", "report that a job failed: → FAILED (it may be run again)")
      .requiredOption("--message <text>", "what went wrong, for a person")
      .option("--diagnostic <json>", "any JSON with details for machines", json)
      .option("--attempt <n>", "refuse (exit 4) unless this is still the job's current attempt", positiveNumber),
    [`jobsctl fail 0b5e… --message "disk full"`, `jobsctl fail 0b5e… --message "timeout" --diagnostic '{"after_s": 30}' --attempt 2`],
  ).action(async (jobId: string, opts: ClientOptions & { message: string; diagnostic?: JsonValue; attempt?: bigint }) =>
    printTransition(
      opts,
      await connect(opts).failJob({
        jobId,
        message: opts.message,
        diagnostic: opts.diagnostic === undefined ? undefined : fromJson(ValueSchema, opts.diagnostic),
        attempt: opts.attempt ?? 0n,
      }),
    ),
  );

  examples(
    command("request-cancellation <job-id>", "ask a job's executor to stop: → PENDING_CANCELLATION").option("--reason <text>", "why, for the executor and the record"),
    [`jobsctl request-cancellation 0b5e… --reason "superseded by a newer forecast"`],
  ).action(async (jobId: string, opts: ClientOptions & { reason?: string }) =>
    printTransition(opts, await connect(opts).requestJobCancellation({ jobId, reason: opts.reason ?? "" })),
  );

  examples(command("cancel <job-id>", "confirm a requested cancellation: PENDING_CANCELLATION → CANCELLED"), [
    "jobsctl cancel 0b5e…",
    "# A job that was not asked to cancel is rejected (exit 4): request-cancellation first.",
  ]).action(async (jobId: string, opts: ClientOptions) => printTransition(opts, await connect(opts).cancelJob({ jobId })));

  examples(
    command("heartbeat <job-id>", "extend a running job's lease, as its executor")
      .requiredOption("--executor <id>", "the executor running it")
      .requiredOption("--attempt <n>", "the attempt it is running", positiveNumber),
    ["jobsctl heartbeat 0b5e… --executor executor-1 --attempt 1"],
  ).action(async (jobId: string, opts: ClientOptions & { executor: string; attempt: bigint }) =>
    printJob(opts, (await connect(opts).heartbeatJob({ jobId, executorId: opts.executor, attempt: opts.attempt })).job),
  );

  examples(
    command("watch <job-id>", "print a job's events live until it finishes; resumes from the last revision if the connection breaks")
      .option("--after <revision>", "start after this revision (default 0: the whole history first)", wholeNumber)
      .option("--timeout <seconds>", "give up (exit 6) if the job has not finished by then (default: wait as long as it runs)", count),
    ["jobsctl watch 0b5e…", "jobsctl watch 0b5e… --after 3 --json   # one JSON event per line", "jobsctl watch 0b5e… --timeout 3600"],
  ).action(async (jobId: string, opts: WatchOptions & { after?: bigint }) => watchJob(connect(opts), jobId, opts.after ?? 0n, opts));
}

interface CreateOptions {
  type: JobType;
  company?: bigint;
  input?: JsonValue;
  inputFile?: string;
  set?: Assignments;
  dataPlane?: string;
  computePool?: string;
  executionCluster?: ExecutionCluster;
  requestId?: string;
  quiet?: boolean;
}

interface PageOptions {
  pageSize?: number;
  pageToken?: string;
  all?: boolean;
}

interface ListOptions extends PageOptions {
  state?: JobState[];
  type?: JobType[];
  executor?: string;
  dataPlane?: string;
  company?: bigint;
  createdAfter?: ReturnType<typeof isoTime>;
  createdBefore?: ReturnType<typeof isoTime>;
}

interface CompleteOptions {
  result?: JsonValue;
  resultFile?: string;
  set?: Assignments;
  attempt?: bigint;
}

/** One page, or with --all every page, with a progress line on a terminal while it fetches. */
async function pages<T>(
  opts: ClientOptions & PageOptions,
  what: string,
  fetch: (pageToken: string, pageSize: number) => Promise<{ items: T[]; next: string }>,
): Promise<{ items: T[]; next: string }> {
  const pageSize = opts.pageSize ?? (opts.all ? 1000 : 0);
  const status = statusLine(Boolean(opts.all) && !opts.json);
  const items: T[] = [];
  let next = opts.pageToken ?? "";
  try {
    do {
      const page = await fetch(next, pageSize);
      items.push(...page.items);
      next = page.next;
      if (next) status.set(`fetched ${items.length} ${what}, fetching more…`);
    } while (opts.all && next);
  } finally {
    status.clear();
  }
  return { items, next };
}

function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

function printPage(what: string, text: string, next: string): void {
  process.stdout.write(text);
  // On stderr: stdout stays the table alone.
  if (next) process.stderr.write(`more ${what}: repeat with --page-token ${next} (or --all)\n`);
}

function printJob(opts: ClientOptions, job: Job | undefined): void {
  if (!job) throw new Error("the server sent no job");
  if (opts.json) printJson(toJson(JobSchema, job, JSON_OUTPUT));
  else process.stdout.write(jobBlock(job));
}

function printTransition(opts: ClientOptions, res: { job?: Job; changed: boolean }): void {
  const job = res.job;
  if (!job) throw new Error("the server sent no job");
  if (opts.json) {
    printJson({ job: toJson(JobSchema, job, JSON_OUTPUT), changed: res.changed });
    return;
  }
  const state = `${stateName(job.state)} (revision ${job.revision})`;
  process.stdout.write(`${res.changed ? `changed: job is now ${state}` : `unchanged (no-op): job is ${state}`}\n\n${jobBlock(job)}`);
}
