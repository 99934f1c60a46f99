// Structured logs: one JSON object a line on stdout. Never pass a token or
// secret in `fields`; the auth layer hands out token ids, not tokens.

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

export function createLogger(
  level: LogLevel,
  write: (line: string) => void = (line) => process.stdout.write(line),
  base: Fields = {},
): Logger {
  const threshold = LOG_LEVELS.indexOf(level);
  const enabled = (l: LogLevel) => LOG_LEVELS.indexOf(l) >= threshold && l !== "silent";
  const emit = (l: LogLevel) => (msg: string, fields?: Fields) => {
    if (!enabled(l)) return;
    write(`${JSON.stringify({ time: new Date().toISOString(), level: l, msg, ...base, ...fields }, jsonSafe)}\n`);
  };
  return {
    trace: emit("trace"),
    debug: emit("debug"),
    info: emit("info"),
    warn: emit("warn"),
    error: emit("error"),
    fatal: emit("fatal"),
    enabled,
    child: (fields) => createLogger(level, write, { ...base, ...fields }),
  };
}

function jsonSafe(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? value.toString() : value;
}
