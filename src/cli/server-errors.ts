// A server's refusal as jobsctl reports it: the exit code, a line naming the
// status and ErrorInfo reason, and what to do about it. Loaded only when a
// client command runs or a call fails.

import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { EXIT } from "./exit-codes.js";

/** The precise test behind exit-codes.ts's mayBeServerError. */
export function isServerError(error: unknown): error is ConnectError {
  return error instanceof ConnectError;
}

export function exitCodeForServerError(error: ConnectError): number {
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

/** Writes the refusal and, where one helps, what to do, to stderr. */
export function reportServerError(error: ConnectError, server: string | undefined): void {
  const info = error.findDetails(ErrorInfoSchema)[0];
  const status = Code[error.code] ? snake(Code[error.code]) : String(error.code);
  process.stderr.write(`jobsctl: ${error.rawMessage} [${status}${info?.reason ? ` ${info.reason}` : ""}]\n`);
  const hint = hintFor(error, { server, jobId: info?.metadata.job_id });
  if (hint) process.stderr.write(`  ${hint}\n`);
}

function snake(name: string): string {
  return name.replace(/[A-Z]/g, (c, at: number) => `${at ? "_" : ""}${c.toLowerCase()}`);
}

/** What to do about a server's answer, by its code; undefined where the message says enough. */
function hintFor(error: ConnectError, context: { server?: string; jobId?: string }): string | undefined {
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
