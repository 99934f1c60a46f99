// Exit codes scripts can rely on (README: "Exit codes"), and the hint a person
// gets with each kind of failure.

import { Code, ConnectError } from "@connectrpc/connect";
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
  if (!(error instanceof ConnectError)) {
    // serve, migrate and tokens: bad configuration, an unreachable database. Loaded only on
    // this path, so client commands start without the configuration and store modules.
    const [{ ConfigError }, { isConnectionError }] = await Promise.all([import("../config.js"), import("../store/sql.js")]);
    if (error instanceof ConfigError) return EXIT.usage;
    return isConnectionError(error) ? EXIT.unavailable : EXIT.failure;
  }
  switch (error.code) {
    case Code.InvalidArgument:
    case Code.OutOfRange:
      return EXIT.usage;
    case Code.NotFound:
      return EXIT.notFound;
    case Code.FailedPrecondition:
      return EXIT.rejected;
    case Code.Unauthenticated:
    case Code.PermissionDenied:
      return EXIT.denied;
    case Code.Unavailable:
    case Code.DeadlineExceeded:
      return EXIT.unavailable;
    default:
      return EXIT.failure;
  }
}

/** What to do about a server's answer, by its code; undefined where the message says enough. */
export function hintFor(error: ConnectError, context: { server?: string; jobId?: string }): string | undefined {
  const { server, jobId } = context;
  switch (error.code) {
    case Code.NotFound:
      return "check the id (jobsctl list shows recent jobs); an api_user token sees only its own company's jobs";
    case Code.FailedPrecondition:
      return `the job's state or attempt does not allow this call; jobsctl get ${jobId ?? "JOB_ID"} shows them`;
    case Code.Unauthenticated:
      return "pass a valid token with --token or JOBS_TOKEN; an operator makes one with jobsctl tokens create";
    case Code.PermissionDenied:
      return "this token lacks the scope or company for the call; jobsctl tokens list shows each token's scopes";
    case Code.Unavailable:
    case Code.DeadlineExceeded:
      return `is the server running and reachable${server ? ` at ${server}` : ""}? start one with jobsctl serve, or point --server (JOBS_SERVER) at it; then retry`;
    default:
      return undefined;
  }
}
