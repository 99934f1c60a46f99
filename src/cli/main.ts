// jobsctl: serve, migrate, tokens, and client commands against a running server.

import { ConnectError } from "@connectrpc/connect";
import { ConfigError } from "../config.js";
import { runClientCommand, CLIENT_COMMANDS, CLIENT_HELP } from "./client.js";
import { EXIT, exitCodeFor, UsageError } from "./exit-codes.js";
import { runMigrate, runTokens, TOKENS_HELP } from "./admin.js";
import { runServe } from "./serve.js";

const HELP = `jobsctl — the jobs service and its command line

Usage: jobsctl <command> [options]

Server
  serve [--no-migrate]        run the server (embedded PostgreSQL unless DATABASE_URL is set)
  migrate                     apply pending database migrations and exit

Tokens (on the server's database: DATABASE_URL, or the embedded one in JOBS_DATA_DIR)
${TOKENS_HELP}
Client (against a running server: --server URL, default http://127.0.0.1:50051;
        --token TOKEN or JOBS_TOKEN, else the development token in JOBS_DATA_DIR)
${CLIENT_HELP}
Every command takes --help. Exit codes: 0 ok, 1 failure, 2 usage or invalid argument,
3 not found, 4 rejected (state does not allow it), 5 unauthenticated or denied, 6 unavailable.
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
      process.stderr.write(HELP);
      return EXIT.usage;
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(HELP);
      return EXIT.ok;
    case "serve":
      return runServe(rest);
    case "migrate":
      return runMigrate(rest);
    case "tokens":
      return runTokens(rest);
    default:
      if (CLIENT_COMMANDS.has(command)) return runClientCommand(command, rest);
      throw new UsageError(`unknown command "${command}"; see jobsctl --help`);
  }
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`jobsctl: configuration: ${error.message}\n`);
    process.exitCode = EXIT.usage;
  } else if (error instanceof ConnectError) {
    process.stderr.write(`jobsctl: [${codeName(error.code)}] ${error.rawMessage}\n`);
    process.exitCode = exitCodeFor(error);
  } else if (error instanceof UsageError) {
    process.stderr.write(`jobsctl: ${error.message}\n`);
    process.exitCode = EXIT.usage;
  } else {
    process.stderr.write(`jobsctl: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = exitCodeFor(error);
  }
}

function codeName(code: number): string {
  return [
    "ok",
    "canceled",
    "unknown",
    "invalid_argument",
    "deadline_exceeded",
    "not_found",
    "already_exists",
    "permission_denied",
    "resource_exhausted",
    "failed_precondition",
    "aborted",
    "out_of_range",
    "unimplemented",
    "internal",
    "unavailable",
    "data_loss",
    "unauthenticated",
  ][code] ?? String(code);
}
