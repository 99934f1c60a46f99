// The test bundle: a fresh database cloned from the migrated template, a real
// server on a real loopback port, and tokens for every kind of caller. Every
// test file builds its own; nothing is shared between files but PostgreSQL.

import { randomBytes } from "node:crypto";
import pg from "pg";
import { type App, startApp } from "../../src/app.js";
import { generateSecret, hashSecret } from "../../src/auth/tokens.js";
import { loadConfig } from "../../src/config.js";
import type { Principal, Scope } from "../../src/domain/principal.js";
import { createLogger, type Logger } from "../../src/log.js";

export function adminUrl(): string {
  const url = process.env.JOBS_TEST_DATABASE_URL;
  if (!url) throw new Error("JOBS_TEST_DATABASE_URL is not set: run the tests through jest (globalSetup starts PostgreSQL)");
  return url;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** A new database with the schema already migrated; returns its URL. */
export async function freshDatabase(): Promise<string> {
  const name = `jobs_test_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  try {
    await admin.query(`create database ${name} template ${process.env.JOBS_TEST_TEMPLATE ?? "jobs_template"}`);
  } finally {
    await admin.end();
  }
  return withDatabase(adminUrl(), name);
}

export interface TestTokens {
  /** service "test-service", jobs:read + jobs:write */
  readonly service: string;
  /** service "test-reader", jobs:read only */
  readonly reader: string;
  /** service "test-writer", jobs:write only */
  readonly writer: string;
  /** api_user 1 of company 100, both scopes */
  readonly companyA: string;
  /** api_user 2 of company 200, both scopes */
  readonly companyB: string;
}

export interface TestServer {
  readonly app: App;
  readonly port: number;
  /** host:port, for @grpc/grpc-js */
  readonly address: string;
  /** http://host:port, for Connect clients, fetch and buf curl */
  readonly url: string;
  readonly databaseUrl: string;
  readonly tokens: TestTokens;
  /** Lines the server logged (JSON), for tests about logging. */
  readonly logs: string[];
  issueToken(principal: Principal, scopes: Scope[]): Promise<{ secret: string; id: string }>;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Extra environment for the server's config (e.g. WATCH_HEARTBEAT_SECONDS). */
  readonly env?: Record<string, string>;
  /** Reuse a database (e.g. a second replica); default: a fresh one. */
  readonly databaseUrl?: string;
}

export async function startServer(options: StartOptions = {}): Promise<TestServer> {
  const databaseUrl = options.databaseUrl ?? (await freshDatabase());
  const config = loadConfig({
    HOST: "127.0.0.1",
    PORT: "0",
    DATABASE_URL: databaseUrl,
    LOG_LEVEL: "info",
    MIGRATE_ON_START: "false",
    ...options.env,
  });
  const logs: string[] = [];
  const log: Logger = createLogger(config.logLevel, (line) => {
    logs.push(line);
    if (logs.length > 50_000) logs.splice(0, 10_000);
  });
  const app = await startApp(config, log, { devToken: false });
  const issueToken = async (principal: Principal, scopes: Scope[]) => {
    const secret = generateSecret();
    const info = await app.tokens.create(hashSecret(secret), principal, scopes, "test");
    return { secret, id: info.id };
  };
  const both: Scope[] = ["jobs:read", "jobs:write"];
  const tokens: TestTokens = {
    service: (await issueToken({ type: "service", name: "test-service" }, both)).secret,
    reader: (await issueToken({ type: "service", name: "test-reader" }, ["jobs:read"])).secret,
    writer: (await issueToken({ type: "service", name: "test-writer" }, ["jobs:write"])).secret,
    companyA: (await issueToken({ type: "api_user", companyId: "100", userId: "1" }, both)).secret,
    companyB: (await issueToken({ type: "api_user", companyId: "200", userId: "2" }, both)).secret,
  };
  return {
    app,
    port: app.port,
    address: `127.0.0.1:${app.port}`,
    url: app.url,
    databaseUrl,
    tokens,
    logs,
    issueToken,
    stop: () => app.stop(),
  };
}

/** A plain pg client on the test's database, for assertions about what is stored. */
export async function sql<R = Record<string, unknown>>(databaseUrl: string, text: string, params: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return (await client.query(text, params)).rows as R[];
  } finally {
    await client.end();
  }
}
