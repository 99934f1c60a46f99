// Calls any JobService method — unary or server stream — with exactly the
// `authorization` header values a test chooses (none, one, or several), and
// reports the outcome the same way for both kinds. The auth and tenancy tests
// walk every RPC with it, so a stream cannot slip through a matrix meant for
// unary calls.

import * as grpc from "@grpc/grpc-js";
import { type JobsClient, type Msg, reader, type RpcError, withErrorInfo } from "./grpc.js";

/** The two server-streaming methods; every other JobService method is unary. */
export const STREAMING_METHODS: ReadonlySet<string> = new Set(["WatchJob", "WatchJobs"]);

export type Outcome = { readonly ok: true; readonly first: Msg | null } | { readonly ok: false; readonly error: RpcError };

/** Metadata carrying these `authorization` values, each as its own header entry. */
export function authorizationMetadata(values: readonly string[]): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const value of values) md.add("authorization", value);
  return md;
}

/** `Bearer <token>`, or no header at all for null. */
export function bearer(token: string | null): string[] {
  return token === null ? [] : [`Bearer ${token}`];
}

const lowerFirst = (method: string) => method[0].toLowerCase() + method.slice(1);

/**
 * Calls `method`. A unary call succeeds or fails; a stream succeeds when its
 * first message (or a clean end) arrives, fails when it ends with an error
 * first. Streams are cancelled once that is known.
 */
export async function attempt(client: JobsClient, method: string, request: Msg, authorization: readonly string[]): Promise<Outcome> {
  // biome-ignore lint: dynamic method lookup on the untyped grpc-js client
  const raw = client.raw as any;
  const md = authorizationMetadata(authorization);
  if (!STREAMING_METHODS.has(method)) {
    return new Promise((resolve) => {
      raw[lowerFirst(method)](request, md, (err: grpc.ServiceError | null, res: Msg) =>
        resolve(err ? { ok: false, error: withErrorInfo(err) } : { ok: true, first: res }),
      );
    });
  }
  const stream = raw[lowerFirst(method)](request, md) as grpc.ClientReadableStream<Msg>;
  // The reader below surfaces the stream's error; this keeps the CANCELLED that cancel() causes from going unhandled.
  stream.on("error", () => {});
  try {
    const first = await reader(stream).next(10_000);
    return { ok: true, first };
  } catch (error) {
    if ((error as RpcError).code === undefined) throw error;
    return { ok: false, error: error as RpcError };
  } finally {
    stream.cancel();
  }
}

/** Like `attempt`, but the call must fail: resolves with its error. */
export async function failure(client: JobsClient, method: string, request: Msg, authorization: readonly string[]): Promise<RpcError> {
  const outcome = await attempt(client, method, request, authorization);
  if (outcome.ok) throw new Error(`${method} succeeded but was expected to fail: ${JSON.stringify(outcome.first).slice(0, 300)}`);
  return outcome.error;
}

/** Like `attempt`, but the call must succeed: resolves with its reply (a stream's first message). */
export async function success(client: JobsClient, method: string, request: Msg, authorization: readonly string[]): Promise<Msg | null> {
  const outcome = await attempt(client, method, request, authorization);
  if (!outcome.ok) throw new Error(`${method} failed with code ${outcome.error.code}: ${outcome.error.details}`);
  return outcome.first;
}

/** Polls `check` until it returns true or `deadlineMs` passes; resolves with whether it did. */
export async function eventually(check: () => Promise<boolean>, deadlineMs: number, intervalMs = 100): Promise<boolean> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
