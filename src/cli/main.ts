// jobsctl: serve, migrate, tokens, and client commands against a running server.
// One commander program; every failure ends here and becomes an exit code
// from exit-codes.ts, with a message (and what to do) on stderr.

import { Command, CommanderError } from "commander";
import { launcherPid, whenLauncherGone } from "../launcher.js";
import { registerAdminCommands } from "./admin.js";
import { EXIT, exitCodeFor, mayBeServerError } from "./exit-codes.js";
import { registerServe } from "./serve-command.js";

const EXIT_CODES = `Exit codes:
  0  ok                          3  not found
  1  failure                     4  rejected: the job's state does not allow it, or a stale attempt
  2  usage or invalid argument   5  unauthenticated, or permission denied
                                 6  unavailable: server or database unreachable, draining
  serve only: 7  port taken      8  a migration failed
                               130  interrupted (Ctrl-C during watch)`;

async function program(command: string | undefined): Promise<Command> {
  const root = new Command("jobsctl")
    .usage("<command> [options]")
    // Commander reports bad usage itself; our handler maps it to exit 2 rather than letting it exit.
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(`jobsctl: ${text.replace(/^error: /, "")}`) })
    .showHelpAfterError("(add --help for usage and examples)")
    .showSuggestionAfterError()
    .helpCommand("help [command]", "show help for a command")
    .addHelpText("before", "jobsctl — the jobs service and its command line\n")
    .addHelpText(
      "after",
      `
Client commands take --server URL (or JOBS_SERVER; default http://127.0.0.1:50051) and
--token TOKEN (or JOBS_TOKEN; else JOBS_DATA_DIR/dev-token, written by an embedded server).
Tokens and migrate work on the server's database: DATABASE_URL, or the embedded one.
Health checks (grpc.health.v1.Health, no token) answer for the service names "" (the
server) and "jobs.v1.JobService"; NOT_SERVING while the database is unreachable or the
server drains.

${EXIT_CODES}

Examples:
  $ jobsctl serve
  $ jobsctl create --type forecast --company 42 --set nql="orders per day"
  $ jobsctl watch 0b5e…
  $ jobsctl help list`,
    );
  registerServe(root);
  registerAdminCommands(root);
  // The commands registered so far work on the server's side (its process or its database).
  // Run alone they skip the client commands' modules (the RPC client, the generated
  // messages), a good part of a command's start-up.
  if (command === undefined || !root.commands.some((registered) => registered.name() === command)) {
    const { registerClientCommands } = await import("./client.js");
    registerClientCommands(root);
  }
  return root;
}

// `jobsctl list | head`: a reader that has seen enough is not a failure.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw error;
});

// A command whose launcher is gone ends as if the launcher had passed a SIGTERM on
// (`watch` would otherwise wait for its job forever); serve drains instead (src/lifecycle.ts).
const launcher = process.argv[2] === "serve" ? null : launcherPid();
if (launcher !== null) whenLauncherGone(launcher, () => process.kill(process.pid, "SIGTERM"));

let running: Command | undefined;
const cli = (await program(process.argv[2])).hook("preAction", (_root, action) => {
  running = action;
});
try {
  await cli.parseAsync(process.argv.slice(2), { from: "user" });
} catch (error) {
  const code = await exitCodeFor(error);
  await report(error, code);
  process.exitCode = code;
}

async function report(error: unknown, code: number): Promise<void> {
  // Commander has already said what was wrong (or printed the help that was asked for).
  if (error instanceof CommanderError) return;
  if (mayBeServerError(error)) {
    const { isServerError, reportServerError } = await import("./server-errors.js");
    if (isServerError(error)) {
      reportServerError(error, serverOption());
      return;
    }
  }
  // Loaded only now: the configuration (and zod) is for serve, migrate and tokens, not client commands.
  const { ConfigError } = await import("../config.js");
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`jobsctl: ${error instanceof ConfigError ? `configuration: ${message}` : message}\n`);
  if (code === EXIT.unavailable) {
    process.stderr.write("  the database is unreachable: is the PostgreSQL of DATABASE_URL running? (unset: the embedded one in JOBS_DATA_DIR)\n");
  }
}

/** The --server the failed command used, for the hint. */
function serverOption(): string | undefined {
  return running?.opts<{ server?: string }>().server;
}
