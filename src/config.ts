// Environment → validated configuration, once, at start. A bad value stops the
// process with a message naming the variable (SPEC §7).

import { resolve } from "node:path";
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
  readonly dbPoolSize: number;
  readonly migrateOnStart: boolean;
  readonly metricsPort: number | null;
  readonly tokenCacheSeconds: number;
  readonly shutdownTimeoutSeconds: number;
  readonly retentionDays: number | null;
  readonly retentionIntervalSeconds: number;
  readonly tlsCertFile: string | null;
  readonly tlsKeyFile: string | null;
}

export class ConfigError extends Error {}

/** Every variable, its default and meaning: the README's configuration table is generated from this. */
export const VARIABLES = {
  HOST: ["127.0.0.1", "Address to listen on."],
  PORT: ["50051", "Port for gRPC, gRPC-Web and Connect (h2c, or TLS when a certificate is set)."],
  DATABASE_URL: ["", "PostgreSQL URL. Unset: an embedded PostgreSQL keeps its data in JOBS_DATA_DIR."],
  JOBS_DATA_DIR: [".data", "Embedded PostgreSQL data and the development token."],
  EMBEDDED_POSTGRES_PORT: ["54329", "Port of the embedded PostgreSQL (127.0.0.1 only); 0 picks a free one."],
  LOG_LEVEL: ["info", "trace, debug, info (one line per RPC), warn, error, fatal or silent."],
  MAX_MESSAGE_BYTES: ["4194304", "Largest request message; larger ones are RESOURCE_EXHAUSTED."],
  WATCH_HEARTBEAT_SECONDS: ["15", "Idle watch streams get a heartbeat this often."],
  WATCH_BUFFER_EVENTS: ["1000", "Events buffered per watch stream; a client further behind is cut off (UNAVAILABLE) and resumes."],
  WATCH_POLL_INTERVAL_MS: ["1000", "Longest delay of a watch event if every notification were lost."],
  NOTIFY_INTERVAL_MS: ["20", "At most one NOTIFY per this interval per process: the longest extra wait of a watcher on another replica."],
  LEASE_DEFAULT_SECONDS: ["60", "Lease of a RunJob that names none."],
  REAPER_INTERVAL_SECONDS: ["5", "How often expired leases are reaped."],
  REAPER_GRACE_SECONDS: ["10", "After the database comes back, wait this long before reaping."],
  REAPER_BATCH_SIZE: ["50", "Expired jobs reaped per transaction."],
  DB_ACQUIRE_TIMEOUT_MS: ["2000", "Longest wait for a database connection before UNAVAILABLE."],
  DB_POOL_SIZE: ["20", "Pooled database connections per process (each process also holds one for LISTEN and one for the health probe)."],
  MIGRATE_ON_START: ["true", "Apply pending migrations when `jobsctl serve` starts."],
  METRICS_PORT: ["", "Serve Prometheus metrics at http://HOST:METRICS_PORT/metrics. Unset: off."],
  TOKEN_CACHE_SECONDS: ["2", "How long a token lookup is cached; a revoked token stops working within this."],
  SHUTDOWN_TIMEOUT_SECONDS: ["30", "On SIGTERM, the longest wait for in-flight calls."],
  RETENTION_DAYS: ["", "Delete finished jobs (and their events) this many days after they finished. Unset: keep forever."],
  RETENTION_INTERVAL_SECONDS: ["60", "How often the retention sweep runs."],
  TLS_CERT_FILE: ["", "PEM certificate chain; with TLS_KEY_FILE, serve TLS instead of h2c."],
  TLS_KEY_FILE: ["", "PEM private key for TLS_CERT_FILE."],
} as const satisfies Record<string, readonly [string, string]>;

type Name = keyof typeof VARIABLES;

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const raw = (name: Name): string => {
    const value = env[name];
    return value === undefined || value.trim() === "" ? VARIABLES[name][0] : value.trim();
  };
  const optional = (name: Name): string | null => raw(name) || null;
  const int = (name: Name, min: number, max: number): number => {
    const text = raw(name);
    const value = Number(text);
    if (!/^-?\d+$/.test(text) || value < min || value > max) {
      throw new ConfigError(`${name} must be a whole number from ${min} to ${max}, got "${text}"`);
    }
    return value;
  };
  const optionalInt = (name: Name, min: number, max: number): number | null => (raw(name) ? int(name, min, max) : null);
  const bool = (name: Name): boolean => {
    const text = raw(name).toLowerCase();
    if (["true", "1", "yes"].includes(text)) return true;
    if (["false", "0", "no"].includes(text)) return false;
    throw new ConfigError(`${name} must be true or false, got "${text}"`);
  };

  const logLevel = raw("LOG_LEVEL").toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")}, got "${logLevel}"`);
  }
  const databaseUrl = optional("DATABASE_URL");
  if (databaseUrl !== null && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError("DATABASE_URL must be a postgres:// or postgresql:// URL");
  }
  const tlsCertFile = optional("TLS_CERT_FILE");
  const tlsKeyFile = optional("TLS_KEY_FILE");
  if ((tlsCertFile === null) !== (tlsKeyFile === null)) {
    throw new ConfigError("TLS_CERT_FILE and TLS_KEY_FILE must be set together");
  }

  return {
    host: raw("HOST"),
    port: int("PORT", 0, 65535),
    databaseUrl,
    dataDir: resolve(raw("JOBS_DATA_DIR")),
    embeddedPostgresPort: int("EMBEDDED_POSTGRES_PORT", 0, 65535),
    logLevel: logLevel as LogLevel,
    maxMessageBytes: int("MAX_MESSAGE_BYTES", 1024, 1 << 30),
    watchHeartbeatSeconds: int("WATCH_HEARTBEAT_SECONDS", 1, 3600),
    watchBufferEvents: int("WATCH_BUFFER_EVENTS", 10, 1_000_000),
    watchPollIntervalMs: int("WATCH_POLL_INTERVAL_MS", 10, 60_000),
    notifyIntervalMs: int("NOTIFY_INTERVAL_MS", 0, 10_000),
    leaseDefaultSeconds: int("LEASE_DEFAULT_SECONDS", 1, 86_400),
    reaperIntervalSeconds: int("REAPER_INTERVAL_SECONDS", 1, 3600),
    reaperGraceSeconds: int("REAPER_GRACE_SECONDS", 0, 3600),
    reaperBatchSize: int("REAPER_BATCH_SIZE", 1, 10_000),
    dbAcquireTimeoutMs: int("DB_ACQUIRE_TIMEOUT_MS", 1, 600_000),
    dbPoolSize: int("DB_POOL_SIZE", 1, 1000),
    migrateOnStart: bool("MIGRATE_ON_START"),
    metricsPort: optionalInt("METRICS_PORT", 1, 65535),
    tokenCacheSeconds: int("TOKEN_CACHE_SECONDS", 0, 5),
    shutdownTimeoutSeconds: int("SHUTDOWN_TIMEOUT_SECONDS", 0, 3600),
    retentionDays: optionalInt("RETENTION_DAYS", 1, 36_500),
    retentionIntervalSeconds: int("RETENTION_INTERVAL_SECONDS", 1, 86_400),
    tlsCertFile,
    tlsKeyFile,
  };
}
