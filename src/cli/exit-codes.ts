// Exit codes scripts can rely on (README: "Exit codes"). What the server's
// answers mean lives in server-errors.ts, loaded only when one arrives, so that
// serve, migrate and tokens start without the RPC client's modules.

import { CommanderError } from "commander";
import { DomainError } from "../domain/errors.js";

export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  notFound: 3,
  rejected: 4,
  denied: 5,
  unavailable: 6,
} as const;

/** A command used wrongly (bad flag value, missing argument, a result that cannot fit the job): exit 2. */
export class UsageError extends Error {}

/** A failure the command itself found (a token that does not exist), with its exit code. */
export class CliFailure extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** Commander's own outcomes that are not failures: help asked for, version shown. */
const COMMANDER_OK = new Set(["commander.helpDisplayed", "commander.version"]);

export async function exitCodeFor(error: unknown): Promise<number> {
  if (error instanceof UsageError) return EXIT.usage;
  if (error instanceof CliFailure) return error.exitCode;
  if (error instanceof CommanderError) {
    // "commander.help" is help printed because no command was given: exit 0 only if asked for.
    return COMMANDER_OK.has(error.code) || (error.code === "commander.help" && error.exitCode === 0) ? EXIT.ok : EXIT.usage;
  }
  if (error instanceof DomainError && error.kind === "unavailable") return EXIT.unavailable;
  if (mayBeServerError(error)) {
    const { isServerError, exitCodeForServerError } = await import("./server-errors.js");
    if (isServerError(error)) return exitCodeForServerError(error);
  }
  // serve, migrate and tokens: bad configuration, an unreachable database. Loaded only on
  // this path, so client commands start without the configuration and store modules.
  const [{ ConfigError }, { isConnectionError }] = await Promise.all([import("../config.js"), import("../store/sql.js")]);
  if (error instanceof ConfigError) return EXIT.usage;
  return isConnectionError(error) ? EXIT.unavailable : EXIT.failure;
}

/**
 * A cheap first test for a server's answer: every ConnectError carries this name, so
 * only then is server-errors.ts (Connect, protobuf, the generated ErrorInfo) worth loading.
 */
export function mayBeServerError(error: unknown): boolean {
  return error instanceof Error && error.name === "ConnectError";
}
