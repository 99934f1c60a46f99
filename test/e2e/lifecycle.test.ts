// The life of a `jobsctl serve` process (docs/contract.md §7) beyond the plain drain
// (drain.test.ts): a second signal during the drain exits at once, and a start
// that cannot succeed exits non-zero with one line saying what to do.

import { randomBytes } from "node:crypto";
import { createServer, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import pg from "pg";
import { jobsClient, type Msg, reader } from "../support/grpc.js";
import { adminUrl, freshDatabase } from "../support/harness.js";
import { createServiceToken, type Exit, freePort, runCli, spawnServer } from "../support/processes.js";
import { eventually, readUntil } from "../support/watching.js";

let databaseUrl: string;
let token: string;

beforeAll(async () => {
  databaseUrl = await freshDatabase();
  token = await createServiceToken(databaseUrl, "lifecycle-test");
});

/** The exit, or an error if the process is still running after `ms` (a generous bound, not a timing claim). */
function exitWithin(exited: Promise<Exit>, ms: number, what: string): Promise<Exit> {
  return Promise.race([
    exited,
    new Promise<Exit>((_, reject) => setTimeout(() => reject(new Error(`${what}: still running after ${ms} ms`)), ms).unref()),
  ]);
}

describe("a second signal during the drain exits at once", () => {
  test.each([
    ["SIGTERM", 143],
    ["SIGINT", 130],
  ] as const)("%s twice: exit %i with a call in flight and a stream open", async (signal, code) => {
    // The drain alone would wait up to 600 s for the call below.
    const server = await spawnServer({ databaseUrl, env: { LOG_LEVEL: "info", SHUTDOWN_TIMEOUT_SECONDS: "600" } });
    const client = jobsClient(server.address, token);
    const locker = new pg.Client({ connectionString: databaseUrl });
    try {
      const { job } = await client.call("CreateJob", { type: "JOB_TYPE_HEALTH_CHECK", company_id: "9" });
      const watch = reader(client.stream("WatchJobs", { company_id: "9" }));
      await readUntil(watch, (m: Msg) => m.kind === "synced");
      // A unary call kept in flight: it waits on the row lock this test holds.
      await locker.connect();
      await locker.query("begin");
      await locker.query("select id from jobs where id = $1 for update", [job.id]);
      const inFlight = client.call("RunJob", { job_id: job.id, executor_id: "ex" }).then(
        () => "answered",
        () => "cut off",
      );
      await eventually(async () => {
        const { rows } = await locker.query("select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()");
        return rows[0].n === 1;
      }, "the call to wait on the row lock");

      server.child.kill(signal);
      const firstAt = Date.now();
      await eventually(() => server.output().includes('"msg":"draining"'), "the drain to begin");
      expect(server.child.exitCode).toBeNull(); // the call holds the drain open
      // A repeat within half a second is the same signal passed on by a launcher (signals.test.ts): wait it out.
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, 600 - (Date.now() - firstAt))));
      server.child.kill(signal);

      // Exits while the test still holds the lock: the drain was not waited out.
      expect(await exitWithin(server.exited, 20_000, "after the second signal")).toEqual({ code, signal: null });
      expect(await inFlight).toBe("cut off");
      const logged = server.output().split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line));
      expect(logged.find((line) => line.msg.startsWith("second signal"))).toMatchObject({ level: "warn", signal, first_signal: signal });
      expect(logged.map((line) => line.msg)).not.toContain("stopped");
    } finally {
      await locker.query("rollback").catch(() => undefined);
      await locker.end().catch(() => undefined);
      client.close();
      await server.stop(1_000);
    }
  });
});

describe("a start that fails exits non-zero with one line saying what to do", () => {
  let occupied: Server;
  let takenPort: number;
  beforeAll(async () => {
    occupied = createServer();
    await new Promise<void>((resolve) => occupied.listen(0, "127.0.0.1", resolve));
    takenPort = (occupied.address() as { port: number }).port;
  });
  afterAll(async () => {
    await new Promise((resolve) => occupied?.close(resolve));
  });

  async function serveFails(env: Record<string, string>): Promise<{ code: number | null; line: string; output: string }> {
    const res = await runCli(["serve"], { HOST: "127.0.0.1", PORT: "0", LOG_LEVEL: "warn", ...env });
    const lines = res.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    return { code: res.code, line: lines[0], output: res.stdout + res.stderr };
  }

  test("the port is taken", async () => {
    const { code, line } = await serveFails({ DATABASE_URL: databaseUrl, PORT: String(takenPort) });
    expect({ code, line }).toEqual({
      code: 7,
      line: `jobsctl serve: port ${takenPort} on 127.0.0.1 is in use: stop the other process or set PORT`,
    });
  });

  test("the metrics port is taken", async () => {
    const { code, line } = await serveFails({ DATABASE_URL: databaseUrl, METRICS_PORT: String(takenPort) });
    expect({ code, line }).toEqual({
      code: 7,
      line: `jobsctl serve: port ${takenPort} on 127.0.0.1 is in use: stop the other process or set METRICS_PORT`,
    });
  });

  test("PostgreSQL is unreachable: host and port named, the password never", async () => {
    const closed = await freePort();
    const password = `pw-${randomBytes(6).toString("hex")}`;
    const { code, line, output } = await serveFails({ DATABASE_URL: `postgresql://jobs:${password}@127.0.0.1:${closed}/jobs` });
    expect({ code, line }).toEqual({
      code: 6,
      line: `jobsctl serve: cannot reach PostgreSQL at 127.0.0.1:${closed} (ECONNREFUSED): start it or fix DATABASE_URL`,
    });
    expect(output).not.toContain(password);
  });

  test("PostgreSQL takes the connection and never answers: exit 6 after DB_ACQUIRE_TIMEOUT_MS, not a hang", async () => {
    // A host that completes TCP handshakes and then stays silent (a hung server, a half-dead proxy).
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const port = (silent.address() as { port: number }).port;
    try {
      // MIGRATE_ON_START is on by default: the migration's own connection must give up in time too.
      const { code, line } = await serveFails({ DATABASE_URL: `postgresql://jobs:pw@127.0.0.1:${port}/jobs`, DB_ACQUIRE_TIMEOUT_MS: "1500" });
      expect({ code, line }).toEqual({
        code: 6,
        line: `jobsctl serve: cannot reach PostgreSQL at 127.0.0.1:${port} (no answer in time): start it or fix DATABASE_URL`,
      });
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  test("a migration fails: it is named, with the database's reason and what to do", async () => {
    // A database whose `jobs` table is not ours: the initial migration cannot create it.
    const name = `jobs_test_conflict_${randomBytes(4).toString("hex")}`;
    const admin = new pg.Client({ connectionString: adminUrl() });
    await admin.connect();
    await admin.query(`create database ${name}`);
    await admin.end();
    const url = new URL(adminUrl());
    url.pathname = `/${name}`;
    const conflicting = new pg.Client({ connectionString: url.toString() });
    await conflicting.connect();
    await conflicting.query("create table jobs (something_else int)");
    await conflicting.end();

    const { code, line } = await serveFails({ DATABASE_URL: url.toString(), MIGRATE_ON_START: "true" });
    expect(code).toBe(8);
    expect(line).toMatch(/^jobsctl serve: migration Migration\d+_Initial failed: .*"jobs" already exists.*\(SQLSTATE 42P07\)/);
    expect(line).toMatch(/fix the cause, then run `jobsctl migrate`/);
  });
});
