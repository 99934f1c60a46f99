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
// connection and its reply carries nothing, so this client answers it at
// once and sends it in the same write as the statement that follows. A
// statement marked `thenCommit` is the last of its transaction, so COMMIT
// goes out in the same write behind it, before the same Sync, and PostgreSQL
// answers both in one reply; the ORM's own COMMIT then receives that
// COMMIT's reply. Nothing is answered before PostgreSQL has replied to
// COMMIT, and the statements and their order are exactly those the ORM
// asked for (pg's pipeline mode lets a statement go before the previous
// reply is in).

import pg from "pg";
import pgUtils from "pg/lib/utils.js";
import { isConnectionError, OutcomeUnknown } from "./sql.js";

const MARK = "/*prepared:";
const COMMIT_MARK = "/*then-commit*/";

/** SQL that the pool's connections prepare once under `name` (unique per statement). */
export function prepared(name: string, sql: string): string {
  return `${MARK}${name}*/ ${sql}`;
}

/**
 * The same prepared statement, sent as the last statement of its transaction:
 * the client may send COMMIT right behind it. Use it only where nothing else
 * happens in the transaction after this statement's reply. Outside a
 * transaction it marks a statement that commits by itself. Either way, a
 * connection that fails once it is sent fails it with OutcomeUnknown.
 */
export function thenCommit(preparedSql: string): string {
  return `${COMMIT_MARK}${preparedSql}`;
}

export interface PreparingClientConfig extends pg.ClientConfig {
  /** Send BEGIN and a `thenCommit` statement's COMMIT without waiting for their replies. */
  pipelineTransactions?: boolean;
  /**
   * Ask PostgreSQL for a named statement's row description only at its first
   * execution on the connection (see PreparingQuery). Off, every execution asks,
   * as pg and libpq do.
   */
  reuseRowDescriptions?: boolean;
  /**
   * How long a statement sent as (text, values) may wait for its reply, in ms
   * (0: no limit), asked at every statement: the server raises it from 0 once
   * migrations are done. On expiry the connection is dropped, which fails
   * every statement on it: a silently dead network leaves it useless anyway.
   */
  statementTimeoutMs?: () => number;
}

const BEGUN: Readonly<pg.QueryResult> = Object.freeze({ command: "BEGIN", rowCount: null, oid: 0, rows: [], fields: [] });

interface WireConnection {
  /** Named statements pg has seen parsed on this connection, by name. */
  readonly parsedStatements: Record<string, string>;
  readonly stream: { cork(): void; uncork(): void; destroy(): void };
}

export class PreparingClient extends pg.Client {
  private readonly pipelines: boolean;
  private readonly statementTimeoutMs: () => number;
  private inTransaction = false;
  /** BEGIN was asked for and answered, but goes out only with the next statement. */
  private beginPending = false;
  /** The reply to a COMMIT already sent behind a `thenCommit` statement, for the ORM's COMMIT to take. */
  private commitInFlight: Promise<pg.QueryResult> | null = null;
  /** Row shapes of the named statements executed on this connection (see PreparingQuery); null: not kept. */
  private readonly rowShapes: Map<string, RowShape> | null;
  /** Statements sent under a time limit and not answered yet (see expectReply). */
  private readonly awaitingReply = new Set<PreparingQuery>();
  private watchdog: NodeJS.Timeout | undefined;
  private watchdogAt = Number.POSITIVE_INFINITY;

  constructor(config: PreparingClientConfig | string = {}) {
    const options = typeof config === "string" ? { connectionString: config } : config;
    super({ ...options, pipeline: Boolean(options.pipelineTransactions) });
    this.pipelines = Boolean(options.pipelineTransactions);
    this.rowShapes = options.reuseRowDescriptions ? new Map() : null;
    this.statementTimeoutMs = options.statementTimeoutMs ?? (() => 0);
    // PostgreSQL closes the connection after a FATAL error (shutdown, a terminated backend). Marked
    // unqueryable at once, the client leaves the pool when it is released, rather than being lent out
    // again before the close arrives, to fail a call that sent nothing to a live server.
    this.connection.on("errorMessage", (message: { severity?: string }) => {
      if (message.severity === "FATAL") (this as unknown as { _queryable: boolean })._queryable = false;
    });
  }

  // biome-ignore lint: pg's query() is heavily overloaded; we only route the (text, values) form
  override query(config: any, values?: any, callback?: any): any {
    if (typeof config !== "string" || callback !== undefined) {
      return this.withPendingBegin(() => super.query(config, values, callback));
    }
    if (this.pipelines) {
      const command = config.length <= 8 ? config.toLowerCase() : "";
      if (command === "begin") return this.begin();
      if (command === "commit" || command === "rollback") return this.endTransaction(config, values, command);
    }
    if (config.startsWith(COMMIT_MARK)) {
      return this.withPendingBegin(() => this.lastStatement(config.slice(COMMIT_MARK.length), values));
    }
    if (this.beginPending && this.isParsedHere(config)) {
      this.beginPending = false;
      return this.sendAfterBegin(config, values);
    }
    return this.withPendingBegin(() => this.send(config, values));
  }

  /**
   * Whether `text` may ride behind BEGIN in one pg query: unnamed, or named and
   * parsed on this connection already. pg records a named statement as parsed
   * at the query's first ParseComplete, which would be BEGIN's, and would not
   * parse the statement again if its own Parse then failed.
   */
  private isParsedHere(text: string): boolean {
    const name = statementName(text);
    if (name === undefined) return true;
    return this.wire.parsedStatements[name] !== undefined;
  }

  private send(text: string, values?: unknown): Promise<pg.QueryResult> {
    return new Promise<pg.QueryResult>((resolve, reject) => {
      this.submit(new PreparingQuery({ name: statementName(text), text, values }, undefined, (error, result) => (error ? reject(error) : resolve(result as pg.QueryResult))));
    });
  }

  /** Hands `query` to pg, under the statement time limit asked for now. */
  private submit(query: PreparingQuery): void {
    query.rowShapes = this.rowShapes;
    const timeout = this.statementTimeoutMs();
    if (timeout > 0) this.expectReply(query, performance.now() + timeout);
    super.query(query as unknown as pg.QueryConfig);
  }

  /**
   * The statement time limit, kept by one timer per connection rather than
   * pg's query_timeout, which sets and clears a timer for every statement. The
   * timer is set for the earliest deadline; when it fires with every statement
   * still within its limit, it is set again for the earliest then.
   */
  private expectReply(query: PreparingQuery, deadline: number): void {
    query.deadline = deadline;
    query.awaiting = this.awaitingReply;
    this.awaitingReply.add(query);
    if (deadline < this.watchdogAt) this.armWatchdog(deadline);
  }

  private armWatchdog(at: number): void {
    clearTimeout(this.watchdog);
    this.watchdogAt = at;
    this.watchdog = setTimeout(this.checkReplies, Math.max(0, Math.ceil(at - performance.now())));
    this.watchdog.unref();
  }

  private readonly checkReplies = (): void => {
    this.watchdog = undefined;
    this.watchdogAt = Number.POSITIVE_INFINITY;
    const now = performance.now();
    let earliest = Number.POSITIVE_INFINITY;
    for (const query of this.awaitingReply) {
      if (query.deadline <= now) {
        // As pg's own query_timeout does in pipeline mode: the connection is dropped, and every
        // statement on it fails as a lost connection (the pool then leaves it out).
        this.wire.stream.destroy();
        return;
      }
      earliest = Math.min(earliest, query.deadline);
    }
    if (earliest !== Number.POSITIVE_INFINITY) this.armWatchdog(earliest);
  };

  /**
   * The statement and the COMMIT behind it as one pg query with one Sync, so
   * that PostgreSQL answers both in one write: sent as two, each with its Sync,
   * the statement's reply is flushed at once and the COMMIT's follows after the
   * WAL flush, a second wake-up and read for this process and a second send for
   * PostgreSQL. The statement's promise settles at its own CommandComplete; the
   * COMMIT's reply is kept for the ORM's COMMIT. If the statement fails,
   * PostgreSQL skips the COMMIT and leaves the transaction aborted, so none is
   * in flight: the ORM's ROLLBACK is sent.
   */
  private sendWithCommit(text: string, values: unknown): Promise<pg.QueryResult> {
    let commit!: Promise<pg.QueryResult>;
    const statement = new Promise<pg.QueryResult>((resolveStatement, rejectStatement) => {
      commit = new Promise<pg.QueryResult>((resolveCommit, rejectCommit) => {
        const query = new StatementThenCommit(
          { name: statementName(text), text, values },
          (error, result) => {
            if (error) {
              if (this.commitInFlight === commit) this.commitInFlight = null;
              rejectStatement(error);
            } else resolveStatement(result as pg.QueryResult);
          },
          (error, results) => (error ? rejectCommit(error) : resolveCommit((results as pg.QueryResult[])[1])),
        );
        this.submit(query);
      });
    });
    this.commitInFlight = commit;
    commit.catch(() => undefined);
    return statement;
  }

  /**
   * The transaction's first statement with the pending BEGIN in front of it,
   * as one pg query with one Sync (extended protocol for both), so that
   * PostgreSQL answers both in one reply: sent as two, BEGIN's reply is flushed
   * on its own, and often read on its own. A BEGIN that fails means the
   * connection failed, and the statement fails with it.
   */
  private sendAfterBegin(text: string, values: unknown): Promise<pg.QueryResult> {
    return new Promise<pg.QueryResult>((resolve, reject) => {
      const query = new BeginThenStatement({ name: statementName(text), text, values, queryMode: "extended" }, undefined, (error, results) =>
        // The results are BEGIN's and the statement's.
        error ? reject(error) : resolve(Array.isArray(results) ? results[results.length - 1] : (results as pg.QueryResult)),
      );
      this.submit(query);
    });
  }

  private begin(): Promise<pg.QueryResult> {
    this.inTransaction = true;
    this.beginPending = true;
    this.commitInFlight = null;
    return Promise.resolve(BEGUN);
  }

  /** Runs `send` with a pending BEGIN in front of it, both in one write to the socket. */
  private withPendingBegin<T>(send: () => T): T {
    if (!this.beginPending) return send();
    this.beginPending = false;
    return this.corked(() => {
      // A BEGIN that fails means the connection failed: the statement behind
      // it fails the same way and carries the error to the caller. It needs
      // no timeout of its own: that statement's reply comes after BEGIN's.
      super.query("begin").catch(() => undefined);
      return send();
    });
  }

  private lastStatement(text: string, values: unknown): Promise<pg.QueryResult> {
    // Pipelined, BEGIN goes out only with the next statement, so PostgreSQL's
    // transaction status lags: this client's own flag says. Otherwise pg's does.
    const inTransaction = this.pipelines ? this.inTransaction : this.getTransactionStatus() !== "I";
    // Without COMMIT behind it, a statement inside a transaction commits nothing: its failure is a plain one.
    const commits = !inTransaction || (this.pipelines && this.commitInFlight === null);
    if (!commits) return this.send(text, values);
    // A client already known broken sends nothing: its failure says nothing went in.
    const sent = this.isQueryable();
    const reply = inTransaction ? this.sendWithCommit(text, values) : this.send(text, values);
    if (!sent) return reply;
    return reply.catch((error: unknown) => {
      throw isConnectionError(error) ? new OutcomeUnknown(error) : error;
    });
  }

  private isQueryable(): boolean {
    const state = this as unknown as { _queryable?: boolean; _ending?: boolean };
    return state._queryable !== false && state._ending !== true;
  }

  private endTransaction(text: string, values: unknown, command: "commit" | "rollback"): Promise<pg.QueryResult> {
    const inFlight = this.commitInFlight;
    const neverBegun = this.beginPending;
    this.commitInFlight = null;
    this.inTransaction = false;
    this.beginPending = false;
    // Nothing was sent since BEGIN, so there is nothing to end.
    if (neverBegun) return Promise.resolve({ ...BEGUN, command: command.toUpperCase() });
    const rolledBack = () => ({ ...BEGUN, command: "ROLLBACK" });
    if (inFlight === null) {
      const ended = this.send(text, values);
      // ROLLBACK fails only when the connection is gone, and PostgreSQL rolls
      // back the transaction of a lost connection by itself. Reported as an
      // error, it would keep the connection checked out for good: Kysely
      // releases a transaction's connection only after its ROLLBACK succeeds
      // (kysely#1990), so each database outage would leak the connections of
      // the transactions in flight until the pool had none left. Released,
      // the dead connection leaves the pool (pg-pool drops unqueryable ones).
      return command === "rollback" ? ended.catch(rolledBack) : ended;
    }
    // The transaction has ended already: committed, or rolled back if its last
    // statement failed. A ROLLBACK now would only draw a warning.
    if (command === "commit") return inFlight;
    return inFlight.then(rolledBack, rolledBack);
  }

  /** pg's connection, with the parts of it this client uses that pg's types leave out. */
  private get wire(): WireConnection {
    return (this as unknown as { connection: WireConnection }).connection;
  }

  /** pg writes each statement as one chunk; corked, several statements leave in one write. */
  private corked<T>(work: () => T): T {
    const stream = this.wire.stream;
    stream.cork();
    try {
      return work();
    } finally {
      stream.uncork();
    }
  }
}

/** The name a `prepared` statement carries; undefined for any other. */
function statementName(text: string): string | undefined {
  return text.startsWith(MARK) ? text.slice(MARK.length, text.indexOf("*/")) : undefined;
}

type StatementCallback = (error: Error | null, result?: unknown) => void;

/** The parts of pg's Query (lib/query.js) that the classes below build on: not in pg's types. */
interface PgQuery {
  readonly name?: string;
  readonly values?: unknown;
  readonly binary?: boolean;
  readonly rows?: number;
  portal: string;
  _result: PgResult;
  prepare(connection: PgConnection): void;
  handleRowDescription(message: RowDescription): void;
  handleDataRow(message: unknown): void;
  _getRows(connection: PgConnection, rows: number | undefined): void;
  handleCommandComplete(message: unknown, connection: PgConnection): void;
  handleReadyForQuery(connection: PgConnection): void;
  handleError(error: Error, connection: PgConnection): void;
}

/** pg-protocol's RowDescription message: read, never changed, by pg's Result. */
type RowDescription = { readonly fields: readonly unknown[] };

/** The parts of pg's Result (lib/result.js) built from a row description. */
interface PgResult {
  fields: readonly unknown[];
  _parsers: readonly unknown[] | undefined;
  _prebuiltEmptyResultObject: object | null;
}

/**
 * What pg's Result builds from a statement's row description: the fields, a
 * parser per column, and the empty row each row is copied from. pg rebuilds
 * them for every result (about 7 µs for a job's 25 columns); kept from the
 * first, they are shared by every later result of the statement on its
 * connection. pg only reads them.
 */
type RowShape = Readonly<Pick<PgResult, "fields" | "_parsers" | "_prebuiltEmptyResultObject">>;

const NO_FIELDS: RowDescription = Object.freeze({ fields: Object.freeze([]) });

interface PgConnection {
  execute(config: { portal?: string; rows?: number }): void;
  parse(config: { text: string }): void;
  bind(config: object): void;
  sync(): void;
}

const PgQuery = pg.Query as unknown as new (
  config: { name?: string; text: string; values: unknown; queryMode?: "extended" },
  values: undefined,
  callback: (error: Error | null, results: pg.QueryResult | pg.QueryResult[]) => void,
) => PgQuery;

/**
 * pg's Query, with two changes. Once answered, it leaves its client's set of
 * statements awaiting a reply (PreparingClient.expectReply). And a named
 * statement whose row description this connection has seen already is sent
 * without Describe: pg asks for the description at every execution, and
 * PostgreSQL builds and sends it, and pg parses it and builds the result's
 * row shape from it, every time, though a prepared statement's result shape
 * cannot change on its connection (PostgreSQL refuses to run it if its
 * tables' change would change it). The shape built the first time is handed
 * to pg's result where PostgreSQL's description would have come.
 */
class PreparingQuery extends PgQuery {
  deadline = Number.POSITIVE_INFINITY;
  awaiting: Set<PreparingQuery> | null = null;
  /** The connection's row shapes of named statements, from their first execution. */
  rowShapes: Map<string, RowShape> | null = null;
  /** The shape whose description was not asked for this time: given to pg's result before the first row. */
  private untold: RowShape | null = null;

  override prepare(connection: PgConnection): void {
    const known = this.name === undefined ? undefined : this.rowShapes?.get(this.name);
    if (known === undefined) return super.prepare(connection);
    // Described before, so parsed on this connection: Bind and Execute are all it takes.
    this.untold = known;
    try {
      connection.bind({ portal: this.portal, statement: this.name, values: this.values, binary: this.binary, valueMapper: pgUtils.prepareValue });
    } catch (error) {
      // A parameter pg cannot send: fail the query as pg's own prepare does, with a Sync for the ReadyForQuery pg waits for.
      connection.sync();
      this.handleError(error as Error, connection);
      return;
    }
    this._getRows(connection, this.rows);
  }

  override handleRowDescription(message: RowDescription): void {
    super.handleRowDescription(message);
    if (this.name !== undefined && this.rowShapes !== null && !this.rowShapes.has(this.name)) {
      const { fields, _parsers, _prebuiltEmptyResultObject } = this._result;
      this.rowShapes.set(this.name, { fields, _parsers, _prebuiltEmptyResultObject });
    }
  }

  override handleDataRow(message: unknown): void {
    if (this.untold !== null) {
      const shape = this.untold;
      this.untold = null;
      // pg's own steps for a description (a new result after a finished one, whether to keep rows),
      // with no columns to build; then the kept shape.
      super.handleRowDescription(NO_FIELDS);
      Object.assign(this._result, shape);
    }
    super.handleDataRow(message);
  }

  override handleReadyForQuery(connection: PgConnection): void {
    this.awaiting?.delete(this);
    super.handleReadyForQuery(connection);
  }

  // An ErrorResponse, or the connection's end.
  override handleError(error: Error, connection: PgConnection): void {
    this.awaiting?.delete(this);
    super.handleError(error, connection);
  }
}

/** Parse, Bind and Execute of an unnamed statement without parameters, and no Sync: it shares the query's. */
function executeUnnamed(connection: PgConnection, text: string): void {
  connection.parse({ text });
  connection.bind({});
  connection.execute({});
}

/** pg's Query, with BEGIN (unnamed, extended protocol) in front of the statement, before the same Sync. */
class BeginThenStatement extends PreparingQuery {
  override prepare(connection: PgConnection): void {
    executeUnnamed(connection, "begin");
    super.prepare(connection);
  }
}

/**
 * pg's Query, with COMMIT (unnamed, extended protocol) between the
 * statement's Execute and its Sync. pg takes it as one query: one reply,
 * ending in one ReadyForQuery, whose results are the statement's and COMMIT's.
 */
class StatementThenCommit extends PreparingQuery {
  private statementSettled = false;

  constructor(
    config: { name?: string; text: string; values: unknown },
    private readonly onStatement: StatementCallback,
    onCommit: (error: Error | null, results: pg.QueryResult | pg.QueryResult[]) => void,
  ) {
    super(config, undefined, onCommit);
  }

  override _getRows(connection: PgConnection, rows: number | undefined): void {
    connection.execute({ portal: this.portal, rows });
    executeUnnamed(connection, "commit");
    connection.sync();
  }

  override handleCommandComplete(message: unknown, connection: PgConnection): void {
    super.handleCommandComplete(message, connection);
    if (this.statementSettled) return;
    this.statementSettled = true;
    this.onStatement(null, this._result);
  }

  override handleError(error: Error, connection: PgConnection): void {
    if (!this.statementSettled) {
      this.statementSettled = true;
      this.onStatement(error);
    }
    super.handleError(error, connection);
  }
}
