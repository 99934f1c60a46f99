// The interceptors every call that passes the request gate goes through,
// outermost first: in-flight counting (draining waits for unary calls), the
// call's outcome (noted for its log line and metrics, which the transport
// writes when the response closes: ./call-log.ts) and errors (whatever a
// handler throws becomes a status with an ErrorInfo, in ./errors.ts).
// Authentication and scope are decided before any of these, by the gate
// (./transport/gate.ts), from the headers alone.

import { ConnectError, type Interceptor, type StreamRequest, type UnaryRequest } from "@connectrpc/connect";
import type { Logger } from "../log.js";
import { callRecordKey, noteOutcome } from "./call-log.js";
import { isUuid } from "./validate.js";
import { type CallFacts, logFieldsKey } from "./context.js";
import { clientEnded, toConnectError } from "./errors.js";

/**
 * Runs `onEnd` when a streaming response ends, and lets `mapError` replace its
 * error (or `endError` its normal end): what `try { yield* messages } catch …
 * finally …` in an async generator does, as a plain iterator. A stream holds
 * two of these for its whole life (outcome, errors), and an idle stream's
 * suspended async generator, with its pending request and delegation, would
 * cost several times as much.
 */
class Around<T> implements AsyncIterableIterator<T> {
  private source: AsyncIterator<T> | null = null;
  private ended = false;

  constructor(
    private readonly messages: AsyncIterable<T>,
    private readonly mapError: (error: unknown) => unknown,
    private readonly onEnd: ((error: unknown) => void) | null,
    /** When the messages are over: an error to end with instead, or null to end as they did. */
    private readonly endError: (() => unknown) | null,
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
    if (!result.done) return result;
    const error = this.endError?.();
    if (error) return this.failed(error);
    this.end(undefined);
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

function around<T>(
  messages: AsyncIterable<T>,
  mapError: (error: unknown) => unknown,
  onEnd?: (error: unknown) => void,
  endError?: () => unknown,
): AsyncIterable<T> {
  return new Around(messages, mapError, onEnd ?? null, endError ?? null);
}

/**
 * Notes what the handler came to, and gives it a place for the facts of its
 * log line (job id, state change …). A stream's outcome is known when its
 * last message has gone to Connect.
 */
export const outcomeInterceptor: Interceptor = (next) => async (req) => {
  const facts: CallFacts = {};
  req.contextValues.set(logFieldsKey, facts);
  const call = req.contextValues.get(callRecordKey);
  if (call !== undefined) call.requestedJobId = requestedJobId(req);
  const finish = (error: unknown) => noteOutcome(req.contextValues, error === undefined ? undefined : ConnectError.from(error));
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

/** The job a unary call named, for the line of a call its handler refused before noting it. */
function requestedJobId(req: UnaryRequest | StreamRequest): string | undefined {
  if (req.stream) return undefined;
  const { jobId } = req.message as { jobId?: unknown };
  // Only an id: whatever else was pasted there (a token, say) stays out of the log.
  return typeof jobId === "string" && isUuid(jobId) ? jobId : undefined;
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

/**
 * Whatever a handler throws becomes a status with an ErrorInfo. A stream
 * whose handler ends it because its client left or its deadline passed (the
 * call's signal aborted) ends CANCELLED or DEADLINE_EXCEEDED, not OK.
 */
export function errorInterceptor(log: Logger): Interceptor {
  return (next) => async (req) => {
    const call = req.method.name;
    const convert = (error: unknown) => toConnectError(error, call, log, req.signal);
    try {
      const res = await next(req);
      return res.stream ? { ...res, message: around(res.message, convert, undefined, () => clientEnded(undefined, req.signal, call)) } : res;
    } catch (error) {
      throw convert(error);
    }
  };
}
