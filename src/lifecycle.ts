// The life of a `jobsctl serve` process (docs/contract.md): start, or say in
// one line why not and what to do; on SIGTERM, SIGINT or SIGHUP drain; on a
// second signal during the drain, exit at once. Started by a launcher (npm,
// npx, or bin/jobsctl.js re-running itself under Node 24), it also drains when
// that launcher is gone: a launcher that dies without passing the signal on
// (npx's shell, one killed with SIGKILL) must not leave the server and its
// embedded PostgreSQL running.

import { constants } from "node:os";
import type { App } from "./app.js";
import type { Config } from "./config.js";
import { launcherPid, whenLauncherGone } from "./launcher.js";
import type { Logger } from "./log.js";
import { isConnectionError } from "./store/sql.js";
import { MigrationFailed } from "./store/orm.js";

/** Exit codes of a start that failed (docs/operating.md, "Start-up failures"); a bad configuration exits 2 before this. */
export const START_FAILED = {
  other: 1,
  /** The same as the CLI's "unavailable": worth retrying once the database is up. */
  databaseUnreachable: 6,
  addressInUse: 7,
  migrationFailed: 8,
} as const;

export interface Serving {
  readonly app: App;
  /** Resolves once a signal has been received and the drain is over (exit 0). */
  untilStopped(): Promise<void>;
}

/**
 * Starts the server with `start`. Signals are watched from the first moment:
 * one that arrives during start-up drains the server as soon as it is up.
 * Resolves with the running server, or with an exit code once the reason it
 * could not start is on stderr.
 */
export async function startServing(start: () => Promise<App>, config: Config, log: Logger): Promise<Serving | number> {
  const signals = watchSignals(log, launcherPid());
  let app: App;
  try {
    app = await start();
  } catch (error) {
    signals.dispose();
    const failure = explainStartFailure(error, config);
    process.stderr.write(`jobsctl serve: ${failure.message}\n`);
    // Whatever a half-finished start may have left open must not keep a failed server alive.
    setTimeout(() => process.exit(failure.exitCode), 5_000).unref();
    return failure.exitCode;
  }
  return {
    app,
    async untilStopped() {
      await signals.first;
      await app.stop();
      signals.dispose();
    },
  };
}

/** The signals that stop the server: a supervisor's, Ctrl-C, and the terminal closing. */
const STOP_SIGNALS = ["SIGTERM", "SIGINT", "SIGHUP"] as const;
/**
 * A repeat of the first signal this soon is the same request arriving twice,
 * not a second request: Ctrl-C reaches every process of the terminal's group,
 * and npm or bin/jobsctl.js passes it on to the server as well.
 */
const REPEAT_WINDOW_MS = 500;
type StopReason = NodeJS.Signals | "launcher gone";

function watchSignals(log: Logger, launcher: number | null) {
  let received: StopReason | null = null;
  let receivedAt = 0;
  let resolveFirst: (reason: StopReason) => void = () => {};
  const first = new Promise<StopReason>((resolve) => {
    resolveFirst = resolve;
  });
  const stop = (reason: StopReason, fields: Record<string, unknown>) => {
    received = reason;
    receivedAt = Date.now();
    log.info(reason === "launcher gone" ? "launcher gone: stopping" : "signal received", fields);
    resolveFirst(reason);
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (received === null) {
      stop(signal, { signal });
      return;
    }
    if (signal === received && Date.now() - receivedAt < REPEAT_WINDOW_MS) {
      log.debug("the same signal again, passed on by a launcher: already draining", { signal });
      return;
    }
    // Someone wants it gone now: calls still in flight are cut off, and their
    // clients retry (every transition is idempotent by state).
    log.warn("second signal: exiting now, without finishing the drain", { signal, first_signal: received });
    process.exit(128 + constants.signals[signal]);
  };
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
  // Nobody is left to pass a signal on: stop as if one had come.
  const stopWatching =
    launcher === null
      ? () => {}
      : whenLauncherGone(launcher, () => {
          if (received === null) stop("launcher gone", { launcher_pid: launcher });
        });
  return {
    first,
    dispose() {
      stopWatching();
      for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
    },
  };
}

/** One line saying what went wrong and what to do about it, and the exit code. */
export function explainStartFailure(error: unknown, config: Config): { message: string; exitCode: number } {
  const { code, port, address } = (error ?? {}) as { code?: unknown; port?: unknown; address?: unknown };
  if (typeof code === "string" && ["EADDRINUSE", "EACCES", "EADDRNOTAVAIL"].includes(code) && typeof port === "number") {
    const variable = port === config.metricsPort ? "METRICS_PORT" : "PORT";
    const host = typeof address === "string" ? address : config.host;
    const message =
      code === "EADDRINUSE"
        ? `port ${port} on ${host} is in use: stop the other process or set ${variable}`
        : code === "EACCES"
          ? `not allowed to listen on port ${port} on ${host} (EACCES): use a port from 1024 up, or set ${variable}`
          : `cannot listen on ${host} (EADDRNOTAVAIL): it is not an address of this machine; set HOST`;
    return { message, exitCode: START_FAILED.addressInUse };
  }
  if (error instanceof MigrationFailed) {
    return {
      message: `${hidePassword(error.message, config)}; the database is as it was before (migrations apply in one transaction): fix the cause, then run \`jobsctl migrate\` or start again`,
      exitCode: START_FAILED.migrationFailed,
    };
  }
  const where = databaseAddress(config);
  if (where && isConnectionError(error)) {
    const why = typeof code === "string" ? code : "no answer in time";
    return {
      message: `cannot reach PostgreSQL at ${where} (${why}): start it or fix DATABASE_URL`,
      exitCode: START_FAILED.databaseUnreachable,
    };
  }
  if (where && (code === "28P01" || code === "28000")) {
    return {
      message: `PostgreSQL at ${where} refused the login (${firstLine(error)}): fix the user or password in DATABASE_URL`,
      exitCode: START_FAILED.databaseUnreachable,
    };
  }
  if (where && code === "3D000") {
    return {
      message: `${firstLine(error)} on PostgreSQL at ${where}: create it (createdb) or fix DATABASE_URL`,
      exitCode: START_FAILED.databaseUnreachable,
    };
  }
  return { message: `could not start: ${hidePassword(firstLine(error), config)}`, exitCode: START_FAILED.other };
}

/** host:port of DATABASE_URL, without user or password; null for the embedded database. */
function databaseAddress(config: Config): string | null {
  if (!config.databaseUrl) return null;
  const url = new URL(config.databaseUrl);
  const host = url.hostname || url.searchParams.get("host") || "localhost";
  return `${host}:${url.port || "5432"}`;
}

function hidePassword(text: string, config: Config): string {
  const password = config.databaseUrl ? decodeURIComponent(new URL(config.databaseUrl).password) : "";
  return password ? text.replaceAll(password, "***") : text;
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n")[0];
}
