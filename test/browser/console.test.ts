// The operators' console in a real browser (Debian's Chromium through
// playwright-core) against a real server and PostgreSQL: jobs made and moved
// through the gRPC API show on the page without a reload; the job page's
// history and its cancellation actions; what a read-only token, a bad token
// and an API user get; a hostile failure message shown as text; and, over the
// whole file, no token in any URL or log line and no policy violation. The
// server restarting under an open page is test/browser/restart.test.ts.

import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import type { Page } from "playwright-core";
import { generateSecret } from "../../src/auth/tokens.js";
import { cell, goTo, jobRow, kept, launchBrowser, signIn, signInLive, type TestBrowser, violations } from "../support/browser.js";
import { jobsClient, type JobsClient, type Msg } from "../support/grpc.js";
import { startServer, type TestServer } from "../support/harness.js";

let server: TestServer;
let browser: TestBrowser;
let api: JobsClient;
const pages: Page[] = [];
/** Every token this file pastes, good or bad, for the check that none leaks. */
const pasted = new Set<string>();

beforeAll(async () => {
  [server, browser] = await Promise.all([startServer(), launchBrowser()]);
  api = jobsClient(server.address, server.tokens.service);
});

afterAll(async () => {
  api?.close();
  await browser?.close();
  await server?.stop();
});

async function newPage(viewport?: { width: number; height: number }): Promise<Page> {
  const page = await browser.newPage(viewport);
  pages.push(page);
  return page;
}

async function createJob(fields: Msg = {}): Promise<Msg> {
  return (await api.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "300", input: { forecast: { nql: "orders per day" } }, ...fields })).job;
}

const stateOf = async (jobId: string) => (await api.call("GetJob", { job_id: jobId })).job;

describe("a service token", () => {
  test("signs in; jobs created through the API appear, and a RunJob changes the row's state on screen without a reload", async () => {
    const page = await newPage();
    await signInLive(page, server.url, server.tokens.service);
    const first = await createJob();
    const second = await createJob({ type: "JOB_TYPE_HEALTH_CHECK", company_id: "301", input: { other: { fields: { target: { stringValue: "dp-1" } } } } });
    await jobRow(page, first.id).waitFor();
    await jobRow(page, second.id).waitFor();
    expect(await cell(page, second.id, "Type")).toBe("HEALTH_CHECK");
    expect(await cell(page, second.id, "Company")).toBe("301");
    expect(await cell(page, first.id, "State")).toBe("PENDING");

    // A mark in the page's memory: a reload would lose it.
    await page.evaluate("window.stillHere = true");
    await api.call("RunJob", { job_id: first.id, executor_id: "executor-console" });
    await jobRow(page, first.id).getByText("RUNNING", { exact: true }).waitFor();
    expect(await cell(page, first.id, "Executor")).toBe("executor-console");
    expect(await cell(page, first.id, "Attempt")).toBe("1");
    expect(await page.evaluate("window.stillHere")).toBe(true);

    // The token lives in this tab's sessionStorage only, and signing out forgets it.
    expect(await kept(page)).toEqual({ session: [server.tokens.service], local: 0, cookie: "" });
    expect(await page.context().cookies()).toEqual([]);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("Token").waitFor();
    expect(await kept(page)).toEqual({ session: [], local: 0, cookie: "" });
  });

  test("the job page shows the event history; a refused action shows the ErrorInfo; a cancellation requested from the page is made", async () => {
    const job = await createJob();
    await api.call("RunJob", { job_id: job.id, executor_id: "executor-console" });
    const page = await newPage();
    await signInLive(page, server.url, server.tokens.service);
    await page.getByRole("link", { name: job.id, exact: true }).click();
    const history = page.getByRole("list", { name: "Event history" });
    await history.getByRole("listitem").filter({ hasText: "STARTED" }).waitFor();
    expect(await history.getByRole("listitem").allInnerTexts()).toEqual([
      expect.stringMatching(/^#1 CREATED PENDING by service test-service \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/),
      expect.stringMatching(/^#2 STARTED PENDING → RUNNING by service test-service /),
    ]);

    // "No, go back" changes nothing.
    await page.getByRole("button", { name: "Cancel job…" }).click();
    await page.getByRole("dialog", { name: "Cancel this job?" }).getByRole("button", { name: "No, go back" }).click();
    await page.locator("dialog").waitFor({ state: "hidden" });

    // CancelJob on a RUNNING job: the table says REJECT, and the page says why, in the server's words.
    await page.getByRole("button", { name: "Cancel job…" }).click();
    await page.getByRole("dialog", { name: "Cancel this job?" }).getByRole("button", { name: "Yes, cancel the job" }).click();
    const refusal = page.getByRole("alert").filter({ hasText: "CancelJob refused" });
    await refusal.waitFor();
    expect(await refusal.innerText()).toMatch(/^CancelJob refused: FAILED_PRECONDITION INVALID_TRANSITION: .*RUNNING/);
    expect((await stateOf(job.id)).state).toBe("JOB_STATE_RUNNING");

    await page.getByRole("button", { name: "Request cancellation…" }).click();
    const ask = page.getByRole("dialog", { name: "Request cancellation of this job?" });
    await ask.getByLabel("Reason (optional)").fill("asked from the console");
    await ask.getByRole("button", { name: "Yes, request cancellation" }).click();
    await page.getByRole("status").filter({ hasText: "RequestJobCancellation: done. The job is now PENDING_CANCELLATION." }).waitFor();
    const after = await stateOf(job.id);
    expect([after.state, after.cancellation_reason]).toEqual(["JOB_STATE_PENDING_CANCELLATION", "asked from the console"]);
    // The new event arrives over WatchJob.
    await history.getByRole("listitem").filter({ hasText: "#3 CANCELLATION_REQUESTED RUNNING → PENDING_CANCELLATION" }).waitFor();
    expect(await violations(page)).toEqual([]);
  });
});

describe("other callers", () => {
  test("a read-only token sees the actions disabled, with the reason", async () => {
    const job = await createJob();
    const page = await newPage();
    await signInLive(page, server.url, server.tokens.reader);
    await goTo(page, `#/jobs/${job.id}`);
    for (const name of ["Request cancellation…", "Cancel job…"]) {
      const button = page.getByRole("button", { name });
      await button.waitFor();
      expect(await button.isDisabled()).toBe(true);
      expect(await button.getAttribute("aria-describedby")).toBe("actions-why");
    }
    expect(await page.locator("#actions-why").innerText()).toMatch(/^Unavailable with this token: .*jobs:write/);
    expect(await page.getByText("read only").count()).toBe(1);
  });

  test("a bad token gets a message saying so, and is not kept", async () => {
    const page = await newPage();
    const bad = generateSecret();
    pasted.add(bad);
    await signIn(page, server.url, bad);
    const message = page.getByRole("alert");
    await message.waitFor();
    expect(await message.innerText()).toMatch(/^That token was not accepted \(INVALID_TOKEN\): the bearer token is unknown or revoked\.$/);
    expect(await kept(page)).toEqual({ session: [], local: 0, cookie: "" });
    await page.getByLabel("Token").waitFor();
  });

  test("an API user's token sees only its company's jobs", async () => {
    const own = await createJob({ company_id: "100" });
    const foreign = await createJob({ company_id: "200" });
    const page = await newPage();
    await signInLive(page, server.url, server.tokens.companyA);
    await jobRow(page, own.id).waitFor();
    const companies = await page.locator('tbody td[data-label="Company"]').allInnerTexts();
    expect(companies.length).toBeGreaterThan(0);
    expect(new Set(companies)).toEqual(new Set(["100"]));
    expect(await jobRow(page, foreign.id).count()).toBe(0);
    // No company filter: the server confines this token to company 100.
    expect(await page.getByLabel("Company").count()).toBe(0);
    expect(await page.getByText("Company 100").count()).toBe(1);

    await goTo(page, `#/jobs/${foreign.id}`);
    await page.getByRole("alert").filter({ hasText: "No job with this id is visible to you (JOB_NOT_FOUND)." }).waitFor();
  });
});

test("a failure message carrying markup is shown as text and runs nothing", async () => {
  const hostile = "<img src=x onerror=alert(1)>";
  const job = await createJob();
  await api.call("RunJob", { job_id: job.id, executor_id: "<b>executor</b>" });
  await api.call("FailJob", { job_id: job.id, message: hostile, diagnostic: { stringValue: "<script>alert(2)</script>" } });
  const page = await newPage();
  await signInLive(page, server.url, server.tokens.service);
  await goTo(page, `#/jobs/${job.id}`);
  const failures = page.getByRole("region", { name: "Failures" });
  await failures.getByText(hostile, { exact: true }).waitFor();
  expect(await failures.getByText("<script>alert(2)</script>", { exact: true }).count()).toBe(1);
  expect(await failures.innerText()).toContain("by <b>executor</b>");
  expect(await page.locator("img, script:not([src]), b").count()).toBe(0);
  expect(browser.incidents).toEqual([]);
});

test("the page is served with a strict Content-Security-Policy and has no inline script", async () => {
  const res = await fetch(`${server.url}/`);
  expect(res.status).toBe(200);
  const policy = res.headers.get("content-security-policy") ?? "";
  expect(policy.split("; ")).toEqual(expect.arrayContaining(["default-src 'self'", "script-src 'self'", "connect-src 'self'"]));
  expect(policy).not.toMatch(/unsafe-inline|unsafe-eval|\*/);
  const html = await res.text();
  expect(html).toMatch(/<script type="module" crossorigin src="\/assets\/[\w-]+\.js"><\/script>/);
  expect(html.match(/<script\b[^>]*>/g)?.filter((tag) => !/\bsrc=/.test(tag))).toEqual([]);
  // Every page this file opened ran under that policy without breaking it.
  for (const page of pages) expect(await violations(page)).toEqual([]);
});

test("no token appeared in any URL the browser requested, nor in any line the server logged", () => {
  expect(browser.requestedUrls.length).toBeGreaterThan(20);
  const tokens = [...Object.values(server.tokens), ...pasted];
  const leaks = [...browser.requestedUrls, ...server.logs].filter((text) => tokens.some((token) => text.includes(token)));
  expect(leaks).toEqual([]);
});
