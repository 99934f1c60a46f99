// Opens MikroORM on PostgreSQL and applies migrations. One ORM (one pool) per
// process; requests fork an EntityManager from it.

import { Migrator } from "@mikro-orm/migrations";
import { MikroORM } from "@mikro-orm/postgresql";
import pg from "pg";
import { ENTITIES } from "./entities.js";
import { MIGRATIONS } from "./migrations/index.js";
import { NamingClient } from "./named-statements.js";
import { isConnectionError } from "./sql.js";

export interface OrmOptions {
  readonly databaseUrl: string;
  readonly poolSize: number;
  /** How long a call waits for a pooled connection before it fails UNAVAILABLE (docs/contract.md §11). */
  readonly acquireTimeoutMs: number;
  /**
   * How long a statement may wait for its reply, in ms (0 or unset: no limit).
   * On expiry the connection is dropped, which fails every statement on it: a
   * network that silently stops delivering leaves it useless anyway.
   */
  readonly queryTimeoutMs?: number;
  /** Receives the connection pool once it exists (for pool metrics). */
  readonly onPool?: (pool: pg.Pool) => void;
}

export async function openOrm(options: OrmOptions): Promise<MikroORM> {
  return MikroORM.init({
    entities: ENTITIES,
    clientUrl: options.databaseUrl,
    extensions: [Migrator],
    migrations: {
      migrationsList: MIGRATIONS,
      path: "src/store/migrations",
      snapshot: false,
      silent: true,
    },
    pool: { min: 0, max: options.poolSize },
    driverOptions: {
      // The URL's query (sslmode, options …) reaches pg only through connectionString.
      connectionString: options.databaseUrl,
      connectionTimeoutMillis: options.acquireTimeoutMs,
      // A transition holds a row lock; never let a stuck client hold it forever.
      idle_in_transaction_session_timeout: 30_000,
      application_name: "jobs",
      Client: NamingClient,
      // pg drops a connection whose statement outlives query_timeout only in pipeline mode; otherwise the
      // connection would go back to the pool still waiting for that reply. The store sends one statement
      // at a time either way.
      pipeline: true,
      query_timeout: options.queryTimeoutMs || undefined,
      // A named statement keeps the plan it was given on its connection until the table's statistics
      // change; one planned when the tables were nearly empty (a fresh database) scans them whole. A
      // connection that lives at most ten minutes bounds how long such a plan can outlast its reason.
      maxLifetimeSeconds: 600,
      onPoolCreated: options.onPool,
    },
    allowGlobalContext: false,
    debug: false,
    // The hot path uses its own statements; discovery must not touch the database.
    ensureDatabase: false,
  });
}

/** Migrations hold this advisory lock so replicas starting together apply them one at a time. */
const MIGRATION_LOCK_KEY = 0x6a6f6273; // "jobs"

/** A migration that failed to apply: its name, and the database's reason. */
export class MigrationFailed extends Error {
  constructor(
    readonly migration: string,
    readonly reason: string,
  ) {
    super(`migration ${migration} failed: ${reason}`);
  }
}

/** Applies pending migrations; returns the names applied. */
export async function migrate(orm: MikroORM, databaseUrl: string): Promise<string[]> {
  // Connecting gives up when the pool's connections would (DB_ACQUIRE_TIMEOUT_MS): a host that
  // takes the connection and never answers would otherwise hold start-up forever. Taking the
  // lock may wait as long as another replica's migration runs.
  const { connectionTimeoutMillis } = orm.config.get("driverOptions") as { connectionTimeoutMillis?: number };
  const lockClient = new pg.Client({ connectionString: databaseUrl, application_name: "jobs-migrate", connectionTimeoutMillis });
  await lockClient.connect();
  let running = "";
  const onMigrating = ({ name }: { name: string }) => {
    running = name;
  };
  orm.migrator.on("migrating", onMigrating);
  try {
    await lockClient.query("select pg_advisory_lock($1)", [MIGRATION_LOCK_KEY]);
    const applied = await orm.migrator.up();
    return applied.map((m) => m.name);
  } catch (error) {
    // A lost connection is not the migration's fault; anything else while one runs is.
    if (!running || isConnectionError(error)) throw error;
    const { message, code } = error as { message?: unknown; code?: unknown };
    throw new MigrationFailed(running, `${String(message).split("\n")[0]}${typeof code === "string" ? ` (SQLSTATE ${code})` : ""}`);
  } finally {
    orm.migrator.off("migrating", onMigrating);
    await lockClient.query("select pg_advisory_unlock($1)", [MIGRATION_LOCK_KEY]).catch(() => undefined);
    await lockClient.end().catch(() => undefined);
  }
}
