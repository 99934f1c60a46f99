// The one place that sends SQL: positional parameters ($1 …) through the
// ORM's own connection (Kysely over pg), and PostgreSQL failures turned into
// domain errors so no SQL text or driver message ever reaches a caller.

import { CompiledQuery } from "kysely";
import { Unavailable } from "../domain/errors.js";

/** Anything that runs a query: the ORM's client, or a transaction of it. */
export interface QueryRunner {
  executeQuery<R>(query: CompiledQuery<R>): Promise<{ rows: R[] }>;
}

export async function query<R>(runner: QueryRunner, text: string, params: readonly unknown[] = []): Promise<R[]> {
  try {
    const result = await runner.executeQuery<R>(CompiledQuery.raw(text, params as unknown[]));
    return result.rows;
  } catch (error) {
    throw asUnavailable(error) ?? error;
  }
}

/** A set of the domain's names (states, say) as an SQL list: `('A','B')`. */
export function sqlList(names: Iterable<string>): string {
  const list = [...names];
  if (!list.every((name) => /^[A-Z_]+$/.test(name))) throw new Error(`not a list of names: ${list.join(", ")}`);
  return `(${list.map((name) => `'${name}'`).join(",")})`;
}

/** A timestamp column as microseconds since the epoch (pg returns int8 as a string). */
export const micros = (column: string) => `(extract(epoch from ${column}) * 1000000)::int8`;

/** A microseconds parameter as a timestamptz (NULL stays NULL). */
export const timestamp = (param: string) => `(timestamptz 'epoch' + ${param}::int8 * interval '1 microsecond')`;

const CONNECTION_ERROR_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EHOSTUNREACH", "EAI_AGAIN"]);
// SQLSTATE class 08 (connection exception), 57P01-03 (shutdown, crash, cannot connect now), 53300 (too many connections).
const UNAVAILABLE_SQLSTATES = /^(08...|57P0[1-3]|53300)$/;

/** Whether `error` means the database could not be reached (as opposed to a bad statement). */
export function isConnectionError(error: unknown): boolean {
  // Duck-typed, not `instanceof Error`: socket errors are made by Node's own
  // realm, which is not the caller's under a vm sandbox (jest runs tests so).
  if (typeof error !== "object" || error === null) return false;
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (typeof code === "string" && (CONNECTION_ERROR_CODES.has(code) || UNAVAILABLE_SQLSTATES.test(code))) return true;
  return (
    typeof message === "string" &&
    /timeout exceeded when trying to connect|timeout expired|Query read timeout|Connection terminated|connection is closed|Client has encountered a connection error|terminating connection/i.test(
      message,
    )
  );
}

/** The domain's answer to a failure that means the database could not be reached; undefined for any other failure. */
export function asUnavailable(error: unknown): Unavailable | undefined {
  if (error instanceof Unavailable) return error;
  if (!isConnectionError(error)) return undefined;
  return new Unavailable("DATABASE_UNAVAILABLE", "the job database is unreachable right now; retry with backoff");
}
