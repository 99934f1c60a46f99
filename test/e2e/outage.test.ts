// The database goes away under load and comes back (issue 10, item 3; the contract
// §11): several clients keep running job lifecycles (create, run, sometimes
// fail and run again, complete) while PostgreSQL is stopped and started again,
// OUTAGES times, and every job has a WatchJob watcher. Proved:
//   - no call hangs: each has a deadline a few seconds past
//     DB_ACQUIRE_TIMEOUT_MS, so a hang ends DEADLINE_EXCEEDED and fails; the
//     only error any call gets is UNAVAILABLE (DATABASE_UNAVAILABLE or
//     COMMIT_UNKNOWN), and every client gets it during every outage;
//   - health goes SERVING → NOT_SERVING → SERVING for each outage, and the
//     same server process serves the load again afterwards;
//   - every answered call is in the database: a changed=true reply as exactly
//     its event, any other reply as a revision the log has (clients retry an
//     UNAVAILABLE call as docs/contract.md §11 says they may); every job's log obeys §4;
//     a CreateJob retried after an unknown outcome made one job, not two;
//   - every watcher, reconnecting from the last revision it saw whenever its
//     stream ended UNAVAILABLE (or OK after a FAILED event), saw each of its
//     job's events exactly once, in order: the job_events table, no more.
// JOBS_SOAK scales the number of outages.

import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { status } from "@grpc/grpc-js";
import { FORECAST_RESULT } from "../rpc/jobs-fixture.js";
import { authorizationMetadata, bearer } from "../support/auth-calls.js";
import { reportFigures, scaled } from "../support/figures.js";
import { jobsClient, type JobsClient, type Msg, reader, type RpcError, withErrorInfo } from "../support/grpc.js";
import { sql, startServer, type TestServer } from "../support/harness.js";
import { healthClient, type HealthClient } from "../support/health-client.js";
import { checkJobs, type Reply, type TransitionCall } from "../support/invariants.js";
import { type OwnPostgres, startOwnPostgres } from "../support/own-postgres.js";
import { freePort } from "../support/processes.js";
import { FINAL, eventsOf, range, readToEnd } from "../support/watching.js";

const CLIENTS = 4;
const OUTAGES = scaled(2);
const ACQUIRE_TIMEOUT_MS = 1000;
/** Far past what an UNAVAILABLE answer takes (about DB_ACQUIRE_TIMEOUT_MS at worst): a call still unanswered then hung. */
const DEADLINE_MS = ACQUIRE_TIMEOUT_MS + 5000;
/** Lifecycles each client completes after the database is back, before the next outage or the end. */
const LIFECYCLES_BETWEEN = 2;
const UNAVAILABLE_REASONS = new Set(["DATABASE_UNAVAILABLE", "COMMIT_UNKNOWN"]);

let pg: OwnPostgres;
let metricsPort = 0;
let server: TestServer;
let clients: JobsClient[];
let watcher: JobsClient;
let health: HealthClient;

beforeAll(async () => {
  pg = await startOwnPostgres();
  metricsPort = await freePort();
  server = await startServer({
    databaseUrl: pg.url,
    env: {
      DB_ACQUIRE_TIMEOUT_MS: String(ACQUIRE_TIMEOUT_MS),
      LOG_LEVEL: "fatal",
      // An idle watch stream still speaks every second, so a silent one is a hang.
      WATCH_HEARTBEAT_SECONDS: "1",
      // A pool small enough that connections lost to outages would soon leave none for the calls.
      DB_POOL_SIZE: "8",
      METRICS_PORT: String(metricsPort),
    },
  });
  // A connection each, as separate client processes would have.
  clients = range(1, CLIENTS).map(() => jobsClient(server.address, server.tokens.service, { "grpc.use_local_subchannel_pool": 1 }));
  watcher = jobsClient(server.address, server.tokens.service, { "grpc.use_local_subchannel_pool": 1 });
  health = healthClient(server.address);
}, 60_000);

afterAll(async () => {
  for (const c of clients ?? []) c.close();
  watcher?.close();
  health?.close();
  // The test drains the server itself; if that hung, do not hang here too.
  await Promise.race([server?.stop(), sleep(20_000)]);
  await pg?.destroy();
}, 60_000);

/** Unref'd: a timeout that lost its race must not keep jest waiting. */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

/** Stops a client's loop after a violation: the violation is already recorded. */
class Stop extends Error {}

interface Run {
  readonly violations: string[];
  readonly replies: Reply[];
  readonly jobIds: string[];
  /** Events each watcher received, by job: [revision, to_state]. */
  readonly seen: Map<string, Array<[number, string]>>;
  readonly followers: Array<Promise<void>>;
  /** request_id → every job id an OK CreateJob answer named for it. */
  readonly created: Map<string, Set<string>>;
  /** Per client: UNAVAILABLE answers, and lifecycles completed. */
  readonly unavailable: number[];
  readonly lifecycles: number[];
  calls: number;
  commitUnknown: number;
  watchReconnects: number;
  stopping: boolean;
}

const run: Run = {
  violations: [],
  replies: [],
  jobIds: [],
  seen: new Map(),
  followers: [],
  created: new Map(),
  unavailable: new Array(CLIENTS).fill(0),
  lifecycles: new Array(CLIENTS).fill(0),
  calls: 0,
  commitUnknown: 0,
  watchReconnects: 0,
  stopping: false,
};

/** One unary call with a deadline; resolves with the reply or the error. */
function unary(client: JobsClient, method: string, request: Msg): Promise<{ reply: Msg } | { error: RpcError }> {
  return new Promise((resolve) => {
    const name = method[0].toLowerCase() + method.slice(1);
    // biome-ignore lint: dynamic method on the untyped grpc-js client
    (client.raw as any)[name](request, authorizationMetadata(bearer(server.tokens.service)), { deadline: Date.now() + DEADLINE_MS }, (err: RpcError | null, reply: Msg) =>
      resolve(err ? { error: withErrorInfo(err) } : { reply }),
    );
  });
}

/** Sends `request` until it is answered OK, retrying UNAVAILABLE with backoff as docs/contract.md §11 allows; any other answer is a violation. */
async function settle(c: number, method: string, request: Msg): Promise<Msg> {
  for (let failures = 0; ; failures++) {
    run.calls++;
    const outcome = await unary(clients[c], method, request);
    if ("reply" in outcome) return outcome.reply;
    const { error } = outcome;
    const reason = error.errorInfo?.reason ?? "";
    if (error.code === status.UNAVAILABLE && error.errorInfo?.domain === "jobs.v1" && UNAVAILABLE_REASONS.has(reason)) {
      run.unavailable[c]++;
      if (reason === "COMMIT_UNKNOWN") run.commitUnknown++;
      await sleep(Math.min(500, 25 * 2 ** failures));
      continue;
    }
    run.violations.push(`client ${c}: ${method} ${JSON.stringify(request)} ended ${status[error.code]} ${reason || "(no ErrorInfo)"}: ${error.details}`);
    throw new Stop();
  }
}

async function transition(c: number, call: TransitionCall, request: Msg): Promise<Msg> {
  const reply = await settle(c, call, request);
  run.replies.push({ jobId: request.job_id, call, changed: reply.changed, job: reply.job });
  return reply;
}

async function createJob(c: number): Promise<string> {
  const request_id = randomUUID();
  const { job } = await settle(c, "CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "1", request_id });
  run.created.set(request_id, new Set([job.id]));
  run.jobIds.push(job.id);
  run.followers.push(follow(job.id));
  return job.id;
}

/**
 * Follows one job the way docs/contract.md §5/§11 tell a client to: reconnect with
 * after_revision = the last revision seen when the stream ends UNAVAILABLE,
 * or OK after a FAILED event (the job may run again); stop after COMPLETED.
 */
async function follow(jobId: string): Promise<void> {
  const seen: Array<[number, string]> = [];
  run.seen.set(jobId, seen);
  let after = 0;
  for (let failures = 0; ; ) {
    const stream = watcher.stream("WatchJob", { job_id: jobId, after_revision: String(after) });
    let end: Awaited<ReturnType<typeof readToEnd>>;
    try {
      end = await readToEnd(reader(stream), 20_000);
    } catch (error) {
      stream.cancel();
      run.violations.push(`watcher of ${jobId} (after ${after}): ${(error as Error).message}`);
      return;
    }
    for (const event of eventsOf(end.messages)) {
      seen.push([Number(event.revision), event.to_state]);
      after = Number(event.revision);
      failures = 0;
    }
    if (end.error) {
      const reason = end.error.errorInfo?.reason ?? "";
      if (end.error.code !== status.UNAVAILABLE || !UNAVAILABLE_REASONS.has(reason)) {
        run.violations.push(`watcher of ${jobId} (after ${after}) ended ${status[end.error.code]} ${reason}: ${end.error.details}`);
        return;
      }
      run.watchReconnects++;
      await sleep(Math.min(1000, 50 * 2 ** failures++));
      continue;
    }
    if (FINAL.has(seen.at(-1)?.[1] ?? "")) return;
  }
}

/** Create, run (sometimes fail and run again), complete; then move the client's long-lived job once more. */
async function lifecycle(c: number, n: number, marathon: string): Promise<void> {
  const job_id = await createJob(c);
  await transition(c, "RunJob", { job_id, executor_id: `executor-${c}`, lease_seconds: 3600 });
  if (n % 2 === 1) {
    await transition(c, "FailJob", { job_id, message: "the executor lost its node" });
    await transition(c, "RunJob", { job_id, executor_id: `executor-${c}`, lease_seconds: 3600 });
  }
  await transition(c, "CompleteJob", { job_id, result: FORECAST_RESULT });
  // The long-lived job's watcher spans every outage: one stream after another (each ends OK after a FAILED event).
  await transition(c, "RunJob", { job_id: marathon, executor_id: `executor-${c}`, lease_seconds: 3600 });
  await transition(c, "FailJob", { job_id: marathon, message: `round ${n}` });
  run.lifecycles[c]++;
}

async function client(c: number): Promise<void> {
  try {
    const marathon = await createJob(c);
    for (let n = 0; !run.stopping; n++) await lifecycle(c, n, marathon);
    await transition(c, "RunJob", { job_id: marathon, executor_id: `executor-${c}`, lease_seconds: 3600 });
    await transition(c, "CompleteJob", { job_id: marathon, result: FORECAST_RESULT });
  } catch (error) {
    if (!(error instanceof Stop)) run.violations.push(`client ${c}: ${(error as Error).stack}`);
  }
}

/** Polls health until the test ends, keeping each change of status. */
function watchHealth(): { statuses: string[]; stop: () => Promise<void> } {
  const statuses: string[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const now = await health.checkOutcome("", 2000);
      if (statuses.at(-1) !== now) statuses.push(now);
      await sleep(50);
    }
  })();
  return {
    statuses,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

/** Waits for `check`, up to `ms`; a miss is recorded as a violation (the proof goes on, to report everything). */
async function await_(what: string, check: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) {
      run.violations.push(`${what}: not within ${ms} ms`);
      return false;
    }
    await sleep(25);
  }
  return true;
}

test(`${OUTAGES} database outages under load from ${CLIENTS} clients: UNAVAILABLE not hangs, health follows, nothing answered is lost, watchers resume without gap`, async () => {
  const healthSeen = watchHealth();
  const loops = range(0, CLIENTS - 1).map((c) => client(c));
  const doneAfter = (baseline: number[]) => () => run.lifecycles.every((n, c) => n >= baseline[c] + LIFECYCLES_BETWEEN);
  await await_("every client running lifecycles before the first outage", doneAfter(run.lifecycles.map(() => 0)), 20_000);

  for (let outage = 1; outage <= OUTAGES && run.violations.length === 0; outage++) {
    const unavailableBefore = [...run.unavailable];
    await pg.stop();
    // docs/contract.md §11: NOT_SERVING within 5 s; the margin covers polling on a loaded machine.
    await await_(`outage ${outage}: health NOT_SERVING`, () => healthSeen.statuses.at(-1) === "NOT_SERVING", 8_000);
    await await_(`outage ${outage}: every client answered UNAVAILABLE`, () => run.unavailable.every((n, c) => n > unavailableBefore[c]), 10_000);
    // A sustained outage: clients and reconnecting watchers keep retrying into it for a while.
    await sleep(1000);
    await pg.start();
    await await_(`outage ${outage}: health SERVING again`, () => healthSeen.statuses.at(-1) === "SERVING", 20_000);
    await await_(`outage ${outage}: every client completing lifecycles again`, doneAfter([...run.lifecycles]), 20_000);
  }
  run.stopping = true;
  await Promise.all(loops);
  const followersDone = Promise.all(run.followers).then(() => true);
  if (!(await Promise.race([followersDone, sleep(30_000).then(() => false)]))) {
    run.violations.push("some watchers did not reach their job's COMPLETED event within 30 s of the load's end");
  }
  await healthSeen.stop();

  // Health told the story of each outage, in order.
  const expectedHealth = ["SERVING", ...range(1, OUTAGES).flatMap(() => ["NOT_SERVING", "SERVING"])];
  if (healthSeen.statuses.join() !== expectedHealth.join()) {
    run.violations.push(`health went ${healthSeen.statuses.join(" → ")}, expected ${expectedHealth.join(" → ")}`);
  }

  // Every answer is in the database; every log obeys docs/contract.md §4.
  const checked = await checkJobs(watcher, run.jobIds, run.replies, { heartbeats: false, complete: false });
  run.violations.push(...checked.violations);

  // A CreateJob retried after an unknown outcome made exactly one job.
  const requestIds = [...run.created.keys()];
  const perRequest = await sql<{ request_id: string; ids: string[] }>(
    pg.url,
    "select request_id::text, array_agg(id::text) as ids from jobs where request_id = any($1::uuid[]) group by request_id",
    [requestIds],
  );
  const stored = new Map(perRequest.map((r) => [r.request_id, r.ids]));
  for (const [requestId, answered] of run.created) {
    const ids = stored.get(requestId) ?? [];
    if (ids.length !== 1 || !answered.has(ids[0])) run.violations.push(`request_id ${requestId}: jobs ${ids.join(", ") || "none"}, answered ${[...answered].join(", ")}`);
  }

  // Each watcher saw its job's events exactly once, in order: the job_events table.
  const rows = await sql<{ job_id: string; revision: number; to_state: string }>(
    pg.url,
    "select job_id::text, revision, to_state from job_events where job_id = any($1::uuid[]) order by job_id, revision",
    [run.jobIds],
  );
  const logged = new Map<string, string[]>();
  for (const row of rows) logged.set(row.job_id, [...(logged.get(row.job_id) ?? []), `${row.revision}:JOB_STATE_${row.to_state}`]);
  let eventsWatched = 0;
  for (const jobId of run.jobIds) {
    const seen = (run.seen.get(jobId) ?? []).map(([revision, state]) => `${revision}:${state}`);
    eventsWatched += seen.length;
    const expected = logged.get(jobId) ?? [];
    if (seen.join() !== expected.join()) run.violations.push(`watcher of ${jobId} saw [${seen.join(" ")}], job_events has [${expected.join(" ")}]`);
  }

  // Nothing is left holding a pooled connection once the calls are done (docs/contract.md §10's pool metric says so)…
  const lentOut = async () => Number(/^jobs_db_pool_in_use (\d+)$/m.exec(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text())?.[1]);
  await await_("every pooled connection back in the pool once the load is done", async () => (await lentOut()) === 0, 10_000);
  const leaked = await lentOut();
  // …and the server still drains and stops (docs/contract.md §7), closing the pool.
  const stopped = await Promise.race([server.stop().then(() => true), sleep(20_000).then(() => false)]);
  if (!stopped) run.violations.push("the server did not finish draining within 20 s of being stopped");

  reportFigures("database outage", {
    outages: OUTAGES,
    clients: CLIENTS,
    calls: run.calls,
    faults: run.unavailable.reduce((a, b) => a + b, 0),
    commit_unknown: run.commitUnknown,
    watch_reconnects: run.watchReconnects,
    connections_leaked: leaked,
    jobs_checked: checked.jobs,
    events_checked: checked.events,
    events_watched: eventsWatched,
    violations: run.violations.length,
  });
  expect(run.violations.slice(0, 20)).toEqual([]);
}, 120_000);
