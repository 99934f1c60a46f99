// The server restarted under open pages of the console: the jobs view and a
// job's page lose their streams (the drain ends them UNAVAILABLE), say they
// are reconnecting, and once a server answers on the same port again they
// re-sync by themselves: a change committed while no server answered there
// (through another replica on the same database) shows up, and so do the
// changes after it.

import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { cell, goTo, jobRow, launchBrowser, liveStatus, signInLive, type TestBrowser } from "../support/browser.js";
import { jobsClient } from "../support/grpc.js";
import { startServer, type TestServer } from "../support/harness.js";

/** A restart takes the server's drain, a start, and the page's next reconnection attempt. */
const RESTART_WAIT_MS = 30_000;

const servers: TestServer[] = [];
let browser: TestBrowser;

beforeAll(async () => {
  const [server, launched] = await Promise.all([startServer(), launchBrowser()]);
  servers.push(server);
  browser = launched;
});

afterAll(async () => {
  await browser?.close();
  for (const server of servers) await server.stop();
});

test("both views re-sync after a restart, showing what changed meanwhile, and keep updating", async () => {
  const [first] = servers;
  const { port, databaseUrl, url } = first;
  const token = first.tokens.service;
  const before = jobsClient(first.address, token);
  const { job } = await before.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "400" });
  before.close();

  const list = await browser.newPage();
  await signInLive(list, url, token);
  await jobRow(list, job.id).waitFor();
  const detail = await browser.newPage();
  await signInLive(detail, url, token);
  await goTo(detail, `#/jobs/${job.id}`);
  const history = detail.getByRole("list", { name: "Event history" });
  await history.getByRole("listitem").filter({ hasText: "#1 CREATED" }).waitFor();
  await liveStatus(detail).waitFor();

  await first.stop();
  for (const page of [list, detail]) await page.getByRole("status").filter({ hasText: "Reconnecting…" }).waitFor();

  // A change while nothing answers on the pages' port: only a re-sync can bring it to them.
  const replica = await startServer({ databaseUrl });
  servers.push(replica);
  const viaReplica = jobsClient(replica.address, replica.tokens.service);
  await viaReplica.call("RunJob", { job_id: job.id, executor_id: "executor-during-restart" });
  viaReplica.close();
  expect(await cell(list, job.id, "State")).toBe("PENDING");

  const restarted = await startServer({ databaseUrl, env: { PORT: String(port) } });
  servers.push(restarted);
  await jobRow(list, job.id).getByText("RUNNING", { exact: true }).waitFor({ timeout: RESTART_WAIT_MS });
  expect(await cell(list, job.id, "Executor")).toBe("executor-during-restart");
  await liveStatus(list).waitFor({ timeout: RESTART_WAIT_MS });
  await history.getByRole("listitem").filter({ hasText: "#2 STARTED PENDING → RUNNING" }).waitFor({ timeout: RESTART_WAIT_MS });
  await liveStatus(detail).waitFor({ timeout: RESTART_WAIT_MS });

  // …and they keep following changes made through the restarted server.
  const after = jobsClient(restarted.address, token);
  await after.call("CompleteJob", { job_id: job.id, result: { forecast: { cost: "5", rows: "6" } } });
  after.close();
  await jobRow(list, job.id).getByText("COMPLETED", { exact: true }).waitFor();
  await history.getByRole("listitem").filter({ hasText: "#3 COMPLETED RUNNING → COMPLETED" }).waitFor();
  await detail.getByRole("region", { name: "Result: Forecast" }).getByText("Rows").waitFor();
  // Each event once: the resumed WatchJob neither skipped nor repeated one.
  expect(await history.getByRole("listitem").count()).toBe(3);
});
