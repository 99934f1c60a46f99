// Option value parsers for commander. A bad value throws InvalidArgumentError,
// which commander reports naming the option, and which exits 2 (usage).

import { readFileSync } from "node:fs";
import type { JsonValue } from "@bufbuild/protobuf";
import { type Timestamp, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { InvalidArgumentError } from "commander";
import { UsageError } from "./exit-codes.js";

export function wholeNumber(value: string): bigint {
  if (!/^\d{1,19}$/.test(value)) throw new InvalidArgumentError("must be a whole number");
  return BigInt(value);
}

export function positiveNumber(value: string): bigint {
  if (!/^[1-9]\d{0,18}$/.test(value)) throw new InvalidArgumentError("must be a positive whole number");
  return BigInt(value);
}

/** A small count (page size, seconds); the server checks the range and says so. */
export function count(value: string): number {
  if (!/^\d{1,9}$/.test(value)) throw new InvalidArgumentError("must be a whole number");
  return Number(value);
}

/** An enum value by name, with or without its prefix, in any case: `running`, `JOB_STATE_RUNNING`. */
export function enumValue<E extends Record<string, string | number>>(enumObject: E, prefix: string): (value: string) => number {
  return (value) => {
    const key = value.trim().toUpperCase().replace(/-/g, "_").replace(new RegExp(`^${prefix}`), "");
    const found = enumObject[key];
    if (typeof found !== "number" || found === 0) throw new InvalidArgumentError(`use one of ${enumNames(enumObject).join(", ")}`);
    return found;
  };
}

export function enumNames(enumObject: Record<string, string | number>): string[] {
  return Object.keys(enumObject)
    .filter((k) => Number.isNaN(Number(k)) && enumObject[k] !== 0)
    .map((k) => k.toLowerCase());
}

/** A repeatable option whose values may also be comma-separated: `--state running,failed --state pending`. */
export function listOf<T>(parse: (value: string) => T): (value: string, previous: T[] | undefined) => T[] {
  return (value, previous) => [
    ...(previous ?? []),
    ...value
      .split(",")
      .map((v) => v.trim())
      .filter(Boolean)
      .map(parse),
  ];
}

export function isoTime(value: string): Timestamp {
  // A bare date means its start, in UTC.
  const ms = Date.parse(/^\d{4}-\d\d-\d\d$/.test(value) ? `${value}T00:00:00Z` : value);
  if (!/^\d{4}-\d\d-\d\d/.test(value) || Number.isNaN(ms)) {
    throw new InvalidArgumentError("must be an ISO 8601 date or time, e.g. 2025-01-31 or 2025-01-31T12:00:00Z");
  }
  return timestampFromDate(new Date(ms));
}

export function json(value: string): JsonValue {
  try {
    return JSON.parse(value) as JsonValue;
  } catch {
    throw new InvalidArgumentError("must be JSON");
  }
}

/** `--set KEY=VALUE`, repeatable; KEY may be a dotted path into nested fields. */
export function assignment(value: string, previous: Array<[string, string]> | undefined): Array<[string, string]> {
  const at = value.indexOf("=");
  if (at <= 0) throw new InvalidArgumentError("must be KEY=VALUE");
  return [...(previous ?? []), [value.slice(0, at).trim(), value.slice(at + 1)]];
}

/** JSON from a file, or from stdin for `-`. */
export function readJsonFile(path: string, flag: string): JsonValue {
  let text: string;
  try {
    text = readFileSync(path === "-" ? 0 : path, "utf8");
  } catch (error) {
    throw new UsageError(`${flag}: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  try {
    return JSON.parse(text) as JsonValue;
  } catch (error) {
    throw new UsageError(`${flag}: ${path} is not JSON (${(error as Error).message})`);
  }
}
