// `jobsctl tokens` (docs/contract.md §6, §8) as an operator runs it: the built CLI in its
// own process, on the server's database (DATABASE_URL). A token it prints
// works against a server; list never shows a secret; revoke stops a token in
// use within 5 s; usage errors exit 2 with a message.
//
// The database starts empty: `tokens create` may be the first command on it.

import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { status } from "@grpc/grpc-js";
import pg from "pg";
import { attempt, bearer, eventually } from "../support/auth-calls.js";
import { jobsClient, type JobsClient, type Msg } from "../support/grpc.js";
import { adminUrl, sql, startServer, type TestServer } from "../support/harness.js";
import { type CliResult, runCli } from "../support/processes.js";

const TOKEN = /^jobs_[A-Za-z0-9_-]{43}$/;
const ISO_DATE = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/;

let databaseUrl: string;
let server: TestServer;
let serviceToken: string;
/** Every secret the CLI printed, for the checks that list never shows one. */
const secrets: string[] = [];

const jobsctl = (...args: string[]): Promise<CliResult> => runCli(args, { DATABASE_URL: databaseUrl, LOG_LEVEL: "warn" });

/** Runs `tokens create …`; it must succeed and print one token, alone. */
async function createToken(...args: string[]): Promise<string> {
  const res = await jobsctl("tokens", "create", ...args);
  expect({ code: res.code, stderr: res.stderr }).toEqual({ code: 0, stderr: "" });
  // Alone: one line, nothing else on stdout, so `TOKEN=$(jobsctl tokens create …)` just works.
  expect(res.stdout.endsWith("\n")).toBe(true);
  expect(res.stdout.split("\n")).toHaveLength(2);
  const token = res.stdout.trimEnd();
  expect(token).toMatch(TOKEN);
  secrets.push(token);
  return token;
}

async function listJson(): Promise<Msg[]> {
  const res = await jobsctl("tokens", "list", "--json");
  expect(res.code).toBe(0);
  return JSON.parse(res.stdout);
}

/** An empty database (no schema) on the test PostgreSQL. */
async function emptyDatabase(): Promise<string> {
  const name = `jobs_cli_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl());
  url.pathname = `/${name}`;
  return url.toString();
}

beforeAll(async () => {
  databaseUrl = await emptyDatabase();
  // The first command on the new database; the server below finds its schema ready.
  serviceToken = await createToken("--principal", "service", "--name", "cli-service", "--scopes", "jobs:read,jobs:write");
  server = await startServer({ databaseUrl });
});

afterAll(async () => {
  await server?.stop();
});

describe("tokens create", () => {
  test("a service token, printed alone, works against a server on that database", async () => {
    const client = jobsClient(server.address, serviceToken);
    try {
      const { job } = await client.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "5" });
      expect(job.created_by).toMatchObject({ type: "PRINCIPAL_TYPE_SERVICE", name: "cli-service" });
      expect((await client.call("GetJob", { job_id: job.id })).job.id).toBe(job.id);
    } finally {
      client.close();
    }
  });

  test("an api_user token carries its company, user and scopes", async () => {
    const token = await createToken("--principal", "api_user", "--company", "5", "--user", "9", "--scopes", "jobs:read");
    const service = jobsClient(server.address, serviceToken);
    const user = jobsClient(server.address, token);
    try {
      const own = (await service.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "5" })).job;
      const other = (await service.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "6" })).job;
      expect((await user.call("GetJob", { job_id: own.id })).job.company_id).toBe("5");
      expect(status[(await user.fail("GetJob", { job_id: other.id })).code]).toBe("NOT_FOUND");
      // jobs:read only.
      expect(status[(await user.fail("CreateJob", { type: "JOB_TYPE_FORECAST" })).code]).toBe("PERMISSION_DENIED");
      // The user's actions are recorded as user 9 of company 5.
      const { jobs } = await user.call("ListJobs", {});
      expect(jobs.length).toBeGreaterThan(0);
      expect(jobs.every((job: Msg) => job.company_id === "5")).toBe(true);
    } finally {
      service.close();
      user.close();
    }
  });

  test("each create prints a new token", async () => {
    const a = await createToken("--principal", "service", "--name", "twice", "--scopes", "jobs:read");
    const b = await createToken("--principal", "service", "--name", "twice", "--scopes", "jobs:read");
    expect(a).not.toBe(b);
  });
});

describe("tokens list", () => {
  test("--json shows id, principal, scopes and dates, never a secret", async () => {
    const list = await listJson();
    const service = list.find((t) => t.principal.type === "service" && t.principal.name === "cli-service");
    expect(service).toMatchObject({ scopes: ["jobs:read", "jobs:write"], revokedAt: null });
    expect(service?.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(service?.createdAt).toMatch(ISO_DATE);
    const text = JSON.stringify(list);
    for (const secret of secrets) {
      expect(text).not.toContain(secret);
      expect(text).not.toContain(secret.slice("jobs_".length));
    }
  });

  test("the table shows id, principal, scopes and dates, never a secret", async () => {
    await createToken("--principal", "api_user", "--company", "7", "--user", "11", "--scopes", "jobs:read,jobs:write");
    const res = await jobsctl("tokens", "list");
    expect(res.code).toBe(0);
    for (const token of await listJson()) {
      const row = res.stdout.split("\n").find((line) => line.startsWith(token.id));
      expect(row).toBeDefined();
      expect(row).toContain(token.scopes.join(","));
      expect(row).toMatch(ISO_DATE);
    }
    expect(res.stdout).toContain("service:cli-service");
    expect(res.stdout).toMatch(/company=7.*user=11|user=11.*company=7/);
    for (const secret of secrets) {
      expect(res.stdout).not.toContain(secret);
      expect(res.stdout).not.toContain(secret.slice("jobs_".length));
    }
  });
});

describe("tokens revoke", () => {
  test("a token in use stops working within 5 s", async () => {
    const token = await createToken("--principal", "service", "--name", "to-revoke", "--scopes", "jobs:read");
    const client: JobsClient = jobsClient(server.address, token);
    try {
      // In use: the server has looked it up (and may cache it).
      const listed = await client.call("ListJobs", {});
      expect(Array.isArray(listed.jobs)).toBe(true);
      const id = (await listJson()).find((t) => t.principal.name === "to-revoke")?.id as string;

      const res = await jobsctl("tokens", "revoke", id);
      expect(res.code).toBe(0);
      expect(res.stdout).toContain(id);
      // docs/contract.md §6: within 5 s; the margin covers the polling and the calls.
      const rejected = await eventually(async () => {
        const outcome = await attempt(client, "ListJobs", {}, bearer(token));
        return !outcome.ok && outcome.error.code === status.UNAUTHENTICATED;
      }, 6_000);
      expect(rejected).toBe(true);

      const after = (await listJson()).find((t) => t.id === id);
      expect(after?.revokedAt).toMatch(ISO_DATE);
      expect((await jobsctl("tokens", "list")).stdout.split("\n").find((line) => line.startsWith(id))).toMatch(/revoked/);
      // Other tokens keep working.
      const other = jobsClient(server.address, serviceToken);
      try {
        expect(Array.isArray((await other.call("ListJobs", {})).jobs)).toBe(true);
      } finally {
        other.close();
      }
    } finally {
      client.close();
    }
  });

  test("revoking an unknown token id fails with a message (exit 3, not found)", async () => {
    const res = await jobsctl("tokens", "revoke", "00000000-0000-4000-8000-000000000000");
    expect(res.code).toBe(3);
    expect(res.stderr).toMatch(/no live token/);
  });
});

describe("usage errors exit 2 with a message", () => {
  const cases: ReadonlyArray<[string, string[]]> = [
    ["an unknown action", ["tokens", "frobnicate"]],
    ["an unknown option", ["tokens", "create", "--bogus"]],
    ["no principal", ["tokens", "create", "--scopes", "jobs:read"]],
    ["an unknown principal", ["tokens", "create", "--principal", "robot", "--scopes", "jobs:read"]],
    ["a service without a name", ["tokens", "create", "--principal", "service", "--scopes", "jobs:read"]],
    ["an api_user without a company", ["tokens", "create", "--principal", "api_user", "--user", "1", "--scopes", "jobs:read"]],
    ["an api_user with a company that is not a number", ["tokens", "create", "--principal", "api_user", "--company", "acme", "--user", "1", "--scopes", "jobs:read"]],
    ["no scopes", ["tokens", "create", "--principal", "service", "--name", "x"]],
    ["an unknown scope", ["tokens", "create", "--principal", "service", "--name", "x", "--scopes", "jobs:admin"]],
    ["revoke without an id", ["tokens", "revoke"]],
    ["revoke with something that is not an id", ["tokens", "revoke", "not-an-id"]],
  ];

  const tokenRows = async () => (await sql<{ n: string }>(databaseUrl, "select count(*) as n from tokens"))[0].n;
  // The commands fail before they touch the database, so they run side by side; each test reads its own result.
  let results: Map<string, CliResult>;
  let rowsBefore: string;
  let rowsAfter: string;
  beforeAll(async () => {
    rowsBefore = await tokenRows();
    results = new Map(await Promise.all(cases.map(async ([what, args]) => [what, await jobsctl(...args)] as const)));
    rowsAfter = await tokenRows();
  });

  test.each(cases)("%s", (what) => {
    const res = results.get(what);
    expect(res?.code).toBe(2);
    expect(res?.stderr).toMatch(/^jobsctl: .{10,}/);
    // Nothing on stdout: a script capturing it gets no token-shaped garbage.
    expect(res?.stdout).toBe("");
    // And no token was made.
    expect(rowsAfter).toBe(rowsBefore);
  });

  test("tokens with no action prints its usage and exits 2", async () => {
    const res = await jobsctl("tokens");
    expect(res.code).toBe(2);
    expect(res.stdout + res.stderr).toMatch(/tokens create --principal service/);
  });
});
