// Exit codes scripts can rely on (README: "Exit codes").

import { Code, ConnectError } from "@connectrpc/connect";
import { DomainError } from "../domain/errors.js";
import { isConnectionError } from "../store/sql.js";

export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  notFound: 3,
  rejected: 4,
  denied: 5,
  unavailable: 6,
} as const;

export class UsageError extends Error {}

export function exitCodeFor(error: unknown): number {
  if (error instanceof UsageError) return EXIT.usage;
  // node:util parseArgs: unknown option, missing option value, unexpected positional.
  if (String((error as { code?: unknown } | null)?.code).startsWith("ERR_PARSE_ARGS_")) return EXIT.usage;
  if (isConnectionError(error) || (error instanceof DomainError && error.kind === "unavailable")) return EXIT.unavailable;
  if (!(error instanceof ConnectError)) return EXIT.failure;
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
