// JobInput and JobResult from the command line: the message's proto JSON
// (--input/--result, or a file) and/or `--set FIELD=VALUE` into the variant
// the job's type takes. Checked against that type here, before anything is
// sent, so a wrong variant is a usage error with a message that says which
// variant fits.

import { type DescField, type DescMessage, fromJson, type JsonObject, type JsonValue, ScalarType } from "@bufbuild/protobuf";
import { inputCaseFor, resultCaseFor, snakeCase } from "../domain/job-types.js";
import type { JobTypeName } from "../domain/states.js";
import { type JobInput, JobInputSchema, type JobResult, JobResultSchema } from "../gen/jobs/v1/job_pb.js";
import { UsageError } from "./exit-codes.js";

export interface VariantArgs {
  /** The whole message as proto JSON, e.g. {"forecast": {"cost": "12"}}; undefined if not given. */
  readonly json?: JsonValue;
  /** `--set` assignments into the type's variant. */
  readonly sets?: ReadonlyArray<readonly [string, string]>;
}

export function buildInput(type: JobTypeName, args: VariantArgs): JobInput | undefined {
  return build(JobInputSchema, "input", type, inputCaseFor(type), args);
}

/** Checks what can be checked of a result before the job's type is known: that there is one, and its JSON's shape. */
export function checkResultArgs(args: VariantArgs): void {
  if (args.json === undefined && !args.sets?.length) {
    throw new UsageError("give the result: --result JSON, --result-file FILE, or --set FIELD=VALUE (see jobsctl complete --help)");
  }
  namedCase(JobResultSchema, args.json, "result");
}

export function buildResult(type: JobTypeName, args: VariantArgs): JobResult {
  checkResultArgs(args);
  return build(JobResultSchema, "result", type, resultCaseFor(type), args) as JobResult;
}

/** A result as given, for when the job's type cannot be read: the server checks the variant then. */
export function parseResult(json: JsonValue): JobResult {
  namedCase(JobResultSchema, json, "result");
  return decode(JobResultSchema, json as JsonObject, "result");
}

/** The variant a JSON message names, if any (its oneof case, camelCase), without knowing the job's type. */
export function namedCase(schema: DescMessage, json: JsonValue | undefined, what: string): string | undefined {
  if (json === undefined) return undefined;
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new UsageError(`the ${what} must be a JSON object naming one variant, e.g. {"forecast": {…}}`);
  const keys = Object.keys(json);
  if (keys.length > 1) throw new UsageError(`the ${what} names ${keys.length} variants (${keys.join(", ")}); give one`);
  if (keys.length === 0) return undefined;
  const field = variants(schema).find((f) => f.name === keys[0] || f.jsonName === keys[0]);
  if (!field) throw new UsageError(`the ${what} has no variant "${keys[0]}"; variants: ${variants(schema).map((f) => f.name).join(", ")}`);
  return field.localName;
}

function build<S extends typeof JobInputSchema | typeof JobResultSchema>(
  schema: S,
  what: "input" | "result",
  type: JobTypeName,
  expected: string,
  args: VariantArgs,
) {
  const given = namedCase(schema, args.json, what);
  const field = variants(schema).find((f) => f.localName === expected);
  if (!field?.message) throw new Error(`no ${what} variant ${expected}`);
  if (given !== undefined && given !== expected) {
    throw new UsageError(
      `a ${type} job takes the ${what} variant "${field.name}", not "${snakeCase(given)}"; nothing was sent`,
    );
  }
  if (args.json === undefined && !args.sets?.length) return undefined;

  const whole = structuredClone((args.json ?? {}) as JsonObject);
  const key = Object.keys(whole)[0] ?? field.name;
  const variant = (whole[key] ?? {}) as JsonObject;
  if (typeof variant !== "object" || variant === null || Array.isArray(variant)) throw new UsageError(`the ${what}'s "${key}" must be a JSON object`);
  for (const [path, raw] of args.sets ?? []) assign(field.message, variant, path.split("."), raw, field.name);
  whole[key] = variant;
  return decode(schema, whole, what);
}

function decode<S extends DescMessage>(schema: S, json: JsonObject, what: string) {
  try {
    return fromJson(schema, json);
  } catch (error) {
    throw new UsageError(`the ${what} does not fit: ${(error as Error).message.replace(/^cannot decode message [\w.]+ from JSON: /, "")}`);
  }
}

function variants(schema: DescMessage): DescField[] {
  return schema.oneofs[0]?.fields ?? [];
}

const STRUCT = "google.protobuf.Struct";

/** Sets `path` in `target` (the JSON of a message of type `message`), converting `raw` the way the field needs. */
function assign(message: DescMessage, target: JsonObject, path: string[], raw: string, where: string): void {
  if (message.typeName === STRUCT) return assignFree(target, path, raw);
  const [head, ...rest] = path;
  const field = message.fields.find((f) => f.name === head || f.jsonName === head);
  if (!field) {
    throw new UsageError(`${where} has no field "${head}"; its fields: ${message.fields.map((f) => f.name).join(", ")}`);
  }
  const key = field.jsonName in target ? field.jsonName : field.name;
  if (rest.length > 0 && field.fieldKind === "map" && rest.length === 1) {
    // One entry of a map: checks.db=ok, metrics.auc=0.9.
    const entries = (target[key] ??= {}) as JsonObject;
    entries[rest[0]] = field.mapKind === "message" ? parsed(raw, `${where}.${field.name}.${rest[0]}`, "{…}") : scalar(field.scalar, raw, `${where}.${field.name}.${rest[0]}`);
    return;
  }
  if (rest.length > 0) {
    if (field.fieldKind !== "message") throw new UsageError(`${where}.${field.name} has no fields inside it`);
    const child = (target[key] ??= {}) as JsonObject;
    assign(field.message, child, rest, raw, `${where}.${field.name}`);
    return;
  }
  target[key] = leaf(field, raw, `${where}.${field.name}`);
}

function leaf(field: DescField, raw: string, where: string): JsonValue {
  if (field.fieldKind === "scalar") return scalar(field.scalar, raw, where);
  if (field.fieldKind === "enum") return raw;
  if (field.fieldKind === "message" && field.message.typeName === STRUCT) return freeValue(raw);
  return parsed(raw, where, field.fieldKind === "list" ? "[…]" : "{…}");
}

function scalar(type: ScalarType | undefined, raw: string, where: string): JsonValue {
  if (type === ScalarType.BOOL) {
    if (raw !== "true" && raw !== "false") throw new UsageError(`${where} is true or false, not "${raw}"`);
    return raw === "true";
  }
  // Strings stay as typed; numbers go as strings too, which proto JSON accepts for every numeric type (and int64 needs).
  return raw;
}

function parsed(raw: string, where: string, shape: string): JsonValue {
  try {
    return JSON.parse(raw) as JsonValue;
  } catch {
    throw new UsageError(`${where} takes JSON, e.g. --set '${where.slice(where.indexOf(".") + 1)}=${shape}'`);
  }
}

/** A free-form object (google.protobuf.Struct): any key; a value is JSON if it parses, else the text. */
function assignFree(target: JsonObject, path: string[], raw: string): void {
  const [head, ...rest] = path;
  if (rest.length === 0) {
    target[head] = freeValue(raw);
    return;
  }
  const child = target[head];
  const next = typeof child === "object" && child !== null && !Array.isArray(child) ? child : (target[head] = {});
  assignFree(next, rest, raw);
}

function freeValue(raw: string): JsonValue {
  try {
    return JSON.parse(raw) as JsonValue;
  } catch {
    return raw;
  }
}
