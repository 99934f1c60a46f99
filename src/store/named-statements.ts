// Named prepared statements, through pg's own `{ name, text, values }` query
// config: PostgreSQL parses and plans a named statement once per connection
// and afterwards only binds and executes it. The store's statements go
// through MikroORM and Kysely, which send every query as text and values;
// the pool's client recognises the texts registered here by their whole
// text and sends them under their names. Everything else passes unchanged.

import pg from "pg";

const nameOfText = new Map<string, string>();
const textOfName = new Map<string, string>();

/** Registers `text` to go out as the named statement `name`, and returns it. */
export function named(name: string, text: string): string {
  const registered = textOfName.get(name);
  if (registered !== undefined && registered !== text) throw new Error(`statement name ${name} is registered for another text`);
  textOfName.set(name, text);
  nameOfText.set(text, name);
  return text;
}

/**
 * The pool's client (pg.Pool's documented `Client` option). It also ends
 * itself when a statement outlives `query_timeout`: pg drops the socket then,
 * but the pool would take the client back as healthy if it were released
 * before the socket's close is noticed, and lend it out to fail again.
 */
export class NamingClient extends pg.Client {
  // biome-ignore lint/suspicious/noExplicitAny: pg's query() is overloaded; only (text, values) is rerouted
  override query(config: any, values?: any, callback?: any): any {
    if (typeof config !== "string" || callback !== undefined || typeof values === "function") return super.query(config, values, callback);
    const name = nameOfText.get(config);
    const pending: Promise<pg.QueryResult> = name === undefined ? super.query(config, values) : super.query({ name, text: config, values });
    return pending.catch(this.endIfTimedOut);
  }

  private readonly endIfTimedOut = (error: unknown): never => {
    if ((error as { message?: unknown } | null)?.message === READ_TIMEOUT) void this.end().catch(() => undefined);
    throw error;
  };
}

/** The message of pg's query_timeout error. */
const READ_TIMEOUT = "Query read timeout";
