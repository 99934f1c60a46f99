// Environment → validated configuration, once, at start (docs/contract.md §7). Each
// variable has a default, a meaning and a zod schema with the values it
// accepts; a bad value stops the process with one line naming the variable,
// the value and what would be accepted. VARIABLES and RULES are the single
// source of the configuration table in docs/configuration.md (`configTable()`, checked by
// test/e2e/readme.test.ts).

import { accessSync, constants, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { z } from "zod";
import { smallestJobLimit } from "./domain/job-size.js";
import { LOG_LEVELS, type LogLevel } from "./log.js";

export interface Config {
  readonly host: string;
  readonly port: number;
  /** null: run an embedded PostgreSQL in `dataDir`. */
  readonly databaseUrl: string | null;
  readonly dataDir: string;
  readonly embeddedPostgresPort: number;
  readonly logLevel: LogLevel;
  readonly maxMessageBytes: number;
  readonly watchHeartbeatSeconds: number;
  readonly watchBufferEvents: number;
  readonly watchPollIntervalMs: number;
  readonly notifyIntervalMs: number;
  readonly leaseDefaultSeconds: number;
  readonly reaperIntervalSeconds: number;
  readonly reaperGraceSeconds: number;
  readonly reaperBatchSize: number;
  readonly dbAcquireTimeoutMs: number;
  /** 0: no limit. */
  readonly dbQueryTimeoutMs: number;
  readonly dbPoolSize: number;
  readonly jobPayloadMaxBytes: number;
  readonly jobMaxBytes: number;
  readonly writeBatchMaxCalls: number;
  readonly writeBatchesInFlight: number;
  readonly migrateOnStart: boolean;
  readonly metricsPort: number | null;
  readonly metricsHost: string;
  readonly tokenCacheSeconds: number;
  readonly shutdownTimeoutSeconds: number;
  readonly retentionDays: number | null;
  readonly retentionIntervalSeconds: number;
  /** PEM files; both set (TLS) or both null (h2c). */
  readonly tlsCert: string | null;
  readonly tlsKey: string | null;
  readonly consoleEnabled: boolean;
  readonly maxConnections: number;
  readonly maxStreamsPerConnection: number;
  readonly handshakeTimeoutMs: number;
  readonly idleTimeoutSeconds: number;
  readonly keepAliveIntervalSeconds: number;
  readonly keepAliveTimeoutSeconds: number;
  readonly grpcUnaryFastPath: boolean;
}

export class ConfigError extends Error {}

/** Every variable, its default and meaning ([default, meaning]; "" means unset). */
export const VARIABLES = {
  HOST: ["127.0.0.1", "Address to listen on for the API (and the console)."],
  PORT: ["50051", "Port for gRPC, gRPC-Web and Connect (h2c, or TLS with TLS_CERT and TLS_KEY); 0 picks a free one."],
  DATABASE_URL: ["", "PostgreSQL URL. Unset: an embedded PostgreSQL keeps its data in JOBS_DATA_DIR."],
  JOBS_DATA_DIR: [".data", "Embedded PostgreSQL data and the development token."],
  EMBEDDED_POSTGRES_PORT: ["54329", "Port of the embedded PostgreSQL (127.0.0.1 only); 0 picks a free one."],
  LOG_LEVEL: ["info", "Least severe log level written; info writes one line per RPC."],
  MAX_MESSAGE_BYTES: ["4194304", "Largest request message; larger ones are RESOURCE_EXHAUSTED."],
  WATCH_HEARTBEAT_SECONDS: ["15", "Idle watch streams get a heartbeat this often."],
  WATCH_BUFFER_EVENTS: ["1000", "Events buffered per watch stream; a client further behind is cut off (UNAVAILABLE) and resumes."],
  WATCH_POLL_INTERVAL_MS: ["1000", "Longest delay of a watch event if every notification were lost."],
  NOTIFY_INTERVAL_MS: ["20", "At most one NOTIFY per this interval per process: the longest extra wait of a watcher on another replica."],
  LEASE_DEFAULT_SECONDS: ["60", "Lease of a RunJob that names none."],
  REAPER_INTERVAL_SECONDS: ["5", "How often expired leases are reaped."],
  REAPER_GRACE_SECONDS: ["10", "After the database comes back, wait this long before reaping."],
  REAPER_BATCH_SIZE: ["50", "Expired jobs the reaper looks for at a time (each expiry is then a write call, batched with the others)."],
  DB_ACQUIRE_TIMEOUT_MS: ["2000", "Longest wait for a database connection before UNAVAILABLE (at start-up: before exiting 6)."],
  DB_QUERY_TIMEOUT_MS: ["30000", "Longest wait for PostgreSQL to answer a call's statement before UNAVAILABLE (the connection is dropped): a network that silently stops delivering cannot hang calls. Not applied to migrations. 0: no limit."],
  DB_POOL_SIZE: ["20", "Pooled database connections per process (each process also holds one for LISTEN and one for the health probe)."],
  JOB_PAYLOAD_MAX_BYTES: ["262144", "Most an input, a result or a failure's diagnostic may take (as sent); larger is INVALID_ARGUMENT FIELD_TOO_LARGE."],
  JOB_MAX_BYTES: ["1048576", "Most a job may carry, failures included, so that any reply holding it fits the 4 MiB stock gRPC clients accept: RunJob does not start another attempt on a job that could outgrow it (FAILED_PRECONDITION JOB_FULL)."],
  WRITE_BATCH_MAX_CALLS: ["100", "Most write calls (creates, transitions, heartbeats, lease expiries) one transaction carries; calls that arrive while a batch is written join the next. 1: a transaction per call."],
  WRITE_BATCHES_IN_FLIGHT: ["", "Write transactions in flight at once per process (each holds a pooled connection); at most DB_POOL_SIZE. Unset: 1, which makes the largest batches and costs the database least; or, with WRITE_BATCH_MAX_CALLS=1, half of DB_POOL_SIZE (a transaction per call, many at once: the service before batched writes). More let other writes go on while one transaction waits on a row lock or a distant database."],
  MIGRATE_ON_START: ["true", "Apply pending migrations when `jobsctl serve` starts."],
  METRICS_PORT: ["", "Serve Prometheus metrics at http://METRICS_HOST:METRICS_PORT/metrics (plain HTTP). Unset: off."],
  METRICS_HOST: ["127.0.0.1", "Address the metrics port listens on, apart from HOST: the API may face clients while metrics stay on loopback (or a private network)."],
  TOKEN_CACHE_SECONDS: ["2", "How long a token lookup is cached; a revoked token stops working within this (its open watch streams end within this, or 1 s if 0)."],
  SHUTDOWN_TIMEOUT_SECONDS: ["30", "On SIGTERM, the longest wait for in-flight calls."],
  RETENTION_DAYS: ["", "Delete finished jobs (and their events) this many days after they finished. Unset: keep forever."],
  RETENTION_INTERVAL_SECONDS: ["60", "How often the retention sweep runs."],
  TLS_CERT: ["", "PEM certificate chain file; with TLS_KEY, serve TLS instead of h2c."],
  TLS_KEY: ["", "PEM private key file for TLS_CERT."],
  CONSOLE_ENABLED: ["true", "Serve the operators' console (a web page of the jobs, live) at / on PORT; false answers 404 there."],
  MAX_CONNECTIONS: ["10000", "Open client connections at most (HTTP/2 and HTTP/1.1 together); more are closed as they arrive. Keep it under the process's open-file limit (ulimit -n)."],
  MAX_STREAMS_PER_CONNECTION: ["2000", "Concurrent calls and watch streams on one HTTP/2 connection (its SETTINGS say so): a client queues calls beyond it, and one that opens more anyway loses the connection."],
  HANDSHAKE_TIMEOUT_MS: ["10000", "A connection that has not finished its handshake within this is closed: TLS, the first bytes, HTTP/2's preface and SETTINGS, or HTTP/1.1's request headers."],
  IDLE_TIMEOUT_SECONDS: ["300", "An HTTP/2 connection with no open call or stream for this long is closed (GOAWAY: clients reconnect on their next call); an HTTP/1.1 one after this or 5 s between requests, whichever is shorter."],
  KEEPALIVE_INTERVAL_SECONDS: ["60", "How often every HTTP/2 connection is pinged, so that a peer that has gone (its machine, its network) is found."],
  KEEPALIVE_TIMEOUT_SECONDS: ["20", "A connection whose peer does not answer a ping within this is closed, ending its calls and streams."],
  GRPC_UNARY_FAST_PATH: ["true", "Serve plain unary gRPC calls (HTTP/2, binary, uncompressed) on the server's own short path instead of Connect's per-call stream pipeline; false sends every call through Connect."],
} as const satisfies Record<string, readonly [string, string]>;

export type VariableName = keyof typeof VARIABLES;

interface Rule<T> {
  /** Parses the (trimmed, defaulted) text. */
  readonly schema: z.ZodType<T, string>;
  /** What the variable accepts, for the error message and the README. */
  readonly accepted: string;
  /** Never echo the value (it may hold a password). */
  readonly secret?: boolean;
}

const rule = <T>(schema: z.ZodType<T, string>, accepted: string, secret = false): Rule<T> => ({ schema, accepted, secret });

const whole = (min: number, max: number) =>
  rule(
    z
      .string()
      .regex(/^-?\d+$/)
      .transform(Number)
      .pipe(z.number().int().min(min).max(max)),
    `a whole number from ${min} to ${max}`,
  );

const unsetOr = <T>(inner: Rule<T>): Rule<T | null> =>
  rule(z.union([z.literal("").transform(() => null), inner.schema]), `unset, or ${inner.accepted}`, inner.secret);

const bool = rule(
  z.stringbool({ truthy: ["true", "1", "yes"], falsy: ["false", "0", "no"] }),
  "true or false (also 1/0, yes/no)",
);

const pemFile = (what: string) =>
  rule(
    z.string().superRefine((path, ctx) => {
      const problem = pemProblem(path);
      if (problem) ctx.addIssue({ code: "custom", message: problem });
    }),
    `the path of a readable PEM file holding ${what}`,
  );

function pemProblem(path: string): string | null {
  try {
    accessSync(path, constants.R_OK);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : "cannot read it";
  }
  try {
    if (!readFileSync(path, "latin1").includes("-----BEGIN ")) return "not PEM: it has no -----BEGIN line";
  } catch {
    return "cannot read it (a directory?)";
  }
  return null;
}

export const RULES = {
  HOST: rule(z.union([z.ipv4(), z.ipv6(), z.hostname()]), "an IP address or host name, e.g. 127.0.0.1, 0.0.0.0, ::"),
  PORT: whole(0, 65535),
  DATABASE_URL: unsetOr(
    rule(
      z.string().refine((url) => /^postgres(ql)?:\/\//.test(url) && URL.canParse(url), { error: "not a PostgreSQL URL" }),
      "a postgres:// or postgresql:// URL, e.g. postgresql://user:password@host:5432/jobs",
      true,
    ),
  ),
  JOBS_DATA_DIR: rule(z.string().transform((dir) => resolve(dir)), "any directory path"),
  EMBEDDED_POSTGRES_PORT: whole(0, 65535),
  LOG_LEVEL: rule(z.string().toLowerCase().pipe(z.enum(LOG_LEVELS)), LOG_LEVELS.join(", ")),
  MAX_MESSAGE_BYTES: whole(1024, 1 << 30),
  WATCH_HEARTBEAT_SECONDS: whole(1, 3600),
  WATCH_BUFFER_EVENTS: whole(10, 1_000_000),
  WATCH_POLL_INTERVAL_MS: whole(10, 60_000),
  NOTIFY_INTERVAL_MS: whole(0, 10_000),
  LEASE_DEFAULT_SECONDS: whole(1, 86_400),
  REAPER_INTERVAL_SECONDS: whole(1, 3600),
  REAPER_GRACE_SECONDS: whole(0, 3600),
  REAPER_BATCH_SIZE: whole(1, 10_000),
  DB_ACQUIRE_TIMEOUT_MS: whole(1, 600_000),
  DB_QUERY_TIMEOUT_MS: whole(0, 3_600_000),
  DB_POOL_SIZE: whole(1, 1000),
  JOB_PAYLOAD_MAX_BYTES: whole(1024, 1024 * 1024),
  JOB_MAX_BYTES: whole(64 * 1024, 2 * 1024 * 1024),
  WRITE_BATCH_MAX_CALLS: whole(1, 10_000),
  WRITE_BATCHES_IN_FLIGHT: unsetOr(whole(1, 1000)),
  MIGRATE_ON_START: bool,
  METRICS_PORT: unsetOr(whole(1, 65535)),
  METRICS_HOST: rule(z.union([z.ipv4(), z.ipv6(), z.hostname()]), "an IP address or host name, e.g. 127.0.0.1, 10.0.0.5, 0.0.0.0"),
  TOKEN_CACHE_SECONDS: whole(0, 5),
  SHUTDOWN_TIMEOUT_SECONDS: whole(0, 3600),
  RETENTION_DAYS: unsetOr(whole(1, 36_500)),
  RETENTION_INTERVAL_SECONDS: whole(1, 86_400),
  TLS_CERT: unsetOr(pemFile("a certificate")),
  TLS_KEY: unsetOr(pemFile("a private key")),
  CONSOLE_ENABLED: bool,
  MAX_CONNECTIONS: whole(1, 1_000_000),
  MAX_STREAMS_PER_CONNECTION: whole(1, 1_000_000),
  HANDSHAKE_TIMEOUT_MS: whole(100, 600_000),
  IDLE_TIMEOUT_SECONDS: whole(1, 86_400),
  KEEPALIVE_INTERVAL_SECONDS: whole(1, 86_400),
  KEEPALIVE_TIMEOUT_SECONDS: whole(1, 3600),
  GRPC_UNARY_FAST_PATH: bool,
} satisfies Record<VariableName, Rule<unknown>>;

type Value<N extends VariableName> = (typeof RULES)[N] extends Rule<infer T> ? T : never;

/** Variables this service used to read; setting one is an error, not a silent fallback to plaintext. */
const RENAMED: Record<string, VariableName> = { TLS_CERT_FILE: "TLS_CERT", TLS_KEY_FILE: "TLS_KEY" };

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  for (const [old, now] of Object.entries(RENAMED)) {
    if (env[old]?.trim()) throw new ConfigError(`${old} was renamed ${now}: set ${now} instead (and unset ${old})`);
  }
  const get = <N extends VariableName>(name: N): Value<N> => {
    const given = env[name]?.trim();
    const text = given ? given : VARIABLES[name][0];
    const { schema, accepted, secret } = RULES[name] as Rule<Value<N>>;
    const parsed = schema.safeParse(text);
    if (parsed.success) return parsed.data;
    const detail = parsed.error.issues.find((issue) => issue.code === "custom" && issue.message)?.message;
    const shown = secret ? `${name} (value not shown: it may hold a password)` : `${name}=${JSON.stringify(text)}`;
    throw new ConfigError(`${shown} is not valid${detail ? ` (${detail})` : ""}: expected ${accepted}`);
  };

  const config: Config = {
    host: get("HOST"),
    port: get("PORT"),
    databaseUrl: get("DATABASE_URL"),
    dataDir: get("JOBS_DATA_DIR"),
    embeddedPostgresPort: get("EMBEDDED_POSTGRES_PORT"),
    logLevel: get("LOG_LEVEL"),
    maxMessageBytes: get("MAX_MESSAGE_BYTES"),
    watchHeartbeatSeconds: get("WATCH_HEARTBEAT_SECONDS"),
    watchBufferEvents: get("WATCH_BUFFER_EVENTS"),
    watchPollIntervalMs: get("WATCH_POLL_INTERVAL_MS"),
    notifyIntervalMs: get("NOTIFY_INTERVAL_MS"),
    leaseDefaultSeconds: get("LEASE_DEFAULT_SECONDS"),
    reaperIntervalSeconds: get("REAPER_INTERVAL_SECONDS"),
    reaperGraceSeconds: get("REAPER_GRACE_SECONDS"),
    reaperBatchSize: get("REAPER_BATCH_SIZE"),
    dbAcquireTimeoutMs: get("DB_ACQUIRE_TIMEOUT_MS"),
    dbQueryTimeoutMs: get("DB_QUERY_TIMEOUT_MS"),
    dbPoolSize: get("DB_POOL_SIZE"),
    jobPayloadMaxBytes: get("JOB_PAYLOAD_MAX_BYTES"),
    jobMaxBytes: get("JOB_MAX_BYTES"),
    writeBatchMaxCalls: get("WRITE_BATCH_MAX_CALLS"),
    writeBatchesInFlight: get("WRITE_BATCHES_IN_FLIGHT") ?? defaultBatchesInFlight(get("WRITE_BATCH_MAX_CALLS"), get("DB_POOL_SIZE")),
    migrateOnStart: get("MIGRATE_ON_START"),
    metricsPort: get("METRICS_PORT"),
    metricsHost: get("METRICS_HOST"),
    tokenCacheSeconds: get("TOKEN_CACHE_SECONDS"),
    shutdownTimeoutSeconds: get("SHUTDOWN_TIMEOUT_SECONDS"),
    retentionDays: get("RETENTION_DAYS"),
    retentionIntervalSeconds: get("RETENTION_INTERVAL_SECONDS"),
    tlsCert: get("TLS_CERT"),
    tlsKey: get("TLS_KEY"),
    consoleEnabled: get("CONSOLE_ENABLED"),
    maxConnections: get("MAX_CONNECTIONS"),
    maxStreamsPerConnection: get("MAX_STREAMS_PER_CONNECTION"),
    handshakeTimeoutMs: get("HANDSHAKE_TIMEOUT_MS"),
    idleTimeoutSeconds: get("IDLE_TIMEOUT_SECONDS"),
    keepAliveIntervalSeconds: get("KEEPALIVE_INTERVAL_SECONDS"),
    keepAliveTimeoutSeconds: get("KEEPALIVE_TIMEOUT_SECONDS"),
    grpcUnaryFastPath: get("GRPC_UNARY_FAST_PATH"),
  };
  if ((config.tlsCert === null) !== (config.tlsKey === null)) {
    const missing = config.tlsCert === null ? "TLS_CERT" : "TLS_KEY";
    throw new ConfigError(`${missing} is not set: TLS_CERT and TLS_KEY go together (set both for TLS, neither for h2c)`);
  }
  const smallest = smallestJobLimit(config.jobPayloadMaxBytes);
  if (config.jobMaxBytes < smallest) {
    throw new ConfigError(
      `JOB_MAX_BYTES=${config.jobMaxBytes} is not valid: expected at least ${smallest} with JOB_PAYLOAD_MAX_BYTES=${config.jobPayloadMaxBytes}, so that a job holding the largest input can still record its result or failure`,
    );
  }
  if (config.writeBatchesInFlight > config.dbPoolSize) {
    throw new ConfigError(
      `WRITE_BATCHES_IN_FLIGHT=${config.writeBatchesInFlight} is not valid: expected at most DB_POOL_SIZE (${config.dbPoolSize}), since each holds a pooled connection`,
    );
  }
  if (config.metricsPort !== null && config.metricsPort === config.port) {
    throw new ConfigError(`METRICS_PORT=${config.metricsPort} is not valid: expected a port other than PORT's`);
  }
  return config;
}

/**
 * One write transaction at a time when batching; with batching off
 * (WRITE_BATCH_MAX_CALLS=1), a transaction per call and many at once, as the
 * service wrote before batched writes.
 */
function defaultBatchesInFlight(batchMaxCalls: number, poolSize: number): number {
  return batchMaxCalls === 1 ? Math.max(1, Math.floor(poolSize / 2)) : 1;
}

/** The configuration table of docs/configuration.md (between its config:begin and config:end markers). */
export function configTable(): string {
  const cell = (text: string) => text.replaceAll("|", "\\|");
  const rows = (Object.keys(VARIABLES) as VariableName[]).map((name) => {
    const [defaultValue, meaning] = VARIABLES[name];
    return `| \`${name}\` | ${defaultValue ? `\`${defaultValue}\`` : "—"} | ${cell(RULES[name].accepted)} | ${cell(meaning)} |`;
  });
  return ["| variable | default | accepted | meaning |", "|---|---|---|---|", ...rows].join("\n");
}
