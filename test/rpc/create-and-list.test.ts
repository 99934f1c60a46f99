// CreateJob, GetJob, ListJobs and ListJobEvents over the wire: what a job
// looks like when it is born, idempotent create by request_id, paging that
// visits every job exactly once, every ListJobs filter, and the event log.

import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { jobsClient, type JobsClient, type Msg } from "../support/grpc.js";
import { startServer, type TestServer } from "../support/harness.js";
import { allEvents, createJob, FORECAST_RESULT, getJob, inParallel } from "./jobs-fixture.js";

let server: TestServer;
let client: JobsClient;

beforeAll(async () => {
  server = await startServer();
  client = jobsClient(server.address, server.tokens.service);
});
afterAll(async () => {
  client?.close();
  await server?.stop();
});

/** A Timestamp message as microseconds, for ordering. */
const micros = (ts: Msg): bigint => BigInt(ts.seconds) * 1_000_000n + BigInt(Math.floor(ts.nanos / 1000));

/** `count` FORECAST jobs in data plane `marker`, created a few at a time. */
async function createMany(count: number, marker: string): Promise<Msg[]> {
  return inParallel(
    Array.from({ length: count }, () => () => createJob(client, { data_plane_id: marker })),
    8,
  );
}

/** Every page of a listing; `sizes` gives the page size of each page in turn (cycling). */
async function listAll(request: Msg, sizes: number[]): Promise<{ jobs: Msg[]; pages: Msg[] }> {
  const pages: Msg[] = [];
  let page_token = "";
  do {
    const page = await client.call("ListJobs", { ...request, page_size: sizes[pages.length % sizes.length], page_token });
    pages.push(page);
    page_token = page.next_page_token;
    expect(pages.length).toBeLessThan(1000);
  } while (page_token !== "");
  return { jobs: pages.flatMap((p) => p.jobs), pages };
}

const ids = (jobs: Msg[]) => jobs.map((j) => j.id);

describe("CreateJob", () => {
  test("a FORECAST job round-trips every field and starts PENDING at revision 1", async () => {
    const request = {
      type: "JOB_TYPE_FORECAST",
      input: { forecast: { nql: "select revenue by month", compiled_sql: "SELECT 1" } },
      company_id: "4242",
      data_plane_id: "dp-eu-1",
      compute_pool_id: "pool-7",
      execution_cluster: "EXECUTION_CLUSTER_DEDICATED",
    };
    const { job } = await client.call("CreateJob", request);
    expect(job).toMatchObject({
      type: "JOB_TYPE_FORECAST",
      state: "JOB_STATE_PENDING",
      company_id: "4242",
      created_by: { type: "PRINCIPAL_TYPE_SERVICE", name: "test-service", company_id: "0", user_id: "0" },
      input: { kind: "forecast", forecast: { nql: "select revenue by month", compiled_sql: "SELECT 1" } },
      executor_id: "",
      attempt: "0",
      revision: "1",
      result: null,
      failures: [],
      cancellation_reason: "",
      data_plane_id: "dp-eu-1",
      compute_pool_id: "pool-7",
      execution_cluster: "EXECUTION_CLUSTER_DEDICATED",
      lease_expires_at: null,
      started_at: null,
      finished_at: null,
    });
    expect(job.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(job.created_at).not.toBeNull();
    expect(job.updated_at).toEqual(job.created_at);
    expect(await getJob(client, job.id)).toEqual(job);
  });

  test("a REFRESH_MATERIALIZED_VIEW job keeps its typed input", async () => {
    const input = { refresh_materialized_view: { nql: "view v", dataset_id: "9007199254740993", stats_enabled: true, compiled_sql: "SELECT 2" } };
    const { job } = await client.call("CreateJob", {
      type: "JOB_TYPE_REFRESH_MATERIALIZED_VIEW",
      company_id: "1",
      execution_cluster: "EXECUTION_CLUSTER_SHARED",
      input,
    });
    expect(job.input).toEqual({ kind: "refresh_materialized_view", ...input });
    expect(job.execution_cluster).toBe("EXECUTION_CLUSTER_SHARED");
    expect((await getJob(client, job.id)).input).toEqual(job.input);
  });

  test("another type keeps a free-form `other` Struct input, nested values and all", async () => {
    const other = {
      fields: {
        statement: { stringValue: "DELETE FROM t WHERE x = 1" },
        limit: { numberValue: 1.5 },
        dry_run: { boolValue: true },
        nothing: { nullValue: "NULL_VALUE" },
        options: { structValue: { fields: { retries: { numberValue: 3 } } } },
        tables: { listValue: { values: [{ stringValue: "a" }, { numberValue: 2 }] } },
      },
    };
    const { job } = await client.call("CreateJob", { type: "JOB_TYPE_DATASETS_EXECUTE_DML", company_id: "1", input: { other } });
    expect(job.type).toBe("JOB_TYPE_DATASETS_EXECUTE_DML");
    expect(job.input.kind).toBe("other");
    expect(job.input.other).toMatchObject(other);
    expect(Object.keys(job.input.other.fields).sort()).toEqual(Object.keys(other.fields).sort());
    expect((await getJob(client, job.id)).input).toEqual(job.input);
  });

  test("the input is optional", async () => {
    const { job } = await client.call("CreateJob", { type: "JOB_TYPE_HEALTH_CHECK", company_id: "1" });
    expect(job.input).toBeNull();
    expect(job.execution_cluster).toBe("EXECUTION_CLUSTER_UNSPECIFIED");
  });

  test("an API user's job belongs to the user's company and names the user as creator", async () => {
    const user = jobsClient(server.address, server.tokens.companyA);
    try {
      const { job } = await user.call("CreateJob", { type: "JOB_TYPE_MODEL_TRAINING_RUN" });
      expect(job.company_id).toBe("100");
      expect(job.created_by).toMatchObject({ type: "PRINCIPAL_TYPE_API_USER", company_id: "100", user_id: "1" });
      const named = (await user.call("CreateJob", { type: "JOB_TYPE_MODEL_TRAINING_RUN", company_id: "100" })).job;
      expect(named.company_id).toBe("100");
    } finally {
      user.close();
    }
  });

  test("the new job has exactly one CREATED event, from UNSPECIFIED to PENDING, by its creator", async () => {
    const job = await createJob(client);
    const events = await allEvents(client, job.id);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      job_id: job.id,
      revision: "1",
      type: "JOB_EVENT_TYPE_CREATED",
      from_state: "JOB_STATE_UNSPECIFIED",
      to_state: "JOB_STATE_PENDING",
      actor: { type: "PRINCIPAL_TYPE_SERVICE", name: "test-service" },
    });
    expect(events[0].occurred_at).toEqual(job.created_at);
    expect(events[0].job).toEqual(job);
  });
});

describe("idempotent CreateJob (request_id)", () => {
  test("the same principal and request_id get the same job back, whatever the rest of the request says", async () => {
    const marker = `idem-${randomUUID()}`;
    const request_id = randomUUID();
    const first = (await client.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "5", data_plane_id: marker, request_id })).job;
    const again = (await client.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "5", data_plane_id: marker, request_id })).job;
    expect(again).toEqual(first);

    // A different request under the same id: still the first job.
    const different = (
      await client.call("CreateJob", {
        type: "JOB_TYPE_HEALTH_CHECK",
        company_id: "6",
        data_plane_id: `${marker}-other`,
        input: { other: { fields: {} } },
        request_id,
      })
    ).job;
    expect(different).toEqual(first);

    // After the job moved on, the same id returns it as it is now.
    await client.call("RunJob", { job_id: first.id, executor_id: "executor-1" });
    await client.call("CompleteJob", { job_id: first.id, result: FORECAST_RESULT });
    const later = (await client.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "5", data_plane_id: marker, request_id })).job;
    expect(later).toEqual(await getJob(client, first.id));
    expect(later.state).toBe("JOB_STATE_COMPLETED");

    expect(ids((await client.call("ListJobs", { data_plane_id: marker })).jobs)).toEqual([first.id]);
    expect((await client.call("ListJobs", { data_plane_id: `${marker}-other` })).jobs).toEqual([]);
    expect(await allEvents(client, first.id)).toHaveLength(3);
  });

  test("the same principal through another token gets the same job", async () => {
    const request_id = randomUUID();
    const first = (await client.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "5", request_id })).job;
    const { secret } = await server.issueToken({ type: "service", name: "test-service" }, ["jobs:write"]);
    const other = jobsClient(server.address, secret);
    try {
      expect((await other.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "5", request_id })).job.id).toBe(first.id);
    } finally {
      other.close();
    }
  });

  test("another principal's request_id space is separate", async () => {
    const marker = `idem-sep-${randomUUID()}`;
    const request_id = randomUUID();
    const request = { type: "JOB_TYPE_FORECAST", company_id: "100", data_plane_id: marker, request_id };
    const byService = (await client.call("CreateJob", request)).job;

    const writer = jobsClient(server.address, server.tokens.writer);
    const userA = jobsClient(server.address, server.tokens.companyA);
    const { secret } = await server.issueToken({ type: "api_user", companyId: "100", userId: "3" }, ["jobs:write"]);
    const userA3 = jobsClient(server.address, secret);
    try {
      const byWriter = (await writer.call("CreateJob", request)).job;
      const byUser = (await userA.call("CreateJob", request)).job;
      const byOtherUser = (await userA3.call("CreateJob", request)).job;
      const created = [byService, byWriter, byUser, byOtherUser];
      expect(new Set(ids(created)).size).toBe(4);
      expect(byWriter.created_by.name).toBe("test-writer");
      expect(byOtherUser.created_by.user_id).toBe("3");
      // Each principal's repeat finds its own job.
      expect((await userA.call("CreateJob", request)).job.id).toBe(byUser.id);
      expect((await writer.call("CreateJob", request)).job.id).toBe(byWriter.id);
      expect(new Set(ids((await client.call("ListJobs", { data_plane_id: marker })).jobs))).toEqual(new Set(ids(created)));
    } finally {
      writer.close();
      userA.close();
      userA3.close();
    }
  });

  test("concurrent creates with one request_id make one job", async () => {
    const marker = `idem-race-${randomUUID()}`;
    const request_id = randomUUID();
    const jobs = await Promise.all(
      Array.from({ length: 20 }, () => client.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "5", data_plane_id: marker, request_id })),
    );
    expect(new Set(jobs.map((r) => r.job.id)).size).toBe(1);
    expect((await client.call("ListJobs", { data_plane_id: marker })).jobs).toHaveLength(1);
  });
});

describe("ListJobs paging", () => {
  test("newest first", async () => {
    const marker = `order-${randomUUID()}`;
    const created: Msg[] = [];
    for (let i = 0; i < 5; i++) created.push(await createJob(client, { data_plane_id: marker }));
    const { jobs } = await client.call("ListJobs", { data_plane_id: marker });
    expect(ids(jobs)).toEqual(ids(created).reverse());
    expect(jobs).toEqual([...created].reverse());
  });

  test("page_size 0 means 50, and the last page has an empty next_page_token", async () => {
    const marker = `default-${randomUUID()}`;
    await createMany(55, marker);
    const first = await client.call("ListJobs", { data_plane_id: marker });
    expect(first.jobs).toHaveLength(50);
    expect(first.next_page_token).not.toBe("");
    const second = await client.call("ListJobs", { data_plane_id: marker, page_token: first.next_page_token });
    expect(second.jobs).toHaveLength(5);
    expect(second.next_page_token).toBe("");
    expect(new Set([...ids(first.jobs), ...ids(second.jobs)]).size).toBe(55);
  });

  describe("over 120 jobs", () => {
    const marker = `paging-${randomUUID()}`;
    let created: Msg[];
    let everything: Msg[];

    beforeAll(async () => {
      created = await createMany(120, marker);
      const page = await client.call("ListJobs", { data_plane_id: marker, page_size: 1000 });
      expect(page.next_page_token).toBe("");
      everything = page.jobs;
    });

    test("page_size 1000 (the maximum) returns them all in one page, newest first, in a stable order", async () => {
      expect(new Set(ids(everything))).toEqual(new Set(ids(created)));
      for (let i = 1; i < everything.length; i++) {
        expect(micros(everything[i - 1].created_at) >= micros(everything[i].created_at)).toBe(true);
      }
      const again = await client.call("ListJobs", { data_plane_id: marker, page_size: 1000 });
      expect(ids(again.jobs)).toEqual(ids(everything));
    });

    test("pages of 7 visit every job exactly once, in the same order", async () => {
      const { jobs, pages } = await listAll({ data_plane_id: marker }, [7]);
      expect(pages).toHaveLength(Math.ceil(120 / 7));
      expect(pages.slice(0, -1).every((p) => p.jobs.length === 7)).toBe(true);
      expect(ids(jobs)).toEqual(ids(everything));
    });

    test("the page size may change between pages", async () => {
      const { jobs, pages } = await listAll({ data_plane_id: marker }, [7, 1, 13, 50, 3]);
      expect(pages.map((p) => p.jobs.length)).toEqual([7, 1, 13, 50, 3, 7, 1, 13, 25]);
      expect(ids(jobs)).toEqual(ids(everything));
    });

    test("when the jobs divide into full pages, the last full page has an empty next_page_token", async () => {
      const { pages } = await listAll({ data_plane_id: marker }, [40]);
      expect(pages.map((p) => p.jobs.length)).toEqual([40, 40, 40]);
      expect(pages[2].next_page_token).toBe("");
    });

    test("jobs created while paging do not disturb the pages that follow", async () => {
      const seen: Msg[] = [];
      let page_token = "";
      let round = 0;
      do {
        const page = await client.call("ListJobs", { data_plane_id: marker, page_size: 25, page_token });
        seen.push(...page.jobs);
        page_token = page.next_page_token;
        // Newer jobs land before the cursor: they must not show up, nor shift what follows.
        if (round++ < 3) await createJob(client, { data_plane_id: marker });
      } while (page_token !== "");
      expect(ids(seen)).toEqual(ids(everything));
    });
  });
});

describe("ListJobs filters", () => {
  // company 9001: one job per interesting shape, created one after another.
  const company = "9001";
  const otherCompany = "9002";
  let j: Record<string, Msg>;

  beforeAll(async () => {
    const create = (type: string, dp: string, companyId = company) =>
      createJob(client, { type, data_plane_id: dp, company_id: companyId });
    const run = async (job: Msg, executor: string) => (await client.call("RunJob", { job_id: job.id, executor_id: executor })).job;

    const pending = await create("JOB_TYPE_FORECAST", "dp-a");
    const running = await run(await create("JOB_TYPE_REFRESH_MATERIALIZED_VIEW", "dp-b"), "exec-x");
    const completed = await create("JOB_TYPE_HEALTH_CHECK", "dp-a");
    await run(completed, "exec-y");
    await client.call("CompleteJob", { job_id: completed.id, result: { health_check: { healthy: true } } });
    const failed = await create("JOB_TYPE_FORECAST", "dp-b");
    await run(failed, "exec-x");
    await client.call("FailJob", { job_id: failed.id, message: "boom" });
    const cancelled = await create("JOB_TYPE_DATASETS_EXECUTE_DML", "dp-a");
    await client.call("RequestJobCancellation", { job_id: cancelled.id });
    await client.call("CancelJob", { job_id: cancelled.id });
    const foreign = await create("JOB_TYPE_FORECAST", "dp-a", otherCompany);
    j = { pending, running, completed, failed, cancelled, foreign };
    for (const key of Object.keys(j)) j[key] = await getJob(client, j[key].id);
  });

  /** Which of this suite's jobs a filter returns (jobs of other tests are ignored). */
  async function names(filter: Msg): Promise<string[]> {
    const byId = new Map(Object.entries(j).map(([name, job]) => [job.id as string, name]));
    const { jobs } = await listAll(filter, [1000]);
    return jobs.flatMap((job) => (byId.has(job.id) ? [byId.get(job.id) as string] : []));
  }

  test("company_id", async () => {
    expect(await names({ company_id: company })).toEqual(["cancelled", "failed", "completed", "running", "pending"]);
    expect(await names({ company_id: otherCompany })).toEqual(["foreign"]);
    // Every job in a company's listing belongs to it.
    const { jobs } = await listAll({ company_id: company }, [1000]);
    expect(jobs.every((job) => job.company_id === company)).toBe(true);
  });

  test("states", async () => {
    expect(await names({ company_id: company, states: ["JOB_STATE_RUNNING"] })).toEqual(["running"]);
    expect(await names({ company_id: company, states: ["JOB_STATE_PENDING", "JOB_STATE_FAILED"] })).toEqual(["failed", "pending"]);
    expect(await names({ company_id: company, states: ["JOB_STATE_PENDING_CANCELLATION"] })).toEqual([]);
    expect(await names({ company_id: company, states: ["JOB_STATE_COMPLETED", "JOB_STATE_CANCELLED"] })).toEqual(["cancelled", "completed"]);
  });

  test("types", async () => {
    expect(await names({ company_id: company, types: ["JOB_TYPE_FORECAST"] })).toEqual(["failed", "pending"]);
    expect(await names({ types: ["JOB_TYPE_FORECAST"] })).toEqual(["foreign", "failed", "pending"]);
    expect(await names({ company_id: company, types: ["JOB_TYPE_HEALTH_CHECK", "JOB_TYPE_DATASETS_EXECUTE_DML"] })).toEqual([
      "cancelled",
      "completed",
    ]);
  });

  test("executor_id", async () => {
    expect(await names({ executor_id: "exec-x" })).toEqual(["failed", "running"]);
    expect(await names({ executor_id: "exec-y" })).toEqual(["completed"]);
    expect(await names({ executor_id: "exec-nobody" })).toEqual([]);
  });

  test("data_plane_id", async () => {
    expect(await names({ data_plane_id: "dp-a" })).toEqual(["foreign", "cancelled", "completed", "pending"]);
    expect(await names({ data_plane_id: "dp-a", company_id: company })).toEqual(["cancelled", "completed", "pending"]);
    expect(await names({ data_plane_id: "dp-b" })).toEqual(["failed", "running"]);
  });

  test("created_after (inclusive) and created_before (exclusive)", async () => {
    const pivot = j.completed.created_at;
    expect(await names({ company_id: company, created_after: pivot })).toEqual(["cancelled", "failed", "completed"]);
    expect(await names({ company_id: company, created_before: pivot })).toEqual(["running", "pending"]);
    expect(await names({ company_id: company, created_after: j.running.created_at, created_before: j.cancelled.created_at })).toEqual([
      "failed",
      "completed",
      "running",
    ]);
  });

  test("filters combine: every filter that is set must match", async () => {
    expect(await names({ types: ["JOB_TYPE_FORECAST"], data_plane_id: "dp-b" })).toEqual(["failed"]);
    expect(await names({ executor_id: "exec-x", states: ["JOB_STATE_RUNNING"], company_id: company })).toEqual(["running"]);
    expect(await names({ data_plane_id: "dp-a", states: ["JOB_STATE_RUNNING"] })).toEqual([]);
  });

  test("a filtered listing pages like any other", async () => {
    const { jobs, pages } = await listAll({ company_id: company }, [2]);
    expect(pages).toHaveLength(3);
    expect(ids(jobs)).toEqual([j.cancelled, j.failed, j.completed, j.running, j.pending].map((x) => x.id));
  });
});

describe("ListJobEvents", () => {
  let job: Msg;
  const RETRIES = 30;

  beforeAll(async () => {
    job = await createJob(client);
    for (let i = 1; i <= RETRIES; i++) {
      await client.call("RunJob", { job_id: job.id, executor_id: `executor-${i}` });
      await client.call("FailJob", { job_id: job.id, message: `attempt ${i} failed` });
    }
    await client.call("RunJob", { job_id: job.id, executor_id: "executor-last" });
    // No-ops append nothing.
    await client.call("RunJob", { job_id: job.id, executor_id: "executor-late" });
    await client.call("RequestJobCancellation", { job_id: job.id, reason: "enough" });
    await client.call("RequestJobCancellation", { job_id: job.id, reason: "again" });
    await client.call("CompleteJob", { job_id: job.id, result: FORECAST_RESULT });
    await client.call("CompleteJob", { job_id: job.id, result: FORECAST_RESULT });
    job = await getJob(client, job.id);
  });

  const expectedTypes = () => [
    "JOB_EVENT_TYPE_CREATED",
    ...Array.from({ length: RETRIES }, () => ["JOB_EVENT_TYPE_STARTED", "JOB_EVENT_TYPE_FAILED"]).flat(),
    "JOB_EVENT_TYPE_STARTED",
    "JOB_EVENT_TYPE_CANCELLATION_REQUESTED",
    "JOB_EVENT_TYPE_COMPLETED",
  ];

  test("is exactly the transition history, oldest first, each event with the job as of its revision", async () => {
    const events = await allEvents(client, job.id);
    expect(events.map((e) => e.type)).toEqual(expectedTypes());
    expect(events.map((e) => e.revision)).toEqual(events.map((_, i) => String(i + 1)));
    expect(job.revision).toBe(String(events.length));
    let state = "JOB_STATE_UNSPECIFIED";
    for (const event of events) {
      expect(event.job_id).toBe(job.id);
      expect(event.from_state).toBe(state);
      expect(event.job.state).toBe(event.to_state);
      expect(event.job.revision).toBe(event.revision);
      expect(event.occurred_at).toEqual(event.job.updated_at);
      state = event.to_state;
    }
    expect(events[events.length - 1].job).toEqual(job);
    // Each run's STARTED event names that run's executor and attempt.
    const started = events.filter((e) => e.type === "JOB_EVENT_TYPE_STARTED");
    expect(started.map((e) => [e.job.executor_id, e.job.attempt])).toEqual([
      ...Array.from({ length: RETRIES }, (_, i) => [`executor-${i + 1}`, String(i + 1)]),
      ["executor-last", String(RETRIES + 1)],
    ]);
  });

  test("pages of 4 return the same history, and the last page's token is empty", async () => {
    const whole = await allEvents(client, job.id);
    const pages: Msg[] = [];
    let page_token = "";
    do {
      const page = await client.call("ListJobEvents", { job_id: job.id, page_size: 4, page_token });
      pages.push(page);
      page_token = page.next_page_token;
    } while (page_token !== "");
    expect(pages).toHaveLength(Math.ceil(whole.length / 4));
    expect(pages.flatMap((p) => p.events)).toEqual(whole);
  });

  test("page_size 0 means 50", async () => {
    const total = expectedTypes().length;
    const first = await client.call("ListJobEvents", { job_id: job.id });
    expect(first.events).toHaveLength(50);
    const second = await client.call("ListJobEvents", { job_id: job.id, page_token: first.next_page_token });
    expect(second.events).toHaveLength(total - 50);
    expect(second.next_page_token).toBe("");
    expect(second.events[0].revision).toBe("51");
  });
});
