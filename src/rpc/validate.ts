// Request validation that needs no job (docs/contract.md §4: after auth and scope, before
// visibility). Each check names the field and says what would be accepted.

import { containsToken } from "../auth/tokens.js";
import { FieldTooLarge, InvalidArgument, PermissionDenied } from "../domain/errors.js";
import type { JsonValue } from "../domain/job.js";
import { MAX_TEXT_CHARACTERS, payloadBytes } from "../domain/job-size.js";
import { inputCaseFor, snakeCase } from "../domain/job-types.js";
import type { Principal } from "../domain/principal.js";
import type { ExecutionClusterName, JobStateName, JobTypeName } from "../domain/states.js";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { ExecutionCluster, type JobInput, JobState, JobType } from "../gen/jobs/v1/job_pb.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 1000;
const MAX_ID_LENGTH = 256;
/**
 * Free-form JSON (FailJob's `diagnostic`, CreateJob's `input`) may nest at
 * most this many arrays/objects deep. Every reply that carries it must stay
 * decodable: protobuf runtimes (protobuf-es, protobufjs, upb) refuse messages
 * nested over 100 levels, each JSON level costs two, and a job sits up to five
 * levels down (WatchJobsResponse → event → job → failures → diagnostic). A
 * deeper value would be stored, and then no client could read that job, nor
 * any list page or watch stream that holds it.
 */
export const MAX_JSON_NESTING = 32;
const MIN_TIMESTAMP_SECONDS = -62_135_596_800n;
const MAX_TIMESTAMP_SECONDS = 253_402_300_799n;

export const isUuid = (value: string): boolean => UUID.test(value);

export function requireJobId(value: string, field = "job_id"): string {
  if (value === "") throw new InvalidArgument(field, `${field} is required`);
  if (!UUID.test(value)) throw new InvalidArgument(field, `${field} must be a UUID like 123e4567-e89b-12d3-a456-426614174000, got "${clip(value)}"`);
  return value.toLowerCase();
}

export function optionalRequestId(value: string): string | null {
  if (value === "") return null;
  if (!UUID.test(value)) throw new InvalidArgument("request_id", `request_id must be a UUID (or empty), got "${clip(value)}"`);
  return value.toLowerCase();
}

export function requireIdentifier(value: string, field: string): string {
  if (value.trim() === "") throw new InvalidArgument(field, `${field} is required`);
  return optionalIdentifier(value, field);
}

export function optionalIdentifier(value: string, field: string): string {
  if (value.length > MAX_ID_LENGTH) throw new InvalidArgument(field, `${field} must be at most ${MAX_ID_LENGTH} characters`);
  return storableText(value, field);
}

export function optionalText(value: string, field: string): string {
  if (value.length > MAX_TEXT_CHARACTERS) throw new InvalidArgument(field, `${field} must be at most ${MAX_TEXT_CHARACTERS} characters`);
  return storableText(value, field);
}

/** PostgreSQL text and jsonb cannot hold U+0000; refused here, it would otherwise fail the statement (INTERNAL). */
function storableText(value: string, field: string): string {
  if (value.includes("\u0000")) throw new InvalidArgument(field, `${field} must not contain the NUL character (U+0000)`);
  return value;
}

export function requireText(value: string, field: string): string {
  if (value.trim() === "") throw new InvalidArgument(field, `${field} is required and must not be blank`);
  return optionalText(value, field);
}

export function requireJobType(value: JobType, field = "type"): JobTypeName {
  if (value === JobType.UNSPECIFIED || JobType[value] === undefined) {
    throw new InvalidArgument(field, `${field} must be one of ${names(JobType, "JOB_TYPE_")}, got ${value}`);
  }
  return JobType[value] as JobTypeName;
}

export function jobTypes(values: readonly JobType[], field = "types"): JobTypeName[] {
  return values.map((v) => requireJobType(v, field));
}

export function jobStates(values: readonly JobState[], field = "states"): JobStateName[] {
  return values.map((value) => {
    if (value === JobState.UNSPECIFIED || JobState[value] === undefined) {
      throw new InvalidArgument(field, `${field} must hold only ${names(JobState, "JOB_STATE_")}, got ${value}`);
    }
    return JobState[value] as JobStateName;
  });
}

export function executionCluster(value: ExecutionCluster): ExecutionClusterName {
  if (ExecutionCluster[value] === undefined) {
    throw new InvalidArgument("execution_cluster", `execution_cluster must be one of ${names(ExecutionCluster, "EXECUTION_CLUSTER_")}, got ${value}`);
  }
  return ExecutionCluster[value] as ExecutionClusterName;
}

/** The input's variant must be the one for the job's type (or none). */
export function checkInput(type: JobTypeName, input: JobInput | undefined): void {
  const given = input?.kind.case;
  if (given === undefined) return;
  const expected = inputCaseFor(type);
  if (given !== expected) {
    throw new InvalidArgument(
      "input",
      `a ${type} job takes input.${snakeCase(expected)}, not input.${snakeCase(given)}`,
      "INPUT_TYPE_MISMATCH",
    );
  }
}

/**
 * JSON the service stores (input, result, diagnostic): at most `maxBytes` as
 * it travels (JOB_PAYLOAD_MAX_BYTES), nested at most MAX_JSON_NESTING deep,
 * no NUL in any string or key.
 */
export function storableJson<T extends JsonValue | null>(value: T, field: string, maxBytes: number): T {
  const bytes = payloadBytes(value);
  if (bytes > maxBytes) throw new FieldTooLarge(field, bytes, maxBytes, "JOB_PAYLOAD_MAX_BYTES");
  const depth = nesting(value, field);
  if (depth > MAX_JSON_NESTING) {
    throw new InvalidArgument(field, `${field} nests ${depth} levels of arrays and objects; at most ${MAX_JSON_NESTING} are allowed`);
  }
  return value;
}

/** Levels of arrays/objects (a scalar is 0), checking strings on the way. The parser's own recursion limit bounds the recursion. */
function nesting(value: JsonValue | null, field: string): number {
  if (typeof value === "string") storableText(value, field);
  if (value === null || typeof value !== "object") return 0;
  let deepest = 0;
  if (Array.isArray(value)) {
    for (const item of value) deepest = Math.max(deepest, nesting(item, field));
  } else {
    for (const [key, item] of Object.entries(value)) {
      storableText(key, field);
      deepest = Math.max(deepest, nesting(item, field));
    }
  }
  return deepest + 1;
}

/** A google.protobuf.Timestamp in its documented range (JSON decoding checks this; binary does not). */
export function timestamp(value: Timestamp, field: string): Timestamp {
  if (value.seconds < MIN_TIMESTAMP_SECONDS || value.seconds > MAX_TIMESTAMP_SECONDS || value.nanos < 0 || value.nanos > 999_999_999) {
    throw new InvalidArgument(field, `${field} must be a timestamp from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z`);
  }
  return value;
}

export function pageSize(value: number): number {
  if (value === 0) return DEFAULT_PAGE_SIZE;
  if (value < 0 || value > MAX_PAGE_SIZE) {
    throw new InvalidArgument("page_size", `page_size must be from 1 to ${MAX_PAGE_SIZE} (0 means ${DEFAULT_PAGE_SIZE}), got ${value}`);
  }
  return value;
}

export function nonNegative(value: bigint, field: string): number {
  if (value < 0n) throw new InvalidArgument(field, `${field} must not be negative, got ${value}`);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvalidArgument(field, `${field} is too large: ${value}`);
  return Number(value);
}

export function leaseSeconds(value: number, defaultSeconds: number): number {
  if (value === 0) return defaultSeconds;
  if (value < 1 || value > 86_400) {
    throw new InvalidArgument("lease_seconds", `lease_seconds must be from 1 to 86400 (0 means the default, ${defaultSeconds}), got ${value}`);
  }
  return value;
}

/**
 * The company a request is confined to. An API user may name only its own
 * company (or none); a service may name any, or none for all companies.
 */
export function companyScope(principal: Principal, requested: bigint, call: string): string | null {
  if (requested < 0n) throw new InvalidArgument("company_id", `company_id must be positive, got ${requested}`);
  if (principal.type === "service") return requested === 0n ? null : requested.toString();
  if (requested !== 0n && requested.toString() !== principal.companyId) {
    throw new PermissionDenied("COMPANY_MISMATCH", `you act for company ${principal.companyId} and cannot name company ${requested}`, {
      call,
      company_id: requested.toString(),
    });
  }
  return principal.companyId;
}

/** CreateJob's company: required for services, the user's own for API users. */
export function owningCompany(principal: Principal, requested: bigint): string {
  if (principal.type === "service" && requested === 0n) {
    throw new InvalidArgument("company_id", "company_id is required when a service creates a job: name the company that owns it");
  }
  return companyScope(principal, requested, "CreateJob") as string;
}

function names(enumObject: object, prefix: string): string {
  return Object.entries(enumObject)
    .filter(([key, value]) => typeof value === "number" && value !== 0 && Number.isNaN(Number(key)))
    .map(([key]) => prefix + key)
    .join(", ");
}

/** A value to quote in a message (which is also logged): short, and never a bearer token pasted by mistake. */
function clip(value: string): string {
  if (containsToken(value)) return "(a bearer token, not shown: tokens go in the authorization header)";
  return value.length > 64 ? `${value.slice(0, 64)}…` : value;
}
