// The pg Client that the ORM's pool uses, with two savings on the hot path.
//
// Named prepared statements: Kysely sends every query as unnamed, so
// PostgreSQL parses and plans it on every call. Statements written with
// `prepared(name, sql)` carry their name in a leading comment; this client
// turns them into named statements, which pg prepares once per connection
// and then only binds and executes.
//
// Two round trips per transition instead of four (with `pipelineTransactions`):
// the ORM sends BEGIN, the lock, the write and COMMIT one after another,
// each waiting for the previous reply. BEGIN cannot fail on a healthy
// connection and its reply carries nothing, so this client sends it and lets
// the lock follow on the same flight. A statement marked `thenCommit` is the
// last of its transaction, so COMMIT follows it on the same flight too; the
// ORM's own COMMIT then receives that COMMIT's reply. Nothing is answered
// before PostgreSQL has replied to COMMIT, and the statements and their order
// are exactly those the ORM asked for.

import pg from "pg";

const MARK = "/*prepared:";
const COMMIT_MARK = "/*then-commit*/";

/** SQL that the pool's connections prepare once under `name` (unique per statement). */
export function prepared(name: string, sql: string): string {
  return `${MARK}${name}*/ ${sql}`;
}

/**
 * The same prepared statement, sent as the last statement of its transaction:
 * the client may send COMMIT right behind it. Use it only where nothing else
 * happens in the transaction after this statement's reply.
 */
export function thenCommit(preparedSql: string): string {
  return `${COMMIT_MARK}${preparedSql}`;
}

export interface PreparingClientConfig extends pg.ClientConfig {
  /** Send BEGIN and a `thenCommit` statement's COMMIT without waiting for their replies. */
  pipelineTransactions?: boolean;
}

const BEGUN: Readonly<pg.QueryResult> = Object.freeze({ command: "BEGIN", rowCount: null, oid: 0, rows: [], fields: [] });

export class PreparingClient extends pg.Client {
  private readonly pipelines: boolean;
  private inTransaction = false;
  /** The reply to a COMMIT already sent behind a `thenCommit` statement, for the ORM's COMMIT to take. */
  private commitInFlight: Promise<pg.QueryResult> | null = null;

  constructor(config: PreparingClientConfig | string = {}) {
    const options = typeof config === "string" ? { connectionString: config } : config;
    super({ ...options, pipeline: Boolean(options.pipelineTransactions) });
    this.pipelines = Boolean(options.pipelineTransactions);
  }

  // biome-ignore lint: pg's query() is heavily overloaded; we only route the (text, values) form
  override query(config: any, values?: any, callback?: any): any {
    if (typeof config !== "string" || callback !== undefined) return super.query(config, values, callback);
    if (this.pipelines) {
      const command = config.length <= 8 ? config.toLowerCase() : "";
      if (command === "begin") return this.beginWithoutWaiting(values);
      if (command === "commit" || command === "rollback") return this.endTransaction(config, values, command);
    }
    if (config.startsWith(COMMIT_MARK)) return this.lastStatement(config.slice(COMMIT_MARK.length), values);
    return this.send(config, values);
  }

  private send(text: string, values: unknown): Promise<pg.QueryResult> {
    if (text.startsWith(MARK)) return super.query({ name: text.slice(MARK.length, text.indexOf("*/")), text, values } as pg.QueryConfig);
    return super.query(text, values as unknown[]);
  }

  private beginWithoutWaiting(values: unknown): Promise<pg.QueryResult> {
    this.inTransaction = true;
    this.commitInFlight = null;
    // A BEGIN that fails means the connection failed: the statement behind it
    // fails the same way and carries the error to the caller.
    super.query("begin", values as unknown[]).catch(() => undefined);
    return Promise.resolve(BEGUN);
  }

  private lastStatement(text: string, values: unknown): Promise<pg.QueryResult> {
    const reply = this.send(text, values);
    if (this.pipelines && this.inTransaction && this.commitInFlight === null) {
      // If the statement fails, PostgreSQL answers this COMMIT by rolling back.
      this.commitInFlight = super.query("commit");
      this.commitInFlight.catch(() => undefined);
    }
    return reply;
  }

  private endTransaction(text: string, values: unknown, command: "commit" | "rollback"): Promise<pg.QueryResult> {
    const inFlight = this.commitInFlight;
    this.commitInFlight = null;
    this.inTransaction = false;
    if (inFlight === null) return super.query(text, values as unknown[]);
    // The transaction has ended already: committed, or rolled back if its last
    // statement failed. A ROLLBACK now would only draw a warning.
    return command === "commit" ? inFlight : inFlight.then(() => ({ ...BEGUN, command: "ROLLBACK" }), () => ({ ...BEGUN, command: "ROLLBACK" }));
  }
}
