// Domain errors: what went wrong, in the service's own terms. They know
// nothing of status codes; rpc/errors.ts maps each kind to one.

import type { JobStateName, TransitionCall } from "./states.js";

export type ErrorKind =
  | "invalid_argument"
  | "unauthenticated"
  | "permission_denied"
  | "not_found"
  | "failed_precondition"
  | "out_of_range"
  | "resource_exhausted"
  | "unavailable";

/** Base of every error the service means to return to a caller. */
export class DomainError extends Error {
  constructor(
    readonly kind: ErrorKind,
    /** Stable, machine-readable cause (ErrorInfo.reason). */
    readonly reason: string,
    message: string,
    /** Facts a client may act on (ErrorInfo.metadata): job_id, state, call, field … */
    readonly metadata: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class InvalidArgument extends DomainError {
  constructor(field: string, message: string, reason = "INVALID_ARGUMENT") {
    super("invalid_argument", reason, message, { field });
  }
}

export class InvalidPageToken extends DomainError {
  constructor() {
    super(
      "invalid_argument",
      "INVALID_PAGE_TOKEN",
      "page_token was not issued for this listing: pass the next_page_token of the previous page with the same filters, or leave it empty to start over",
      { field: "page_token" },
    );
  }
}

export class JobNotFound extends DomainError {
  constructor(jobId: string, call: string) {
    super("not_found", "JOB_NOT_FOUND", `no job with id ${jobId} is visible to you`, { job_id: jobId, call });
  }
}

export class InvalidTransition extends DomainError {
  constructor(jobId: string, call: TransitionCall, state: JobStateName) {
    super(
      "failed_precondition",
      "INVALID_TRANSITION",
      `${call} is not allowed while job ${jobId} is ${state}${transitionHint(call, state)}`,
      { job_id: jobId, call, state: `JOB_STATE_${state}` },
    );
  }
}

function transitionHint(call: TransitionCall, state: JobStateName): string {
  if (call === "RunJob" && state === "PENDING_CANCELLATION") {
    return ": cancellation was requested; acknowledge it with CancelJob";
  }
  if (call === "CancelJob") {
    return ": request cancellation first with RequestJobCancellation";
  }
  return "";
}

export class StaleAttempt extends DomainError {
  constructor(jobId: string, call: string, state: JobStateName, detail: string) {
    super("failed_precondition", "STALE_ATTEMPT", `${detail}; job ${jobId} is ${state}: stop working on it`, {
      job_id: jobId,
      call,
      state: `JOB_STATE_${state}`,
    });
  }
}

export class ResultTypeMismatch extends DomainError {
  constructor(jobId: string, jobType: string, state: JobStateName, given: string, expected: string) {
    super(
      "invalid_argument",
      "RESULT_TYPE_MISMATCH",
      `job ${jobId} is of type ${jobType}: its result must be the ${expected} variant, not ${given || "an empty result"}`,
      { job_id: jobId, call: "CompleteJob", field: "result", state: `JOB_STATE_${state}` },
    );
  }
}

/** A payload (input, result, diagnostic) or text over its documented size. */
export class FieldTooLarge extends DomainError {
  constructor(field: string, size: number, limit: number, setting: string) {
    super("invalid_argument", "FIELD_TOO_LARGE", `${field} takes ${size} bytes, over the limit of ${limit} (${setting})`, {
      field,
      limit: String(limit),
      size: String(size),
    });
  }
}

/** RunJob would start another attempt on a job without room left to record how it ends. */
export class JobFull extends DomainError {
  constructor(jobId: string, state: JobStateName, bytes: number, limit: number) {
    super(
      "failed_precondition",
      "JOB_FULL",
      `job ${jobId} already carries ${bytes} bytes (its failures included); another attempt could take it past JOB_MAX_BYTES (${limit}); create a new job instead`,
      { job_id: jobId, call: "RunJob", state: `JOB_STATE_${state}`, limit: String(limit) },
    );
  }
}

export class RevisionOutOfRange extends DomainError {
  constructor(jobId: string, asked: bigint, current: number) {
    super(
      "out_of_range",
      "REVISION_OUT_OF_RANGE",
      `after_revision ${asked} is beyond job ${jobId}'s current revision ${current}`,
      { job_id: jobId, call: "WatchJob", revision: String(current) },
    );
  }
}

export class Unauthenticated extends DomainError {
  constructor(reason: string, message: string) {
    super("unauthenticated", reason, message);
  }
}

export class PermissionDenied extends DomainError {
  constructor(reason: string, message: string, metadata: Record<string, string> = {}) {
    super("permission_denied", reason, message, metadata);
  }
}

export class Unavailable extends DomainError {
  constructor(reason: string, message: string, metadata: Record<string, string> = {}) {
    super("unavailable", reason, message, metadata);
  }
}
