// Structured logs on pino: one JSON object a line on stdout, or pino-pretty's
// readable lines when stdout is a terminal. Call sites use the small Logger
// interface below (message, then fields), so the library stays behind one seam.
//
// Never pass a token or secret in `fields`: the auth layer hands out token
// ids, not tokens. The redaction paths are a second line of defence only.

import { createRequire } from "node:module";
import pino from "pino";
import type PinoPretty from "pino-pretty";

// pino-pretty is for a person at a terminal; scripts, services and `jobsctl tokens` never load it.
const require = createRequire(import.meta.url);

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

type Fields = Record<string, unknown>;

export interface Logger {
  trace(msg: string, fields?: Fields): void;
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  fatal(msg: string, fields?: Fields): void;
  enabled(level: LogLevel): boolean;
  child(fields: Fields): Logger;
}

/** Keys that would hold a credential if someone ever logged one by mistake. */
export const REDACTED_PATHS = [
  "authorization",
  "token",
  "secret",
  "password",
  "devToken",
  "databaseUrl",
  "headers.authorization",
  "header.authorization",
  "req.headers.authorization",
];

/**
 * A logger at `level`. `write` receives each JSON line (tests capture them;
 * `jobsctl tokens` sends them to stderr); without it, lines go to stdout,
 * pretty-printed when stdout is a terminal.
 */
export function createLogger(level: LogLevel, write?: (line: string) => void, base: Fields = {}): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { pid: process.pid, ...base },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Level names, not pino's numbers: readable by people and by every log collector.
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
  };
  return adapt(pino(options, destination(write)));
}

function destination(write?: (line: string) => void): pino.DestinationStream {
  if (write) return { write };
  // Synchronous, in this process (not a worker transport): a line logged just
  // before exit (a second signal, a failed start) is never lost.
  if (process.stdout.isTTY) {
    const pretty = require("pino-pretty") as typeof PinoPretty;
    return pretty({ sync: true, colorize: true, translateTime: "SYS:HH:MM:ss.l", ignore: "pid" });
  }
  return pino.destination({ dest: 1, sync: true });
}

function adapt(logger: pino.Logger): Logger {
  const at =
    (level: Exclude<LogLevel, "silent">) =>
    (msg: string, fields?: Fields): void => {
      if (fields === undefined) logger[level](msg);
      else logger[level](fields, msg);
    };
  return {
    trace: at("trace"),
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    fatal: at("fatal"),
    enabled: (level) => level !== "silent" && logger.isLevelEnabled(level),
    child: (fields) => adapt(logger.child(fields)),
  };
}
