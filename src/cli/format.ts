// Human-readable output: aligned tables for lists, `key: value` blocks for one
// job, one line per event. Scripts use --json instead, so these may change.

import { toJson, type JsonValue } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate, ValueSchema } from "@bufbuild/protobuf/wkt";
import {
  ExecutionCluster,
  type Job,
  type JobEvent,
  JobEventType,
  JobInputSchema,
  JobResultSchema,
  JobState,
  JobType,
  type Principal,
  PrincipalType,
} from "../gen/jobs/v1/job_pb.js";

/** `key: value` lines with the values aligned; empty values are left out. */
export function block(entries: ReadonlyArray<readonly [string, string | undefined]>): string {
  const shown = entries.filter((e): e is [string, string] => e[1] !== undefined && e[1] !== "");
  const width = Math.max(...shown.map(([key]) => key.length)) + 1;
  // A blank key continues the entry above (several failures).
  return shown.map(([key, value]) => `${(key ? `${key}:` : "").padEnd(width)} ${value}`).join("\n") + "\n";
}

/**
 * --json output: proto JSON with every field, defaults included. Proto JSON
 * leaves out zero values, so a no-op's `changed: false` or a job's `attempt: 0`
 * would be missing for a script that reads them.
 */
export const JSON_OUTPUT = { alwaysEmitImplicit: true } as const;

export const stateName = (s: JobState): string => JobState[s] ?? String(s);
export const typeName = (t: JobType): string => JobType[t] ?? String(t);
export const eventTypeName = (t: JobEventType): string => JobEventType[t] ?? String(t);

export function time(ts: Timestamp | undefined): string {
  return ts ? timestampDate(ts).toISOString() : "";
}

export function principal(p: Principal | undefined): string {
  if (!p) return "";
  return p.type === PrincipalType.SERVICE ? `service:${p.name}` : `api_user:company=${p.companyId},user=${p.userId}`;
}

const compact = (value: JsonValue | undefined): string | undefined =>
  value === undefined || (typeof value === "object" && value !== null && Object.keys(value).length === 0) ? undefined : JSON.stringify(value);

export function jobBlock(job: Job): string {
  const failures = job.failures.map(
    (f) =>
      `attempt ${f.attempt} (${f.executorId || "no executor"}, ${time(f.failedAt)}): ${f.message}` +
      (f.diagnostic ? ` ${JSON.stringify(toJson(ValueSchema, f.diagnostic))}` : ""),
  );
  return block([
    ["id", job.id],
    ["type", typeName(job.type)],
    ["state", stateName(job.state)],
    ["company", String(job.companyId)],
    ["revision", String(job.revision)],
    ["attempt", job.attempt ? String(job.attempt) : undefined],
    ["executor", job.executorId],
    ["lease expires", time(job.leaseExpiresAt)],
    ["data plane", job.dataPlaneId],
    ["compute pool", job.computePoolId],
    ["cluster", job.executionCluster ? ExecutionCluster[job.executionCluster] : undefined],
    ["input", job.input ? compact(toJson(JobInputSchema, job.input)) : undefined],
    ["result", job.result ? compact(toJson(JobResultSchema, job.result)) : undefined],
    ...failures.map((f, i) => [i === 0 ? "failures" : "", f] as const),
    ["cancel reason", job.cancellationReason],
    ["created by", principal(job.createdBy)],
    ["created", time(job.createdAt)],
    ["updated", time(job.updatedAt)],
    ["started", time(job.startedAt)],
    ["finished", time(job.finishedAt)],
  ]);
}

export const JOB_COLUMNS = ["ID", "TYPE", "STATE", "REV", "COMPANY", "EXECUTOR", "CREATED"] as const;
export function jobRow(job: Job): string[] {
  return [job.id, typeName(job.type), stateName(job.state), String(job.revision), String(job.companyId), job.executorId, time(job.createdAt)];
}

/** A job's creation comes from no state: shown as "-", not as the enum's zero value. */
const fromStateName = (s: JobState): string => (s === JobState.UNSPECIFIED ? "-" : stateName(s));

export const EVENT_COLUMNS = ["REV", "TIME", "EVENT", "FROM", "TO", "BY"] as const;
export function eventRow(event: JobEvent): string[] {
  return [
    String(event.revision),
    time(event.occurredAt),
    eventTypeName(event.type),
    fromStateName(event.fromState),
    stateName(event.toState),
    principal(event.actor),
  ];
}

/** One event on its own line, for output that streams (watch): fixed widths instead of a table. */
export function eventLine(event: JobEvent): string {
  const [rev, at, type, from, to, by] = eventRow(event);
  const transition = event.fromState === JobState.UNSPECIFIED ? `-> ${to}` : `${from} -> ${to}`;
  return `rev ${rev.padEnd(3)}  ${at}  ${type.padEnd(22)}  ${transition}${by ? `  by ${by}` : ""}`;
}
