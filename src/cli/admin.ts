// jobsctl migrate and jobsctl tokens: work directly on the server's database.

import { parseArgs } from "node:util";
import type { MikroORM } from "@mikro-orm/postgresql";
import { openDatabase } from "../app.js";
import { generateSecret, hashSecret } from "../auth/tokens.js";
import { loadConfig } from "../config.js";
import { type Principal, SCOPES, type Scope } from "../domain/principal.js";
import { createLogger } from "../log.js";
import { migrate, openOrm } from "../store/orm.js";
import { type TokenInfo, TokenStore } from "../store/token-store.js";
import { EXIT, UsageError } from "./exit-codes.js";

export const TOKENS_HELP = `  tokens create --principal service --name NAME --scopes jobs:read,jobs:write [--description TEXT]
  tokens create --principal api_user --company N --user N --scopes jobs:read[,jobs:write]
                              print a new token, alone, on stdout (it is shown only once)
  tokens list [--json]        every token's id, principal, scopes and dates (never the secret)
  tokens revoke ID            stop a token working (within TOKEN_CACHE_SECONDS on every replica)
`;

/** Opens the database the way the server would, for the length of one command. */
async function withDatabase<T>(work: (orm: MikroORM, url: string) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const log = createLogger(config.logLevel === "info" ? "warn" : config.logLevel, (line) => process.stderr.write(line));
  const { url, embedded } = await openDatabase(config, log, true);
  try {
    const orm = await openOrm({ databaseUrl: url, poolSize: 2, acquireTimeoutMs: config.dbAcquireTimeoutMs });
    try {
      return await work(orm, url);
    } finally {
      await orm.close(true);
    }
  } finally {
    await embedded?.stop();
  }
}

/** Tokens on a migrated database: `tokens create` may be the first command on a fresh one. */
function withTokens<T>(work: (tokens: TokenStore) => Promise<T>): Promise<T> {
  return withDatabase(async (orm, url) => {
    await migrate(orm, url);
    return work(new TokenStore(orm));
  });
}

export async function runMigrate(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { help: { type: "boolean", short: "h" } } });
  if (values.help) {
    process.stdout.write("Usage: jobsctl migrate\n\nApplies pending migrations to DATABASE_URL (or the embedded database) and exits.\n");
    return EXIT.ok;
  }
  const applied = await withDatabase((orm, url) => migrate(orm, url));
  process.stdout.write(applied.length ? `applied ${applied.join(", ")}\n` : "database is up to date\n");
  return EXIT.ok;
}

export async function runTokens(args: string[]): Promise<number> {
  const [action, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      principal: { type: "string" },
      name: { type: "string" },
      company: { type: "string" },
      user: { type: "string" },
      scopes: { type: "string" },
      description: { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help || action === undefined) {
    // Asked for: stdout. A usage error: stderr, so scripts capturing stdout see nothing.
    (values.help ? process.stdout : process.stderr).write(`Usage:\n${TOKENS_HELP}`);
    return values.help ? EXIT.ok : EXIT.usage;
  }
  switch (action) {
    case "create": {
      const principal = parsePrincipal(values);
      const scopes = parseScopes(values.scopes);
      const secret = generateSecret();
      await withTokens((tokens) => tokens.create(hashSecret(secret), principal, scopes, values.description ?? ""));
      process.stdout.write(`${secret}\n`);
      return EXIT.ok;
    }
    case "list": {
      const list = await withTokens((tokens) => tokens.list());
      process.stdout.write(values.json ? `${JSON.stringify(list.map(tokenJson), null, 2)}\n` : formatTokens(list));
      return EXIT.ok;
    }
    case "revoke": {
      const [id] = positionals;
      if (!id || !/^[0-9a-f-]{36}$/i.test(id)) throw new UsageError("tokens revoke needs the token's id (from `jobsctl tokens list`)");
      const revoked = await withTokens((tokens) => tokens.revoke(id.toLowerCase()));
      if (!revoked) {
        process.stderr.write(`jobsctl: no live token with id ${id}\n`);
        return EXIT.notFound;
      }
      process.stdout.write(`revoked ${id}\n`);
      return EXIT.ok;
    }
    default:
      throw new UsageError(`unknown tokens action "${action}"; use create, list or revoke`);
  }
}

function parsePrincipal(values: { principal?: string; name?: string; company?: string; user?: string }): Principal {
  if (values.principal === "service") {
    if (!values.name || !/^[A-Za-z0-9_.:-]{1,128}$/.test(values.name)) {
      throw new UsageError("--principal service needs --name NAME (letters, digits, _ . : -)");
    }
    return { type: "service", name: values.name };
  }
  if (values.principal === "api_user") {
    const positive = (flag: string, value: string | undefined) => {
      if (!value || !/^[1-9]\d{0,18}$/.test(value)) throw new UsageError(`--principal api_user needs --${flag} N (a positive integer)`);
      return value;
    };
    return { type: "api_user", companyId: positive("company", values.company), userId: positive("user", values.user) };
  }
  throw new UsageError("--principal must be service or api_user");
}

function parseScopes(text: string | undefined): Scope[] {
  if (!text) throw new UsageError(`--scopes is required: a comma-separated list of ${SCOPES.join(", ")}`);
  const scopes = text.split(",").map((s) => s.trim());
  for (const scope of scopes) {
    if (!(SCOPES as readonly string[]).includes(scope)) throw new UsageError(`unknown scope "${scope}"; use ${SCOPES.join(", ")}`);
  }
  return [...new Set(scopes)] as Scope[];
}

function describe(p: Principal): string {
  return p.type === "service" ? `service:${p.name}` : `api_user:company=${p.companyId},user=${p.userId}`;
}

function tokenJson(t: TokenInfo) {
  return {
    id: t.id,
    principal: t.principal,
    scopes: t.scopes,
    description: t.description,
    createdAt: t.createdAt.toISOString(),
    revokedAt: t.revokedAt?.toISOString() ?? null,
  };
}

function formatTokens(list: TokenInfo[]): string {
  if (list.length === 0) return "no tokens\n";
  const rows = list.map((t) => [
    t.id,
    describe(t.principal),
    t.scopes.join(","),
    t.createdAt.toISOString(),
    t.revokedAt ? `revoked ${t.revokedAt.toISOString()}` : "active",
    t.description,
  ]);
  const header = ["ID", "PRINCIPAL", "SCOPES", "CREATED", "STATUS", "DESCRIPTION"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  return [header, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd()).join("\n") + "\n";
}
