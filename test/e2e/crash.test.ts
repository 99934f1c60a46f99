// A replica killed mid-load (docs/contract.md §1, §5, §11): replica A (a `jobsctl
// serve` process) and replica B (this process) share one database; many
// clients send a generated mix of transitions and heartbeats through both,
// and A gets SIGKILL in the middle of it, with calls in flight. Its clients
// then fail over to B, as clients of a dead replica do.
//
// Afterwards: every answer any client got (A's before the kill among them)
// is in the database — a changed=true answer as exactly its event, a no-op's
// revision as one the log has; every job's log and row obey docs/contract.md §4, with the
// row equal to the last event (nothing half-applied); every job still takes a
// change through B (no lock left behind); and a WatchJobs watcher on B saw
// every event of every job, in order, with no gap and no duplicate,
// including the ones A committed just before it died.
//
// JOBS_SEED replays a run (the calls and the moment of the kill); JOBS_SOAK
// scales the number of runs, each with a fresh replica A to kill.

import { isDeepStrictEqual } from "node:util";
import { afterAll, beforeAll, expect, test } from "@jest/globals";
import fc from "fast-check";
import pg from "pg";
import { createJob, getJob, Status } from "../rpc/jobs-fixture.js";
import { attemptOf, type Outcome, type PlannedCall, sendCalls, storm } from "../support/call-mix.js";
import { scaled, soakFactor } from "../support/figures.js";
import { jobsClient, type JobsClient, type Msg, reader } from "../support/grpc.js";
import { sql, startServer, type TestServer } from "../support/harness.js";
import { callOfEvent, checkJobs, type Reply, refusalViolation, type TransitionCall, unclaimedEvents } from "../support/invariants.js";
import { childrenOf, type ServerProcess, spawnServer } from "../support/processes.js";
import { type ProofFigures, proveRuns, runSeed } from "../support/proof.js";
import { cancelStream, eventually, range, readUntil } from "../support/watching.js";

const JOBS = 8;
const CALLS_PER_RUN = 1000;
const RUNS = scaled(1);
const CLIENTS = 16;
const IN_FLIGHT = 32;

const ENV = {
  REAPER_INTERVAL_SECONDS: "1",
  REAPER_GRACE_SECONDS: "0",
  DB_ACQUIRE_TIMEOUT_MS: "15000",
  LOG_LEVEL: "warn",
};

let b: TestServer;
let viaB: JobsClient[];
const spawned: ServerProcess[] = [];

beforeAll(async () => {
  // The watcher must keep every event: a cut-off WatchJobs resumes from a snapshot, not from a revision.
  b = await startServer({ env: { ...ENV, WATCH_BUFFER_EVENTS: "1000000" } });
  viaB = range(1, CLIENTS / 2).map(() => jobsClient(b.address, b.tokens.service, { "grpc.use_local_subchannel_pool": 1 }));
}, 60_000);
afterAll(async () => {
  for (const client of viaB ?? []) client.close();
  await Promise.all(spawned.map((p) => p.stop()));
  await b?.stop();
});

test(`replica A killed (SIGKILL) during ${CALLS_PER_RUN} calls on ${JOBS} jobs loses no acknowledged change, half-applies none, and B's watcher sees every event in order`, async () => {
  const figures = {
    seed: runSeed(),
    runs: 0,
    calls: 0,
    acknowledged_before_kill: 0,
    acknowledged: 0,
    failed_over: 0,
    unknown_outcome: 0,
    unknown_but_applied: 0,
    faults_injected: 0,
    jobs: 0,
    events: 0,
    watched_events: 0,
    violations: 0,
  };
  // Each run: the calls, and after how many of A's answers it is killed.
  const run = fc.tuple(storm(JOBS, CLIENTS, CALLS_PER_RUN), fc.integer({ min: 60, max: 200 }));
  await proveRuns("crash (SIGKILL of 1 of 2 replicas)", run, RUNS, figures, ([{ calls }, killAfter]) => crashRun(calls, killAfter, figures));
  expect(figures.violations).toBe(0);
  expect(figures.faults_injected).toBe(RUNS);
  // The kill really fell mid-load: A had answered, and its clients still had calls to make.
  expect(figures.acknowledged_before_kill).toBeGreaterThan(0);
  expect(figures.failed_over).toBeGreaterThan(0);
}, 90_000 * soakFactor());

async function crashRun(calls: readonly PlannedCall[], killAfter: number, figures: ProofFigures): Promise<string[]> {
  const violations: string[] = [];
  const a = await spawnServer({ databaseUrl: b.databaseUrl, env: ENV });
  spawned.push(a);
  const viaA = range(1, CLIENTS / 2).map(() => jobsClient(a.address, b.tokens.service, { "grpc.use_local_subchannel_pool": 1 }));
  const onA = new Set(viaA);
  const company = String(300 + figures.runs);
  // Watching from before the first job exists: every event of these jobs, CREATED included, must reach it.
  const watch = viaB[0].stream("WatchJobs", { company_id: company });
  const watchReader = reader(watch);
  await readUntil(watchReader, (m) => m.kind === "synced");
  const watched = new Map<string, Msg[]>();
  let watchEnded: string | null = null;
  const watching = (async () => {
    for (;;) {
      const m = await watchReader.next(60_000);
      if (m === null) throw new Error("WatchJobs ended OK; it never ends by itself");
      if (m.kind === "event") watched.set(m.event.job_id, [...(watched.get(m.event.job_id) ?? []), m.event]);
    }
  })().catch((error: Error) => {
    watchEnded = error.message;
  });

  try {
    // A had no child process to orphan: it runs on the shared DATABASE_URL, with no embedded PostgreSQL of its own.
    const children = childrenOf(a.child.pid as number);
    if (children.length > 0) violations.push(`replica A has child processes ${children.join(", ")} that SIGKILL would leave behind`);

    const jobs = await Promise.all(range(1, JOBS).map((i) => createJob(i % 2 === 0 ? viaA[0] : viaB[0], { company_id: company })));
    let killed = false;
    let ackedViaA = 0;
    /** Calls A had not answered when it died: their outcome is unknown (docs/contract.md §11); whatever they did is checked with the rest. */
    const unanswered = new Set<Outcome>();
    // Even clients are A's until it dies, then fail over to B; odd ones are B's.
    const clientFor = (call: { client: number }) => {
      const half = Math.floor(call.client / 2);
      return call.client % 2 === 0 && !killed ? viaA[half] : viaB[half];
    };
    const outcomes = await sendCalls(calls, jobs, clientFor, {
      concurrency: IN_FLIGHT,
      onOutcome: (o) => {
        if (!onA.has(o.client)) return;
        if (killed) {
          // A refusal is an answer A gave before dying; anything else is the connection going down.
          if (o.error && o.error.code !== Status.FAILED_PRECONDITION) unanswered.add(o);
        } else if (o.reply && ++ackedViaA >= killAfter) {
          killed = true;
          a.child.kill("SIGKILL");
        }
      },
    });
    if (!killed) throw new Error(`the load ended after ${ackedViaA} answers from A, before the kill point (${killAfter})`);
    const exit = await a.exited;
    if (exit.signal !== "SIGKILL") violations.push(`replica A exited with ${JSON.stringify(exit)}, not by the SIGKILL`);
    figures.faults_injected++;

    // Every job still takes a change through B, and ends (no lease left for the reaper to move it later):
    // no row lock or open transaction of A's outlived it.
    const sweep: Reply[] = [];
    for (const job of jobs) {
      for (const call of ["RequestJobCancellation", "CancelJob"] as TransitionCall[]) {
        const answer = await viaB[0].call(call, { job_id: job.id }).catch((error: Error) => {
          violations.push(`job ${job.id}: ${call} through B after the kill failed: ${error.message}`);
          return null;
        });
        if (answer) sweep.push({ jobId: job.id, call, changed: answer.changed, job: answer.job });
      }
    }

    for (const o of outcomes) {
      if (!o.error || unanswered.has(o)) continue;
      const refused = refusalViolation(o.jobId, o.call.kind, attemptOf(o), o.error);
      if (refused) violations.push(refused);
    }

    const replies = [...outcomes.flatMap((o) => (o.reply ? [o.reply] : [])), ...sweep];
    const checked = await checkJobs(viaB[0], jobs.map((j) => j.id), replies, { heartbeats: true, complete: false });
    violations.push(...checked.violations);

    // Every change is an answer's, the reaper's, or one of the calls A never answered: nothing else moved a job.
    for (const [id, log] of checked.logs) {
      const candidates = [...unanswered].filter((o) => o.jobId === id);
      for (const event of unclaimedEvents(log, replies.filter((r) => r.jobId === id))) {
        const i = candidates.findIndex((o) => o.call.kind === callOfEvent(event.type));
        if (i < 0) violations.push(`job ${id} revision ${event.revision} (${event.type}): no answer, reaper or unanswered call accounts for it`);
        else {
          candidates.splice(i, 1);
          figures.unknown_but_applied++;
        }
      }
    }

    // The same, read straight from the table: each change A acknowledged is a row of job_events.
    const stored = await sql<{ key: string }>(
      b.databaseUrl,
      "select job_id || ':' || revision || ':' || to_state as key from job_events where job_id = any($1::uuid[])",
      [jobs.map((j) => j.id)],
    );
    const keys = new Set(stored.map((row) => row.key));
    const ackedByA = outcomes.filter((o) => o.reply && onA.has(o.client));
    for (const o of ackedByA) {
      const key = `${o.jobId}:${o.reply?.job.revision}:${o.reply?.job.state.replace(/^JOB_STATE_/, "")}`;
      if (o.reply?.changed && !keys.has(key)) violations.push(`A acknowledged ${o.call.kind} → ${key}, which job_events lacks`);
    }

    // B's watcher: each job's whole log, in order, once — what A committed before dying too.
    const expected = new Map([...checked.logs].map(([id, log]) => [id, log.length]));
    await eventually(
      () => watchEnded !== null || [...expected].every(([id, n]) => (watched.get(id)?.length ?? 0) >= n),
      "B's watcher to receive every event",
      30_000,
    ).catch(() => undefined);
    // Then nothing more may come. A's events reach B only through its notifier's feed reads: two more of them
    // publish whatever of A's was still on its way (a duplicate included), and a marker job made through B
    // after them reaches the stream after all of it.
    const reads = b.app.notifier.stats.feedReads;
    await eventually(() => b.app.notifier.stats.feedReads >= reads + 2, "B's notifier to read the feed twice more", 15_000);
    const marker = await createJob(viaB[0], { company_id: company });
    await eventually(() => watchEnded !== null || watched.has(marker.id), "the marker job to reach B's watcher", 15_000).catch(() => undefined);
    if (watchEnded) violations.push(`B's WatchJobs stream failed: ${watchEnded}`);
    else if (!watched.has(marker.id)) violations.push("the marker job made through B never reached B's watcher");
    for (const id of watched.keys()) {
      if (id !== marker.id && !expected.has(id)) violations.push(`B's watcher saw events of job ${id}, which is not one of this run's`);
    }
    for (const [id, log] of checked.logs) {
      const seen = watched.get(id) ?? [];
      const revisions = seen.map((e) => Number(e.revision));
      if (revisions.join(",") !== range(1, log.length).join(",")) {
        violations.push(`job ${id}: B's watcher saw revisions [${revisions.join(",")}], the log has 1..${log.length}`);
      } else {
        seen.forEach((event, i) => {
          if (!isDeepStrictEqual(event, log[i])) violations.push(`job ${id}: B's watcher saw revision ${i + 1} differently from the log`);
        });
      }
    }

    figures.calls += outcomes.length;
    figures.acknowledged_before_kill += ackedViaA;
    figures.unknown_outcome += unanswered.size;
    figures.failed_over += outcomes.filter((o) => o.call.client % 2 === 0 && !onA.has(o.client)).length;
    figures.acknowledged += replies.length;
    figures.jobs += checked.jobs;
    figures.events += checked.events;
    figures.watched_events += [...watched.values()].reduce((sum, events) => sum + events.length, 0);
    return violations;
  } finally {
    for (const client of viaA) client.close();
    await cancelStream(watch);
    await watching;
    await a.stop();
  }
}

// The deterministic crash: replica A is killed by its client the moment the client receives an answer,
// while other calls are held inside A's write transactions. A trigger (installed here, for a range of
// companies no other test uses) makes every write to a "held" job wait on an advisory lock this test
// holds, after the write statement has run and before COMMIT can be sent. So at the kill, each held call
// is certainly in flight in a batch, past its decision, with its row written inside a transaction that
// will never commit; and the call that triggered the kill was answered. Then the lock is released.
// Afterwards: every answer the client got is in the database (an answer given before COMMIT's reply
// would be missing now), every held job is exactly as it was (nothing of the unanswered batch is in),
// and each job's log and row obey the transition rules.
const KILL_ROUNDS = 3;
const HELD_LOCK = 0x6b696c6c; // "kill"
const HELD_COMPANIES = { from: 9001, to: 9099 };

test(`replica A killed (SIGKILL) the moment it answers, with calls held inside its write transactions (${KILL_ROUNDS} rounds): every answer is in the database, nothing held is half-applied`, async () => {
  await sql(
    b.databaseUrl,
    `create function hold_write() returns trigger language plpgsql as $$
       begin perform pg_advisory_xact_lock_shared(${HELD_LOCK}); return null; end $$;
     create trigger hold_write after update on jobs for each row
       when (new.company_id between ${HELD_COMPANIES.from} and ${HELD_COMPANIES.to}) execute function hold_write();`,
  );
  try {
    for (let round = 1; round <= KILL_ROUNDS; round++) {
      const violations = await killAtAnswer(String(HELD_COMPANIES.from + round), String(HELD_COMPANIES.to + round));
      expect({ round, violations }).toEqual({ round, violations: [] });
    }
  } finally {
    await sql(b.databaseUrl, "drop trigger hold_write on jobs; drop function hold_write();");
  }
}, 60_000);

async function killAtAnswer(heldCompany: string, freeCompany: string): Promise<string[]> {
  const violations: string[] = [];
  const viaB = jobsClient(b.address, b.tokens.service);
  const a = await spawnServer({ databaseUrl: b.databaseUrl, env: { LOG_LEVEL: "warn", WRITE_BATCHES_IN_FLIGHT: "8", DB_ACQUIRE_TIMEOUT_MS: "15000" } });
  spawned.push(a);
  const viaA = jobsClient(a.address, b.tokens.service);
  const holder = new pg.Client({ connectionString: b.databaseUrl });
  await holder.connect();
  let heldPids: number[] = [];
  try {
    // Held calls: two claims, a report and a heartbeat, on jobs of the held company (made through B, so no trigger yet holds them).
    const pending = await Promise.all(range(1, 2).map(() => createJob(viaB, { company_id: heldCompany })));
    const running = await Promise.all(range(1, 2).map(() => createJob(viaB, { company_id: heldCompany })));
    for (const job of running) await viaB.call("RunJob", { job_id: job.id, executor_id: "ex", lease_seconds: "3600" });
    const held: Array<{ jobId: string; call: TransitionCall | "HeartbeatJob"; request: Msg }> = [
      ...pending.map((job, i) => ({ jobId: job.id, call: "RunJob" as const, request: { job_id: job.id, executor_id: `held-${i}`, lease_seconds: "3600" } })),
      { jobId: running[0].id, call: "FailJob", request: { job_id: running[0].id, message: "held", attempt: "1" } },
      { jobId: running[1].id, call: "HeartbeatJob", request: { job_id: running[1].id, executor_id: "ex", attempt: "1" } },
    ];
    const free = await Promise.all(range(1, 6).map(() => createJob(viaB, { company_id: freeCompany })));
    const before = new Map(await Promise.all(held.map(async (h) => [h.jobId, await getJob(viaB, h.jobId)] as const)));
    await holder.query("select pg_advisory_lock($1)", [HELD_LOCK]);

    let killedAt: string | null = null;
    const replies: Reply[] = [];
    const answered = new Set<string>();
    const send = (jobId: string, call: TransitionCall | "HeartbeatJob", request: Msg) =>
      viaA.call(call, request).then(
        (answer) => {
          if (killedAt === null) {
            killedAt = `${call} on ${jobId}`;
            a.child.kill("SIGKILL");
          }
          answered.add(jobId);
          replies.push({ jobId, call, changed: call === "HeartbeatJob" ? false : answer.changed, job: answer.job });
        },
        () => undefined, // unanswered: the outcome is unknown, and checked with the rest
      );

    const heldCalls = held.map((h) => send(h.jobId, h.call, h.request));
    // Every held job is locked by one of A's write transactions, and every such transaction (it has written,
    // so it has an id) waits on the held lock: each held call is past its decision, its row written, in a batch.
    const heldState = async () => {
      const unlocked = await sql(b.databaseUrl, "select id from jobs where id = any($1::uuid[]) for update skip locked", [held.map((h) => h.jobId)]);
      const writers = await sql<{ pid: number; wait_event: string | null }>(
        b.databaseUrl,
        "select pid, wait_event from pg_stat_activity where datname = current_database() and application_name = 'jobs' and backend_xid is not null",
      );
      return { unlocked: unlocked.length, writers: writers.length, heldPids: writers.filter((w) => w.wait_event === "advisory").map((w) => w.pid) };
    };
    await eventually(async () => {
      if (killedAt !== null) return true;
      const state = await heldState();
      heldPids = state.heldPids;
      return state.unlocked === 0 && heldPids.length > 0 && heldPids.length === state.writers;
    }, "A's write transactions to hold every held job, each waiting on the held lock", 15_000);

    // Calls on other jobs: their batches commit, and the first answer kills A.
    const freeCalls = free.map((job, i) => send(job.id, "RunJob", { job_id: job.id, executor_id: `free-${i}`, lease_seconds: "3600" }));
    const exit = await a.exited;
    if (exit.signal !== "SIGKILL") violations.push(`A exited with ${JSON.stringify(exit)}, not by the SIGKILL`);
    await Promise.all([...heldCalls, ...freeCalls]);
    if (killedAt === null) violations.push("A died without answering a call");

    // Let the held transactions go on: with their client gone, they must end without committing.
    await holder.query("select pg_advisory_unlock($1)", [HELD_LOCK]);
    await eventually(
      async () => (await sql(b.databaseUrl, "select 1 from pg_stat_activity where pid = any($1::int[])", [heldPids])).length === 0,
      "the held transactions to end",
    );

    for (const h of held) {
      if (answered.has(h.jobId)) {
        violations.push(`job ${h.jobId}: ${h.call} was answered while its write waited inside a transaction that never committed`);
        continue;
      }
      const after = await getJob(viaB, h.jobId);
      if (!isDeepStrictEqual(after, before.get(h.jobId))) {
        violations.push(`job ${h.jobId}: ${h.call} was never answered, yet the job changed from revision ${before.get(h.jobId)?.revision} to ${after.revision} (${after.state})`);
      }
    }
    const jobIds = [...held.map((h) => h.jobId), ...free.map((job) => job.id)];
    violations.push(...(await checkJobs(viaB, jobIds, replies, { heartbeats: true, complete: false })).violations);
    // No lock or transaction of A's outlived it: every job takes a change through B.
    for (const jobId of jobIds) {
      await viaB.call("RequestJobCancellation", { job_id: jobId }).catch((error: Error) => violations.push(`job ${jobId}: RequestJobCancellation through B failed: ${error.message}`));
    }
    return violations;
  } finally {
    await holder.end().catch(() => undefined);
    viaA.close();
    viaB.close();
    await a.stop();
  }
}
