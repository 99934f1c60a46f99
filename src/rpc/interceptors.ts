// The three interceptors every call passes, outermost first: logging (one
// line per call), errors (domain error → status + ErrorInfo, in one place),
// auth (token → caller, scope check). Health and reflection skip auth.

import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor, type StreamRequest, type UnaryRequest } from "@connectrpc/connect";
import type { Authenticator } from "../auth/authenticator.js";
import { requireScope } from "../auth/authenticator.js";
import { DomainError, type ErrorKind } from "../domain/errors.js";
import type { Scope } from "../domain/principal.js";
import { principalKey } from "../domain/principal.js";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { JobService } from "../gen/jobs/v1/job_service_pb.js";
import type { Logger } from "../log.js";
import type { Metrics, TransitionOutcome } from "../metrics.js";
import { asUnavailable } from "../store/sql.js";
import { type CallFacts, callerKey, logFieldsKey } from "./context.js";

export const ERROR_DOMAIN = "jobs.v1";

const CODES: Record<ErrorKind, Code> = {
  invalid_argument: Code.InvalidArgument,
  unauthenticated: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
  not_found: Code.NotFound,
  failed_precondition: Code.FailedPrecondition,
  out_of_range: Code.OutOfRange,
  resource_exhausted: Code.ResourceExhausted,
  unavailable: Code.Unavailable,
};

/** Scopes per JobService method (SPEC §6): reads need jobs:read, everything else jobs:write. */
const READ_METHODS = new Set(["GetJob", "ListJobs", "CountJobs", "ListJobEvents", "WatchJob", "WatchJobs"]);
export function scopeFor(method: string): Scope {
  return READ_METHODS.has(method) ? "jobs:read" : "jobs:write";
}

/**
 * Runs `onEnd` when a streaming response ends, and lets `mapError` replace its
 * error: what `try { yield* messages } catch … finally …` in an async
 * generator does, as a plain iterator. A stream holds two of these for its
 * whole life (logging, errors), and an idle stream's suspended async
 * generator, with its pending request and delegation, cost about a KiB each.
 */
class Around<T> implements AsyncIterableIterator<T> {
  private source: AsyncIterator<T> | null = null;
  private ended = false;

  constructor(
    private readonly messages: AsyncIterable<T>,
    private readonly mapError: (error: unknown) => unknown,
    private readonly onEnd: ((error: unknown) => void) | null,
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<T>> {
    if (this.ended) return Promise.resolve({ done: true, value: undefined });
    return this.settle(() => (this.source ??= this.messages[Symbol.asyncIterator]()).next());
  }

  return(value?: unknown): Promise<IteratorResult<T>> {
    const source = this.source;
    // Not started, or over: like a generator, nothing to forward and no onEnd.
    if (this.ended || source === null) {
      this.ended = true;
      return Promise.resolve({ done: true, value: value as T });
    }
    if (!source.return) {
      this.end(undefined);
      return Promise.resolve({ done: true, value: value as T });
    }
    return this.settle(() => source.return?.(value) as Promise<IteratorResult<T>>);
  }

  throw(error?: unknown): Promise<IteratorResult<T>> {
    const source = this.source;
    if (this.ended || source === null) {
      this.ended = true;
      return Promise.reject(error);
    }
    if (!source.throw) {
      return this.settle(async () => {
        await source.return?.();
        throw error;
      });
    }
    return this.settle(() => source.throw?.(error) as Promise<IteratorResult<T>>);
  }

  private settle(step: () => Promise<IteratorResult<T>>): Promise<IteratorResult<T>> {
    let pending: Promise<IteratorResult<T>>;
    try {
      pending = step();
    } catch (error) {
      pending = Promise.reject(error);
    }
    // then(), not an async function: a pending await would hold a suspended frame for as long as the stream idles.
    return pending.then(this.passed, this.failed);
  }

  private readonly passed = (result: IteratorResult<T>): IteratorResult<T> => {
    if (result.done) this.end(undefined);
    return result;
  };

  private readonly failed = (error: unknown): never => {
    const failure = this.mapError(error);
    this.end(failure);
    throw failure;
  };

  private end(failure: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd?.(failure);
  }
}

function around<T>(messages: AsyncIterable<T>, mapError: (error: unknown) => unknown, onEnd?: (error: unknown) => void): AsyncIterable<T> {
  return new Around(messages, mapError, onEnd ?? null);
}

const TRANSITION_CALLS = new Set(["RunJob", "CompleteJob", "FailJob", "RequestJobCancellation", "CancelJob"]);
const TRANSITION_REFUSALS: Record<string, TransitionOutcome> = { INVALID_TRANSITION: "rejected", STALE_ATTEMPT: "stale_attempt" };

/**
 * One log line per call (SPEC §7: LOG_LEVEL info) with method, code,
 * duration, principal and job id, and the RPC and transition metrics.
 */
export function loggingInterceptor(log: Logger, metrics?: Metrics): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const facts: CallFacts = {};
    req.contextValues.set(logFieldsKey, facts);
    const method = req.service.typeName === JobService.typeName ? req.method.name : `${req.service.typeName}/${req.method.name}`;
    const finish = (error: unknown) => {
      const failure = error === undefined ? undefined : ConnectError.from(error);
      const code = failure === undefined ? "ok" : codeName(failure.code);
      const elapsedMs = performance.now() - started;
      if (metrics) {
        metrics.rpc(method, code, elapsedMs / 1000);
        if (TRANSITION_CALLS.has(method)) {
          const outcome = facts.changed !== undefined ? (facts.changed ? "changed" : "noop") : TRANSITION_REFUSALS[facts.reason ?? ""];
          if (outcome) metrics.transition(method, outcome);
        }
      }
      const level = failure?.code === Code.Internal ? "error" : "info";
      if (!log.enabled(level)) return;
      const caller = req.contextValues.get(callerKey);
      log[level]("rpc", {
        method,
        code,
        duration_ms: Math.round(elapsedMs * 100) / 100,
        principal: caller ? principalKey(caller.principal) : undefined,
        token_id: caller?.tokenId,
        job_id: facts.jobId ?? requestedJobId(req),
        created: facts.created,
        changed: facts.changed,
        from_state: facts.fromState,
        to_state: facts.toState,
        reason: facts.reason,
        error: failure?.rawMessage,
      });
    };
    try {
      const res = await next(req);
      if (!res.stream) {
        finish(undefined);
        return res;
      }
      return { ...res, message: around(res.message, (e) => e, finish) };
    } catch (error) {
      finish(error);
      throw error;
    }
  };
}

/** The job a unary call named, for the line of a call refused before its handler ran (auth, scope). */
function requestedJobId(req: UnaryRequest | StreamRequest): string | undefined {
  if (req.stream) return undefined;
  const { jobId } = req.message as { jobId?: unknown };
  return typeof jobId === "string" && jobId !== "" ? jobId.slice(0, 64) : undefined;
}

/** Counts unary calls in flight, so draining knows when the last one has answered. */
export class InFlight {
  count = 0;
  readonly interceptor: Interceptor = (next) => async (req) => {
    if (req.stream) return next(req);
    this.count++;
    try {
      return await next(req);
    } finally {
      this.count--;
    }
  };
}

export function errorInterceptor(log: Logger): Interceptor {
  return (next) => async (req) => {
    const call = req.method.name;
    const convert = (error: unknown) => {
      const converted = toConnectError(error, call, log);
      const facts = req.contextValues.get(logFieldsKey);
      if (facts) facts.reason = reasonOf(converted);
      return converted;
    };
    try {
      const res = await next(req);
      return res.stream ? { ...res, message: around(res.message, convert) } : res;
    } catch (error) {
      throw convert(error);
    }
  };
}

export function authInterceptor(authenticator: Authenticator): Interceptor {
  return (next) => async (req) => {
    if (req.service.typeName !== JobService.typeName) return next(req);
    // SPEC §4 checks the message size before the token. A unary call's message
    // is read before any interceptor runs; a stream's is read on demand, so
    // the watch streams' one message is read here first, which refuses an
    // oversized (or malformed) one as a unary call's would be.
    if (req.stream && req.method.methodKind === "server_streaming") req = { ...req, message: await readAhead(req.message, req.signal) };
    const caller = await authenticator.authenticate(req.header.get("authorization"));
    // Known before the scope check, so that a refused call's log line names who was refused.
    req.contextValues.set(callerKey, caller);
    requireScope(caller, scopeFor(req.method.name), req.method.name);
    return next(req);
  };
}

/**
 * Reads the first item of `source` now; the result yields it, then the rest of
 * `source`. A message that never comes is given up when `signal` aborts (the
 * call's deadline, the client's reset), as a unary call's body is.
 */
async function readAhead<T>(source: AsyncIterable<T>, signal: AbortSignal): Promise<AsyncIterable<T>> {
  const iterator = source[Symbol.asyncIterator]();
  let first: IteratorResult<T> | null = await untilAborted(iterator.next(), signal);
  return {
    [Symbol.asyncIterator]: () => ({
      next: () => {
        if (first === null) return iterator.next();
        const result = first;
        first = null;
        return Promise.resolve(result);
      },
      return: (value?: unknown) => iterator.return?.(value) ?? Promise.resolve({ done: true as const, value: undefined as never }),
    }),
  };
}

/** `promise`, or the signal's reason once it aborts first. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

export function toConnectError(error: unknown, call: string, log: Logger): ConnectError {
  const unavailable = asUnavailable(error);
  if (unavailable) error = unavailable;
  if (error instanceof DomainError) {
    return new ConnectError(error.message, CODES[error.kind], undefined, [
      errorInfo(error.reason, { call, ...error.metadata }),
    ]);
  }
  if (error instanceof ConnectError) {
    if (error.details.length > 0 || error.code === Code.Canceled) return error;
    return new ConnectError(error.rawMessage, error.code, error.metadata, [errorInfo(codeName(error.code).toUpperCase(), { call })], error.cause);
  }
  // A bug, not the caller's doing: log it in full, tell the caller only a reference.
  const reference = randomUUID();
  log.error("internal error", {
    call,
    reference,
    error: error instanceof Error ? error.message : String(error),
    stack: error instanceof Error ? error.stack : undefined,
  });
  return new ConnectError(`internal error; the server logged it with reference ${reference}`, Code.Internal, undefined, [
    errorInfo("INTERNAL", { call, reference }),
  ]);
}

function reasonOf(error: ConnectError): string | undefined {
  for (const detail of error.details) {
    if ("desc" in detail && detail.desc === ErrorInfoSchema) return (detail.value as { reason?: string }).reason;
  }
  return undefined;
}

/** A `google.rpc.ErrorInfo` detail of this service's domain, for a ConnectError. */
export function errorInfo(reason: string, metadata: Record<string, string>) {
  return { desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { reason, domain: ERROR_DOMAIN, metadata }) };
}

function codeName(code: Code): string {
  return Code[code].replace(/[A-Z]/g, (c, i: number) => (i ? "_" : "") + c).toLowerCase();
}
