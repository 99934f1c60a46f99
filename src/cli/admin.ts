// jobsctl migrate and jobsctl tokens: work directly on the server's database.

import type { MikroORM } from "@mikro-orm/postgresql";
import { type Command, Option } from "commander";
import { generateSecret, hashSecret } from "../auth/tokens.js";
import { type Principal, SCOPES, type Scope } from "../domain/principal.js";
import type { TokenInfo, TokenStore } from "../store/token-store.js";
import { CliFailure, EXIT, UsageError } from "./exit-codes.js";
import { table } from "./table.js";
import { examples } from "./help.js";

/**
 * Opens the database the way the server would, for the length of one command.
 * The server's modules load here, not at start, so client commands start fast.
 */
async function withDatabase<T>(work: (orm: MikroORM, url: string) => Promise<T>): Promise<T> {
  const [{ openDatabase }, { loadConfig }, { createLogger }, { openOrm }] = await Promise.all([
    import("../database.js"),
    import("../config.js"),
    import("../log.js"),
    import("../store/orm.js"),
  ]);
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
    const [{ migrate }, { TokenStore }] = await Promise.all([import("../store/orm.js"), import("../store/token-store.js")]);
    await migrate(orm, url);
    return work(new TokenStore(orm));
  });
}

export function registerAdminCommands(program: Command): void {
  examples(
    program
      .command("migrate")
      .summary("apply pending database migrations and exit")
      .description("Apply pending database migrations to DATABASE_URL (or the embedded database in JOBS_DATA_DIR) and exit.")
      .helpGroup("Server:"),
    ["jobsctl migrate", "DATABASE_URL=postgres://jobs@db/jobs jobsctl migrate"],
  ).action(async () => {
    const { migrate } = await import("../store/orm.js");
    const applied = await withDatabase((orm, url) => migrate(orm, url));
    process.stdout.write(applied.length ? `applied ${applied.join(", ")}\n` : "database is up to date\n");
  });

  const tokens = examples(
    program
      .command("tokens")
      .summary("create, list and revoke API tokens")
      .description(
        "Create, list and revoke API tokens, on the server's database: DATABASE_URL, or the embedded one in JOBS_DATA_DIR (used in place if a server is running, started for the command otherwise).",
      )
      .helpGroup("Tokens:"),
    [
      "jobsctl tokens create --principal service --name scheduler --scopes jobs:read,jobs:write",
      "jobsctl tokens create --principal api_user --company 42 --user 7 --scopes jobs:read",
      "jobsctl tokens list",
      "jobsctl tokens revoke 5f0c…",
    ],
  );

  examples(
    tokens
      .command("create")
      .description("make a token and print it, alone, on stdout (it is shown only once)")
      .addOption(new Option("--principal <type>", "who the token acts as").choices(["service", "api_user"]).makeOptionMandatory())
      .option("--name <name>", "the service's name (--principal service)")
      .option("--company <id>", "the user's company (--principal api_user)")
      .option("--user <id>", "the user's id (--principal api_user)")
      .requiredOption("--scopes <scopes>", `comma-separated: ${SCOPES.join(", ")}`)
      .option("--description <text>", "a note for tokens list"),
    [
      "jobsctl tokens create --principal service --name scheduler --scopes jobs:read,jobs:write",
      "jobsctl tokens create --principal api_user --company 42 --user 7 --scopes jobs:read",
      "export JOBS_TOKEN=$(jobsctl tokens create --principal service --name me --scopes jobs:read,jobs:write)",
    ],
  ).action(async (opts: TokenCreateOptions) => {
    const principal = parsePrincipal(opts);
    const scopes = parseScopes(opts.scopes);
    const secret = generateSecret();
    await withTokens((store) => store.create(hashSecret(secret), principal, scopes, opts.description ?? ""));
    process.stdout.write(`${secret}\n`);
  });

  examples(
    tokens
      .command("list")
      .description("every token's id, principal, scopes and dates (never the secret)")
      .option("--json", "print JSON for scripts instead of a table"),
    ["jobsctl tokens list", "jobsctl tokens list --json | jq -r '.[] | select(.revokedAt == null) | .id'"],
  ).action(async (opts: { json?: boolean }) => {
    const list = await withTokens((store) => store.list());
    process.stdout.write(opts.json ? `${JSON.stringify(list.map(tokenJson), null, 2)}\n` : formatTokens(list));
  });

  examples(
    tokens
      .command("revoke <id>")
      .description("stop a token working (within TOKEN_CACHE_SECONDS on every replica)"),
    ["jobsctl tokens revoke 5f0c2a1e-…   # the id from jobsctl tokens list"],
  ).action(async (id: string) => {
    if (!/^[0-9a-f-]{36}$/i.test(id)) throw new UsageError("tokens revoke needs the token's id (from jobsctl tokens list)");
    const revoked = await withTokens((store) => store.revoke(id.toLowerCase()));
    if (!revoked) throw new CliFailure(`no live token with id ${id} (jobsctl tokens list shows them)`, EXIT.notFound);
    process.stdout.write(`revoked ${id}\n`);
  });
}

interface TokenCreateOptions {
  principal: "service" | "api_user";
  name?: string;
  company?: string;
  user?: string;
  scopes: string;
  description?: string;
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
  return table(["ID", "PRINCIPAL", "SCOPES", "CREATED", "STATUS", "DESCRIPTION"], rows);
}
