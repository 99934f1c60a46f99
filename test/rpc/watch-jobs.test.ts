// WatchJobs over a real socket (docs/contract.md §5): a snapshot of every matching
// unfinished job, the `synced` marker, then live events of jobs that match
// the filter before or after the change; filters; company scoping; and a
// reconnect that gets a fresh snapshot (how an executor learns of a
// cancellation requested while it was away).
//
// Each test works in a company of its own, so tests in this file never see
// each other's jobs. Events of different jobs may arrive in any order (only
// one job's events are ordered; events read from the feed together go out in
// job-id order), so "everything arrived, and nothing else" is checked by
// settling the stream: a matching sentinel change made after everything else,
// and once it arrives a second one, which can only arrive after everything
// committed before the first.

import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import type * as grpc from "@grpc/grpc-js";
import { jobsClient, type JobsClient, type Msg, reader } from "../support/grpc.js";
import { startServer, type TestServer } from "../support/harness.js";
import { cancelStream, drainToMarker, type Marker, pool, range, readToEnd, readUntil, type Reader } from "../support/watching.js";

let server: TestServer;
let client: JobsClient;
const streams: grpc.ClientReadableStream<Msg>[] = [];

// A stream of its own company, open for the whole file: it keeps the notifier reading, and
// settling it tells when the server has published everything committed so far.
const KEEPER_COMPANY = "1";
let keeper: Reader;

beforeAll(async () => {
  server = await startServer({ env: { WATCH_HEARTBEAT_SECONDS: "1" } });
  client = jobsClient(server.address, server.tokens.service);
  keeper = openWatchJobs({ company_id: KEEPER_COMPANY });
  await readUntil(keeper, (m) => m.kind === "synced");
});
afterAll(async () => {
  for (const s of streams) s.cancel();
  client?.close();
  await server?.stop();
});

let lastCompany = 1000;
const newCompany = () => String(++lastCompany);

async function createJob(companyId: string, type = "JOB_TYPE_FORECAST"): Promise<Msg> {
  const input = type === "JOB_TYPE_FORECAST" ? { forecast: { nql: "n" } } : { other: { fields: {} } };
  return (await client.call("CreateJob", { type, company_id: companyId, input })).job;
}
const run = (jobId: string, executorId = "ex-1") => client.call("RunJob", { job_id: jobId, executor_id: executorId });
const complete = (jobId: string) => client.call("CompleteJob", { job_id: jobId, result: { forecast: { cost: "1", rows: "1" } } });
const fail = (jobId: string) => client.call("FailJob", { job_id: jobId, message: "boom" });
const requestCancel = (jobId: string) => client.call("RequestJobCancellation", { job_id: jobId, reason: "stop" });
const cancel = (jobId: string) => client.call("CancelJob", { job_id: jobId });

function openWatchJobs(filter: Msg, token?: string | null): Reader {
  const stream = client.stream("WatchJobs", filter, token);
  streams.push(stream);
  return reader(stream);
}

/**
 * Opens WatchJobs once the server has published every event committed so
 * far. Otherwise an event committed just before the stream opened, of a job
 * that finished (so is not in the snapshot), may still be on its way through
 * the notifier and arrive as the stream's first live event: harmless, but it
 * would make "exactly these events" unassertable.
 */
async function watchJobs(filter: Msg, token?: string | null): Promise<Reader> {
  await settle(keeper, KEEPER_COMPANY);
  return openWatchJobs(filter, token);
}

/** One job of `companyId` in each state: RUNNING and PENDING_CANCELLATION ones were run, the others not. */
async function oneInEachState(companyId: string): Promise<Record<"pending" | "running" | "cancelling" | "completed" | "failed" | "cancelled", Msg>> {
  const pending = await createJob(companyId);
  const running = await createJob(companyId);
  await run(running.id);
  const cancelling = await createJob(companyId);
  await run(cancelling.id);
  await requestCancel(cancelling.id);
  const completed = await createJob(companyId);
  await complete(completed.id);
  const failed = await createJob(companyId);
  await fail(failed.id);
  const cancelled = await createJob(companyId);
  await requestCancel(cancelled.id);
  await cancel(cancelled.id);
  return { pending, running, cancelling, completed, failed, cancelled };
}

/** Reads up to and including `synced`; returns the snapshot jobs. Fails on anything else before it. */
async function snapshotOf(r: Reader): Promise<Msg[]> {
  const messages = await readUntil(r, (m) => m.kind === "synced");
  const before = messages.slice(0, -1);
  expect(before.map((m) => m.kind).filter((k) => k !== "snapshot")).toEqual([]);
  return before.map((m) => m.snapshot);
}

const key = (e: Msg) => `${e.job_id}:${e.revision}`;

/** A matching change made after everything else: a new job, run by `executorId`. Its run is revision 2. */
async function sentinelJob(companyId: string, executorId: string): Promise<Marker> {
  const job = await createJob(companyId);
  await run(job.id, executorId);
  return { jobId: job.id, revision: "2" };
}

/**
 * Reads the stream until it has delivered every event committed so far
 * (see the top of the file); returns them (sentinels left out) and the
 * messages of other kinds. The sentinels must match the stream's filter.
 */
async function settle(r: Reader, companyId: string, executorId = "ex-1"): Promise<{ events: Msg[]; others: Msg[] }> {
  const [messages] = await drainToMarker([r], () => sentinelJob(companyId, executorId));
  return {
    events: messages.filter((m) => m.kind === "event").map((m) => m.event),
    others: messages.filter((m) => m.kind !== "event"),
  };
}

/** settle(), as "job:revision" keys, sorted; fails on anything but events and heartbeats. */
async function settledKeys(r: Reader, companyId: string, executorId?: string): Promise<string[]> {
  const { events, others } = await settle(r, companyId, executorId);
  expect(others).toEqual([]);
  return events.map(key).sort();
}

test("snapshot of every matching unfinished job, then synced, then live events including CREATED", async () => {
  const company = newCompany();
  const { pending, running, cancelling } = await oneInEachState(company);
  const elsewhere = await createJob(newCompany());

  const r = await watchJobs({ company_id: company });
  const snapshot = await snapshotOf(r);
  expect(snapshot.map((j) => j.id).sort()).toEqual([pending.id, running.id, cancelling.id].sort());
  for (const job of snapshot) {
    expect(job).toEqual((await client.call("GetJob", { job_id: job.id })).job);
  }
  expect(snapshot.map((j) => j.id)).not.toContain(elsewhere.id);

  const fresh = await createJob(company);
  await run(pending.id, "ex-2");
  await complete(running.id);
  const { events, others } = await settle(r, company);
  expect(others).toEqual([]);
  // One event per change, nothing else; events of different jobs may come in any order.
  expect(events.map(key).sort()).toEqual([`${fresh.id}:1`, `${pending.id}:2`, `${running.id}:3`].sort());
  const byJob = new Map(events.map((e) => [e.job_id, e]));
  expect(byJob.get(fresh.id)).toMatchObject({ type: "JOB_EVENT_TYPE_CREATED", revision: "1", from_state: "JOB_STATE_UNSPECIFIED" });
  expect(byJob.get(pending.id)).toMatchObject({ type: "JOB_EVENT_TYPE_STARTED", revision: "2", job: { executor_id: "ex-2" } });
  expect(byJob.get(running.id)).toMatchObject({ type: "JOB_EVENT_TYPE_COMPLETED", revision: "3" });
});

test("an idle WatchJobs stream gets heartbeats and stays open", async () => {
  const company = newCompany();
  const r = await watchJobs({ company_id: company });
  expect(await snapshotOf(r)).toEqual([]);
  const idle = await r.next();
  expect(idle?.kind).toBe("heartbeat");
  const job = await createJob(company);
  const next = await readUntil(r, (m) => m.kind === "event");
  expect(next.at(-1)?.event).toMatchObject({ job_id: job.id, type: "JOB_EVENT_TYPE_CREATED" });
});

describe("filters", () => {
  test("executor_id: only jobs that executor holds before or after the change", async () => {
    const company = newCompany();
    const mineEarlier = await createJob(company);
    await run(mineEarlier.id, "ex-A");
    const theirsEarlier = await createJob(company);
    await run(theirsEarlier.id, "ex-B");

    const r = await watchJobs({ company_id: company, executor_id: "ex-A" });
    expect((await snapshotOf(r)).map((j) => j.id)).toEqual([mineEarlier.id]);

    const mine = await createJob(company);
    const theirs = await createJob(company);
    await run(mine.id, "ex-A");
    await run(theirs.id, "ex-B");
    await complete(mine.id);
    await complete(theirs.id);
    await fail(mineEarlier.id);
    await fail(theirsEarlier.id);
    // CREATED events have no executor yet; ex-B's jobs never match.
    expect(await settledKeys(r, company, "ex-A")).toEqual([`${mine.id}:2`, `${mine.id}:3`, `${mineEarlier.id}:3`].sort());
  });

  test("states: a job is reported entering and leaving the set (matched before the change)", async () => {
    const company = newCompany();
    const alreadyRunning = await createJob(company);
    await run(alreadyRunning.id);
    const alreadyPending = await createJob(company);

    const r = await watchJobs({ company_id: company, states: ["JOB_STATE_RUNNING"] });
    expect((await snapshotOf(r)).map((j) => j.id)).toEqual([alreadyRunning.id]);

    const completes = await createJob(company); // PENDING: not in the set
    await run(completes.id); // enters
    await complete(completes.id); // leaves: RUNNING before the change
    const neverRuns = await createJob(company);
    await requestCancel(neverRuns.id);
    await cancel(neverRuns.id);
    const cancelledWhileRunning = await createJob(company);
    await run(cancelledWhileRunning.id); // enters
    await requestCancel(cancelledWhileRunning.id); // leaves
    await cancel(cancelledWhileRunning.id); // PENDING_CANCELLATION → CANCELLED: never RUNNING
    await fail(alreadyRunning.id); // leaves
    await requestCancel(alreadyPending.id); // never RUNNING
    expect(await settledKeys(r, company)).toEqual(
      [
        `${completes.id}:2`,
        `${completes.id}:3`,
        `${cancelledWhileRunning.id}:2`,
        `${cancelledWhileRunning.id}:3`,
        `${alreadyRunning.id}:3`,
      ].sort(),
    );
  });

  test("states with several values", async () => {
    const company = newCompany();
    const r = await watchJobs({ company_id: company, states: ["JOB_STATE_PENDING", "JOB_STATE_PENDING_CANCELLATION"] });
    expect(await snapshotOf(r)).toEqual([]);
    const a = await createJob(company); // CREATED into PENDING: matches
    await run(a.id); // PENDING before: matches
    await complete(a.id); // RUNNING → COMPLETED: no
    const b = await createJob(company); // matches
    await requestCancel(b.id); // PENDING → PENDING_CANCELLATION: matches
    await cancel(b.id); // PENDING_CANCELLATION before: matches
    expect(await settledKeys(r, company)).toEqual([`${a.id}:1`, `${a.id}:2`, `${b.id}:1`, `${b.id}:2`, `${b.id}:3`].sort());
  });

  test("types: only jobs of the listed types", async () => {
    const company = newCompany();
    const r = await watchJobs({ company_id: company, types: ["JOB_TYPE_FORECAST"] });
    expect(await snapshotOf(r)).toEqual([]);
    const health = await createJob(company, "JOB_TYPE_HEALTH_CHECK");
    const forecast = await createJob(company, "JOB_TYPE_FORECAST");
    await run(health.id);
    await run(forecast.id);
    await fail(health.id);
    await fail(forecast.id);
    expect(await settledKeys(r, company)).toEqual([`${forecast.id}:1`, `${forecast.id}:2`, `${forecast.id}:3`].sort());
  });

  test("company_id: only that company's jobs, in the snapshot and live", async () => {
    const company = newCompany();
    const other = newCompany();
    const ours = await createJob(company);
    const theirs = await createJob(other);
    const r = await watchJobs({ company_id: company });
    expect((await snapshotOf(r)).map((j) => j.id)).toEqual([ours.id]);
    await run(theirs.id);
    await run(ours.id);
    await createJob(other);
    expect(await settledKeys(r, company)).toEqual([`${ours.id}:2`]);
  });
});

describe("company scoping", () => {
  test("an api_user sees only its own company's jobs and events", async () => {
    const mine = await createJob("100");
    const theirs = await createJob("200");
    const r = await watchJobs({}, server.tokens.companyA);
    const snapshot = await snapshotOf(r);
    expect(snapshot.map((j) => j.id)).toContain(mine.id);
    expect(snapshot.map((j) => j.id)).not.toContain(theirs.id);
    expect(new Set(snapshot.map((j) => j.company_id))).toEqual(new Set(["100"]));

    await run(theirs.id);
    await complete(theirs.id);
    await createJob("200");
    await run(mine.id);
    const { events, others } = await settle(r, "100");
    expect(others).toEqual([]);
    expect(new Set(events.map((e) => e.job.company_id))).toEqual(new Set(["100"]));
    expect(events.map(key)).toContain(`${mine.id}:2`);
  });

  test("an api_user naming its own company is fine; naming another is PERMISSION_DENIED", async () => {
    const own = await watchJobs({ company_id: "100" }, server.tokens.companyA);
    await snapshotOf(own);
    const end = await readToEnd(await watchJobs({ company_id: "200" }, server.tokens.companyA));
    expect(end.messages).toEqual([]);
    expect(end.error?.code).toBe(7); // PERMISSION_DENIED
    expect(end.error?.errorInfo?.domain).toBe("jobs.v1");
  });

  test("a read-only token can watch; a write-only token cannot", async () => {
    const company = newCompany();
    const r = await watchJobs({ company_id: company }, server.tokens.reader);
    expect(await snapshotOf(r)).toEqual([]);
    const end = await readToEnd(await watchJobs({ company_id: company }, server.tokens.writer));
    expect(end.error?.code).toBe(7);
  });
});

test("a reconnecting executor gets a fresh snapshot that includes a cancellation requested while it was away", async () => {
  const company = newCompany();
  const job = await createJob(company);
  await run(job.id, "ex-R");
  const filter = { company_id: company, executor_id: "ex-R" };

  const first = client.stream("WatchJobs", filter);
  streams.push(first);
  const firstSnapshot = await snapshotOf(reader(first));
  expect(firstSnapshot.map((j) => [j.id, j.state])).toEqual([[job.id, "JOB_STATE_RUNNING"]]);
  await cancelStream(first);

  await requestCancel(job.id);

  const again = await watchJobs(filter);
  const snapshot = await snapshotOf(again);
  expect(snapshot.map((j) => [j.id, j.state, j.revision, j.cancellation_reason])).toEqual([
    [job.id, "JOB_STATE_PENDING_CANCELLATION", "3", "stop"],
  ]);
  // What follows is live: the executor acknowledges, and sees the job leave its set.
  await cancel(job.id);
  const next = await readUntil(again, (m) => m.kind === "event");
  expect(next.at(-1)?.event).toMatchObject({ job_id: job.id, revision: "4", to_state: "JOB_STATE_CANCELLED" });
  // A later reconnect no longer lists the finished job.
  expect(await snapshotOf(await watchJobs(filter))).toEqual([]);
});

test("opened while transitions race: exactly the unfinished jobs in the snapshot, then every later revision of each, once, in order", async () => {
  const company = newCompany();
  // Jobs settled before the stream opens and left alone until its snapshot is out: what the
  // stream shows of each is known exactly.
  const { pending, running, cancelling, completed, failed, cancelled } = await oneInEachState(company);
  const failing = await createJob(company);
  await run(failing.id);
  const finished = [completed, failed, cancelled];
  // Jobs whose transitions race the stream's opening.
  const racers = await pool(range(1, 30), 10, () => createJob(company));
  let done = 0;
  const racing = pool(racers, 8, async (job, i) => {
    await run(job.id, `ex-${i % 3}`);
    if (i % 4 === 0) await fail(job.id);
    else if (i % 4 === 1) await requestCancel(job.id);
    else await complete(job.id);
    done++;
  });
  while (done < 8) await new Promise((r) => setTimeout(r, 2));
  const r = await watchJobs({ company_id: company });
  const snapshot = await snapshotOf(r);
  // After the snapshot: the settled unfinished jobs move on (the RUNNING one completes), and new jobs come.
  await run(pending.id, "ex-late");
  await complete(running.id);
  await fail(failing.id);
  await cancel(cancelling.id);
  const createdAfter = await pool(range(1, 5), 5, () => createJob(company));
  await racing;
  const { events } = await settle(r, company);

  const seen = new Map<string, number[]>();
  for (const job of snapshot) seen.set(job.id, [Number(job.revision)]);
  for (const event of events) seen.set(event.job_id, [...(seen.get(event.job_id) ?? []), Number(event.revision)]);
  const inSnapshot = new Set(snapshot.map((job) => job.id));
  const shown = (job: Msg) => ({ job: job.id, inSnapshot: inSnapshot.has(job.id), revisions: seen.get(job.id) ?? [] });

  // Nothing of another job.
  const ours = new Set([pending, running, failing, cancelling, ...finished, ...racers, ...createdAfter].map((job) => job.id));
  expect([...seen.keys()].filter((id) => !ours.has(id))).toEqual([]);
  // The settled jobs, exactly: each unfinished one from its snapshot on, no finished one at all.
  expect([pending, running, failing, cancelling, ...finished].map(shown)).toEqual([
    { job: pending.id, inSnapshot: true, revisions: [1, 2] },
    { job: running.id, inSnapshot: true, revisions: [2, 3] },
    { job: failing.id, inSnapshot: true, revisions: [2, 3] },
    { job: cancelling.id, inSnapshot: true, revisions: [3, 4] },
    ...finished.map((job) => ({ job: job.id, inSnapshot: false, revisions: [] })),
  ]);
  // Jobs created after the snapshot: their whole history, live.
  expect(createdAfter.map(shown)).toEqual(createdAfter.map((job) => ({ job: job.id, inSnapshot: false, revisions: [1] })));
  // The racers: whatever the stream first knew of one, it then saw every later revision once, in
  // order; and one still unfinished at the end cannot have been missed.
  for (const job of racers) {
    const { job: now } = await client.call("GetJob", { job_id: job.id });
    const revisions = seen.get(job.id);
    if (revisions) expect({ job: job.id, revisions }).toEqual({ job: job.id, revisions: range(revisions[0], Number(now.revision)) });
    else expect({ job: job.id, state: now.state }).toEqual({ job: job.id, state: expect.stringMatching(/^JOB_STATE_(COMPLETED|FAILED)$/) });
  }
});
