// Domain records ↔ jobs.v1 messages. The only place that knows both shapes.

import { create, type DescMessage, fromJson, type MessageShape, type JsonValue as PbJson, toJson } from "@bufbuild/protobuf";
import { type Timestamp, TimestampSchema, type Value, ValueSchema } from "@bufbuild/protobuf/wkt";
import { InvalidArgument } from "../domain/errors.js";
import type { EventRecord, FailureRecord, JobRecord, JsonValue } from "../domain/job.js";
import type { Principal } from "../domain/principal.js";
import type { ExecutionClusterName, JobStateName, JobTypeName } from "../domain/states.js";
import {
  ExecutionCluster,
  type Job,
  type JobEvent,
  JobEventSchema,
  JobEventType,
  type JobFailure,
  JobFailureSchema,
  type JobInput,
  JobInputSchema,
  type JobResult,
  JobResultSchema,
  JobSchema,
  JobState,
  JobType,
  type Principal as PrincipalMessage,
  PrincipalSchema,
  PrincipalType,
} from "../gen/jobs/v1/job_pb.js";

export function timestampFromMicros(us: number): Timestamp {
  const seconds = Math.floor(us / 1_000_000);
  return create(TimestampSchema, { seconds: BigInt(seconds), nanos: (us - seconds * 1_000_000) * 1000 });
}

export function microsFromTimestamp(ts: Timestamp): number {
  return Number(ts.seconds) * 1_000_000 + Math.floor(ts.nanos / 1000);
}

const optionalTimestamp = (us: number | null) => (us === null ? undefined : timestampFromMicros(us));

export function principalToProto(p: Principal): PrincipalMessage {
  return p.type === "service"
    ? create(PrincipalSchema, { type: PrincipalType.SERVICE, name: p.name })
    : create(PrincipalSchema, {
        type: PrincipalType.API_USER,
        companyId: BigInt(p.companyId),
        userId: BigInt(p.userId),
      });
}

export const stateToProto = (state: JobStateName): JobState => JobState[state];
export const typeToProto = (type: JobTypeName): JobType => JobType[type];

export function inputToProto(json: JsonValue | null): JobInput | undefined {
  return json === null ? undefined : fromJson(JobInputSchema, json as PbJson);
}

export function inputToJson(input: JobInput | undefined): JsonValue | null {
  return input === undefined || input.kind.case === undefined ? null : requestJson(JobInputSchema, input, "input");
}

export function resultToProto(json: JsonValue | null): JobResult | undefined {
  return json === null ? undefined : fromJson(JobResultSchema, json as PbJson);
}

export function resultToJson(result: JobResult): JsonValue {
  return requestJson(JobResultSchema, result, "result");
}

export function diagnosticToJson(value: Value | undefined): JsonValue | null {
  return value === undefined ? null : requestJson(ValueSchema, value, "diagnostic");
}

/**
 * A request's message in protobuf's JSON form, as it is stored. What that form
 * cannot express, and binary protobuf can carry (a google.protobuf.Value with
 * no kind set, a NaN or infinite number), is the caller's INVALID_ARGUMENT.
 */
function requestJson<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>, field: string): JsonValue {
  try {
    return toJson(schema, message) as JsonValue;
  } catch (error) {
    throw new InvalidArgument(field, `${field} cannot be stored as JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function failureToProto(f: FailureRecord): JobFailure {
  return create(JobFailureSchema, {
    attempt: BigInt(f.attempt),
    executorId: f.executorId,
    message: f.message,
    diagnostic: f.diagnostic === null ? undefined : fromJson(ValueSchema, f.diagnostic as PbJson),
    failedAt: timestampFromMicros(f.failedAt),
  });
}

// A published event goes to every stream that watches it: convert it once.
const jobCache = new WeakMap<JobRecord, Job>();
const eventCache = new WeakMap<EventRecord, JobEvent>();

export function jobToProto(job: JobRecord): Job {
  const cached = jobCache.get(job);
  if (cached) return cached;
  const message = create(JobSchema, {
    id: job.id,
    type: typeToProto(job.type),
    state: stateToProto(job.state),
    companyId: BigInt(job.companyId),
    createdBy: principalToProto(job.createdBy),
    input: inputToProto(job.input),
    executorId: job.executorId,
    attempt: BigInt(job.attempt),
    revision: BigInt(job.revision),
    result: resultToProto(job.result),
    failures: job.failures.map(failureToProto),
    cancellationReason: job.cancellationReason,
    dataPlaneId: job.dataPlaneId,
    computePoolId: job.computePoolId,
    executionCluster: ExecutionCluster[job.executionCluster as ExecutionClusterName],
    leaseSeconds: job.leaseSeconds,
    leaseExpiresAt: optionalTimestamp(job.leaseExpiresAt),
    createdAt: timestampFromMicros(job.createdAt),
    updatedAt: timestampFromMicros(job.updatedAt),
    startedAt: optionalTimestamp(job.startedAt),
    finishedAt: optionalTimestamp(job.finishedAt),
  });
  jobCache.set(job, message);
  return message;
}

export function eventToProto(event: EventRecord): JobEvent {
  const cached = eventCache.get(event);
  if (cached) return cached;
  const message = create(JobEventSchema, {
    jobId: event.jobId,
    revision: BigInt(event.revision),
    type: JobEventType[event.type],
    fromState: event.fromState === null ? JobState.UNSPECIFIED : stateToProto(event.fromState),
    toState: stateToProto(event.toState),
    actor: principalToProto(event.actor),
    occurredAt: timestampFromMicros(event.occurredAt),
    job: jobToProto(event.job),
  });
  eventCache.set(event, message);
  return message;
}
