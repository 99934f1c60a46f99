// How much a job carries, so that every reply holding one stays under the
// 4 MiB that stock gRPC clients accept by default. Sizes are upper bounds of
// the protobuf encoding, computed from the stored JSON without encoding it:
// a google.protobuf.Value costs more per number than JSON does, so JSON's
// length alone would undercount.

import type { JobRecord, JsonValue } from "./job.js";

export interface JobLimits {
  /** The most an input, a result or a failure's diagnostic may take. */
  readonly payloadBytes: number;
  /** The most a whole job may take. */
  readonly jobBytes: number;
}

/** The longest a message, a reason or another free text may be, in characters. */
export const MAX_TEXT_CHARACTERS = 64 * 1024;

/** What a job's fixed fields (ids, states, timestamps, principal) can take at most. */
const JOB_FIXED_BYTES = 4 * 1024;
/** What a failure entry's fixed fields (attempt, executor, time) can take at most. */
const FAILURE_FIXED_BYTES = 512;

/** UTF-8 bytes of a string, without encoding it. */
export function textBytes(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    // A surrogate pair (4 bytes) is two code units of 2 each.
    bytes += code < 0x80 ? 1 : code < 0x800 || (code >= 0xd800 && code <= 0xdfff) ? 2 : 3;
  }
  return bytes;
}

/** An upper bound of a JSON value's size as a google.protobuf.Value (or a message with the same fields). */
export function payloadBytes(value: JsonValue | null | undefined): number {
  if (value === null || value === undefined || typeof value === "boolean") return 2;
  if (typeof value === "number") return 11;
  if (typeof value === "string") return textBytes(value) + 6;
  let bytes = 6;
  if (Array.isArray(value)) {
    for (const item of value) bytes += payloadBytes(item) + 6;
  } else {
    for (const key in value) bytes += textBytes(key) + payloadBytes(value[key]) + 12;
  }
  return bytes;
}

/** An upper bound of a job's size in a reply. */
export function jobBytes(job: JobRecord): number {
  let bytes = JOB_FIXED_BYTES + payloadBytes(job.input) + payloadBytes(job.result) + textBytes(job.cancellationReason) + textBytes(job.executorId);
  for (const failure of job.failures) bytes += FAILURE_FIXED_BYTES + textBytes(failure.executorId) + textBytes(failure.message) + payloadBytes(failure.diagnostic);
  return bytes;
}

/**
 * The room a job must have left for RunJob to start another attempt: the
 * largest result or failure the attempt may add, and a cancellation reason.
 * With it, a running job can always record how its attempt ended.
 */
export function attemptReserve(limits: JobLimits): number {
  return limits.payloadBytes + 2 * (3 * MAX_TEXT_CHARACTERS) + 2 * FAILURE_FIXED_BYTES;
}

/** The smallest job limit that lets any first attempt end, whatever it carries. */
export function smallestJobLimit(payloadBytes: number): number {
  return JOB_FIXED_BYTES + payloadBytes + attemptReserve({ payloadBytes, jobBytes: 0 });
}
