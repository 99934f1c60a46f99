// Named prepared statements for the hot path, without leaving the ORM's
// connection pool. Kysely sends every query as unnamed, so PostgreSQL parses
// and plans it on every call. Statements written with `prepared(name, sql)`
// carry their name in a leading comment; this pg Client subclass, given to
// the pool MikroORM creates, turns them into named statements, which pg
// prepares once per connection and then only binds and executes.

import pg from "pg";

const MARK = "/*prepared:";

/** SQL that the pool's connections prepare once under `name` (unique per statement). */
export function prepared(name: string, sql: string): string {
  return `${MARK}${name}*/ ${sql}`;
}

export class PreparingClient extends pg.Client {
  // biome-ignore lint: pg's query() is heavily overloaded; we only route the (text, values) form
  override query(config: any, values?: any, callback?: any): any {
    if (typeof config === "string" && config.startsWith(MARK)) {
      const name = config.slice(MARK.length, config.indexOf("*/"));
      return super.query({ name, text: config, values }, callback);
    }
    return super.query(config, values, callback);
  }
}
