// Configuration from the environment (docs/contract.md §7): defaults and good values
// load; every variable that can be wrong, set wrong, stops `jobsctl serve`
// with exit 2 and one line on stderr naming the variable and what it accepts.
// The cases are keyed by VARIABLES, so a new variable without a bad-value
// case (or a stated reason why any value is fine) fails this file.

import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, test } from "@jest/globals";
import { ConfigError, loadConfig, RULES, VARIABLES, type VariableName } from "../../src/config.js";
import { runCli } from "../support/processes.js";
import { scratchDir } from "../support/scratch.js";

const PEM_DIR = scratchDir("jobs-config-");
const PEM = join(PEM_DIR, "any.pem");
writeFileSync(PEM, "-----BEGIN CERTIFICATE-----\nnot checked further here\n-----END CERTIFICATE-----\n");
const NOT_PEM = join(PEM_DIR, "notes.txt");
writeFileSync(NOT_PEM, "hello\n");

/** One wrong value per variable (more where a variable can be wrong in more than one way). */
const BAD: Partial<Record<VariableName, readonly string[]>> = {
  HOST: ["bad host!", "http://127.0.0.1"],
  PORT: ["5OO51", "70000"],
  DATABASE_URL: ["mysql://jobs:hunter2@db:3306/jobs"],
  EMBEDDED_POSTGRES_PORT: ["-1"],
  LOG_LEVEL: ["loud"],
  MAX_MESSAGE_BYTES: ["4MiB", "100"],
  WATCH_HEARTBEAT_SECONDS: ["0"],
  WATCH_BUFFER_EVENTS: ["5"],
  WATCH_POLL_INTERVAL_MS: ["1.5"],
  NOTIFY_INTERVAL_MS: ["fast"],
  LEASE_DEFAULT_SECONDS: ["86401"],
  REAPER_INTERVAL_SECONDS: ["0"],
  REAPER_GRACE_SECONDS: ["-5"],
  REAPER_BATCH_SIZE: ["0"],
  DB_ACQUIRE_TIMEOUT_MS: ["2s"],
  DB_QUERY_TIMEOUT_MS: ["-1", "30s"],
  DB_POOL_SIZE: ["0"],
  JOB_PAYLOAD_MAX_BYTES: ["100", "256k"],
  JOB_MAX_BYTES: ["4194304"],
  WRITE_BATCH_MAX_CALLS: ["0", "many"],
  WRITE_BATCHES_IN_FLIGHT: ["0"],
  MIGRATE_ON_START: ["maybe"],
  METRICS_PORT: ["0", "metrics"],
  METRICS_HOST: ["bad host!"],
  TOKEN_CACHE_SECONDS: ["6"],
  SHUTDOWN_TIMEOUT_SECONDS: ["forever"],
  RETENTION_DAYS: ["0"],
  RETENTION_INTERVAL_SECONDS: ["1m"],
  TLS_CERT: [join(PEM_DIR, "missing.pem"), NOT_PEM],
  TLS_KEY: [join(PEM_DIR, "missing-key.pem")],
  CONSOLE_ENABLED: ["off"],
  MAX_CONNECTIONS: ["0", "unlimited"],
  MAX_STREAMS_PER_CONNECTION: ["0"],
  HANDSHAKE_TIMEOUT_MS: ["10s", "50"],
  IDLE_TIMEOUT_SECONDS: ["0"],
  KEEPALIVE_INTERVAL_SECONDS: ["1m"],
  KEEPALIVE_TIMEOUT_SECONDS: ["0"],
  GRPC_UNARY_FAST_PATH: ["off"],
};

/** Variables that accept any value, and why. */
const ANY_VALUE: Partial<Record<VariableName, string>> = {
  JOBS_DATA_DIR: "any path names a directory (created at start if missing)",
};

// If a bad value were accepted, the server would go on to this closed port
// and fail there (exit 6), not with the configuration's exit 2.
const BASE_ENV = { PORT: "0", DATABASE_URL: "postgresql://jobs@127.0.0.1:1/jobs" };

test("every variable has bad-value cases, or a reason why any value is fine", () => {
  const uncovered = Object.keys(VARIABLES).filter((name) => !(name in BAD) && !(name in ANY_VALUE));
  expect(uncovered).toEqual([]);
});

// One process per variable, with its first bad value; the others, and the
// checks across variables, go through loadConfig in this process (cheaper).
const firstBad = Object.entries(BAD).map(([name, values]) => [name as VariableName, values[0]] as const);
const allBad = Object.entries(BAD).flatMap(([name, values]) => values.map((value) => [name as VariableName, value] as const));

/** A bad value's environment: TLS_KEY alone would first fail for the missing TLS_CERT, so it gets a good partner. */
const envWith = (name: VariableName, value: string): Record<string, string> => ({
  ...BASE_ENV,
  [name]: value,
  ...(name === "TLS_KEY" ? { TLS_CERT: PEM } : {}),
});

test.concurrent.each(firstBad)("jobsctl serve with %s=%j: exit 2, one line naming the variable and what it accepts", async (name, value) => {
  const res = await runCli(["serve"], envWith(name, value));
  const lines = res.stderr.trimEnd().split("\n");
  expect({ code: res.code, lines: lines.length, stdout: res.stdout }).toEqual({ code: 2, lines: 1, stdout: "" });
  expect(lines[0]).toContain(name);
  expect(lines[0]).toContain(RULES[name].accepted);
  if (name === "DATABASE_URL") expect(res.stderr).not.toContain("hunter2");
  else expect(lines[0]).toContain(JSON.stringify(value));
});

describe("loadConfig", () => {
  test("an empty environment gives every default", () => {
    const config = loadConfig({});
    expect(config).toEqual({
      host: "127.0.0.1",
      port: 50051,
      databaseUrl: null,
      dataDir: resolve(".data"),
      embeddedPostgresPort: 54329,
      logLevel: "info",
      maxMessageBytes: 4 * 1024 * 1024,
      watchHeartbeatSeconds: 15,
      watchBufferEvents: 1000,
      watchPollIntervalMs: 1000,
      notifyIntervalMs: 20,
      leaseDefaultSeconds: 60,
      reaperIntervalSeconds: 5,
      reaperGraceSeconds: 10,
      reaperBatchSize: 50,
      dbAcquireTimeoutMs: 2000,
      dbQueryTimeoutMs: 30000,
      dbPoolSize: 20,
      jobPayloadMaxBytes: 262144,
      jobMaxBytes: 1048576,
      writeBatchMaxCalls: 100,
      writeBatchesInFlight: 1,
      migrateOnStart: true,
      metricsPort: null,
      metricsHost: "127.0.0.1",
      tokenCacheSeconds: 2,
      shutdownTimeoutSeconds: 30,
      retentionDays: null,
      retentionIntervalSeconds: 60,
      tlsCert: null,
      tlsKey: null,
      consoleEnabled: true,
      maxConnections: 10_000,
      maxStreamsPerConnection: 2000,
      handshakeTimeoutMs: 10_000,
      idleTimeoutSeconds: 300,
      keepAliveIntervalSeconds: 60,
      keepAliveTimeoutSeconds: 20,
      grpcUnaryFastPath: true,
    });
  });

  test("good values are read, trimmed and typed; an empty one counts as unset", () => {
    const config = loadConfig({
      HOST: " 0.0.0.0 ",
      PORT: "0",
      DATABASE_URL: "postgres://jobs:secret@db.internal:5433/jobs?sslmode=require",
      JOBS_DATA_DIR: "/var/lib/jobs",
      LOG_LEVEL: "DEBUG",
      MIGRATE_ON_START: "no",
      CONSOLE_ENABLED: "false",
      METRICS_PORT: "9464",
      RETENTION_DAYS: "30",
      TOKEN_CACHE_SECONDS: "",
      TLS_CERT: PEM,
      TLS_KEY: PEM,
    });
    expect(config).toMatchObject({
      host: "0.0.0.0",
      port: 0,
      databaseUrl: "postgres://jobs:secret@db.internal:5433/jobs?sslmode=require",
      dataDir: "/var/lib/jobs",
      logLevel: "debug",
      migrateOnStart: false,
      consoleEnabled: false,
      metricsPort: 9464,
      retentionDays: 30,
      tokenCacheSeconds: 2,
      tlsCert: PEM,
      tlsKey: PEM,
    });
  });

  test("WRITE_BATCHES_IN_FLIGHT unset: 1 with batching, half of DB_POOL_SIZE with WRITE_BATCH_MAX_CALLS=1 (as before batched writes)", () => {
    expect(loadConfig({}).writeBatchesInFlight).toBe(1);
    expect(loadConfig({ WRITE_BATCH_MAX_CALLS: "1" }).writeBatchesInFlight).toBe(10);
    expect(loadConfig({ WRITE_BATCH_MAX_CALLS: "1", DB_POOL_SIZE: "1" }).writeBatchesInFlight).toBe(1);
    expect(loadConfig({ WRITE_BATCH_MAX_CALLS: "1", WRITE_BATCHES_IN_FLIGHT: "3" }).writeBatchesInFlight).toBe(3);
  });

  test("a bad value is a ConfigError naming the variable, the value and what it accepts", () => {
    expect(() => loadConfig({ WATCH_BUFFER_EVENTS: "lots" })).toThrow(
      new ConfigError('WATCH_BUFFER_EVENTS="lots" is not valid: expected a whole number from 10 to 1000000'),
    );
  });

  test.each(allBad)("%s=%j is a ConfigError naming it and what it accepts", (name, value) => {
    const error = (() => {
      try {
        loadConfig(envWith(name, value));
      } catch (thrown) {
        return thrown;
      }
      throw new Error(`${name}=${value} was accepted`);
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toContain(name);
    expect((error as ConfigError).message).toContain(RULES[name].accepted);
  });

  test.each([
    ["TLS_CERT without TLS_KEY", { TLS_CERT: PEM }, /^TLS_KEY is not set: TLS_CERT and TLS_KEY go together/],
    ["TLS_KEY without TLS_CERT", { TLS_KEY: PEM }, /^TLS_CERT is not set: TLS_CERT and TLS_KEY go together/],
    ["JOB_MAX_BYTES too small for JOB_PAYLOAD_MAX_BYTES", { JOB_PAYLOAD_MAX_BYTES: "1048576", JOB_MAX_BYTES: "1048576" }, /^JOB_MAX_BYTES=1048576 is not valid: expected at least \d+ with JOB_PAYLOAD_MAX_BYTES=1048576/],
    ["WRITE_BATCHES_IN_FLIGHT above DB_POOL_SIZE", { DB_POOL_SIZE: "4", WRITE_BATCHES_IN_FLIGHT: "5" }, /^WRITE_BATCHES_IN_FLIGHT=5 is not valid: expected at most DB_POOL_SIZE \(4\)/],
    ["METRICS_PORT equal to PORT", { PORT: "50999", METRICS_PORT: "50999" }, /^METRICS_PORT=50999 .*other than PORT/],
    ["the renamed TLS_CERT_FILE", { TLS_CERT_FILE: PEM }, /^TLS_CERT_FILE was renamed TLS_CERT: set TLS_CERT/],
    ["the renamed TLS_KEY_FILE", { TLS_KEY_FILE: PEM }, /^TLS_KEY_FILE was renamed TLS_KEY: set TLS_KEY/],
  ] as const)("%s is a ConfigError saying so", (_what, env, message) => {
    expect(() => loadConfig({ ...BASE_ENV, ...env })).toThrow(message);
  });
});
