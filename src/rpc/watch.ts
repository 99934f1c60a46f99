// WatchJob and WatchJobs (docs/contract.md §5): replay or snapshot from the database,
// then live events from the hub, with no gap and no duplicate at the seam.
//
// The order is what makes the seam safe: subscribe first (events start
// queueing), make sure the notifier is reading the feed, then read the
// replay/snapshot. Anything committed after that read arrives through the
// queue; anything both read and queued is dropped by revision.

import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { StreamTokens } from "../auth/stream-tokens.js";
import { RevisionOutOfRange, Unauthenticated, Unavailable } from "../domain/errors.js";
import type { EventRecord, JobRecord } from "../domain/job.js";
import { FINAL_STATES, FINISHED_STATES, type JobStateName } from "../domain/states.js";
import type { EventHub } from "../events/hub.js";
import type { Notifier } from "../events/notifier.js";
import { IdleClock, WatchQueue } from "../events/watch-queue.js";
import { Admission } from "./admission.js";
import type { JobService } from "../gen/jobs/v1/job_service_pb.js";
import { HeartbeatSchema } from "../gen/jobs/v1/job_pb.js";
import {
  SnapshotCompleteSchema,
  WatchJobResponseSchema,
  WatchJobsResponseSchema,
} from "../gen/jobs/v1/job_service_pb.js";
import type { JobStore } from "../store/job-store.js";
import { annotate, callerOf } from "./context.js";
import { eventToProto, jobToProto, timestampFromMicros } from "./convert.js";
import * as v from "./validate.js";

export interface WatchDeps {
  readonly store: JobStore;
  readonly hub: EventHub;
  readonly notifier: Pick<Notifier, "ensureActive">;
  readonly watchHeartbeatSeconds: number;
  readonly watchBufferEvents: number;
  /** Aborted when the server starts draining (every call's signal aborts then too): streams end UNAVAILABLE so clients reconnect elsewhere. */
  readonly drainSignal?: AbortSignal;
  /** How many streams may read their replay or snapshot at once (see admission.ts). */
  readonly watchSetupSlots?: number;
  /** Ends the streams of a token once it is revoked. */
  readonly streamTokens?: StreamTokens;
  /** Told when the database stops answering (the health probe): open streams then end UNAVAILABLE. */
  readonly onDatabaseLost?: (listener: () => void) => void;
}

const REPLAY_PAGE = 500;

type WatchHandlers = Pick<ServiceImpl<typeof JobService>, "watchJob" | "watchJobs">;

export function createWatchHandlers(deps: WatchDeps): WatchHandlers {
  const { store, hub } = deps;
  const admission = new Admission(deps.watchSetupSlots ?? 8);
  const clock = new IdleClock(deps.watchHeartbeatSeconds * 1000);
  // A stream would otherwise sit silent through an outage, its client none the wiser: it ends, and the client resumes elsewhere or later.
  const open = new Set<WatchQueue>();
  deps.onDatabaseLost?.(() => {
    for (const queue of open) queue.databaseUnreachable();
  });
  /**
   * Ends the queue's next() with "closed" when the client leaves or the server
   * drains (the call's signal aborts on both), with "revoked" when the
   * caller's token is revoked, and with "unreachable" when the database stops
   * answering (until unfollow).
   */
  const follow = (queue: WatchQueue, ctx: HandlerContext) => {
    if (ctx.signal.aborted) queue.close();
    ctx.signal.addEventListener("abort", queue, { once: true });
    deps.streamTokens?.add(callerOf(ctx).tokenId, queue);
    open.add(queue);
  };
  const unfollow = (queue: WatchQueue, ctx: HandlerContext) => {
    open.delete(queue);
    ctx.signal.removeEventListener("abort", queue);
    deps.streamTokens?.delete(callerOf(ctx).tokenId, queue);
  };
  const heartbeat = (revision: number) =>
    create(HeartbeatSchema, { revision: BigInt(revision), sentAt: timestampFromMicros(Date.now() * 1000) });

  return {
    async *watchJob(req, ctx) {
      const { principal } = callerOf(ctx);
      const jobId = v.requireJobId(req.jobId);
      const after = v.nonNegative(req.afterRevision, "after_revision");
      annotate(ctx, { jobId });
      const queue = new WatchQueue(deps.watchBufferEvents);
      const unsubscribe = hub.subscribeJob(jobId, queue);
      follow(queue, ctx);
      try {
        // Only what the stream needs later leaves this callback: an idle stream's frame would hold the job for its whole life.
        let { revision, final, page } = await admission.run(async () => {
          await deps.notifier.ensureActive();
          const job = await store.get(jobId, principal, "WatchJob");
          if (after > job.revision) throw new RevisionOutOfRange(jobId, req.afterRevision, job.revision);
          // A client resuming at the current revision (the usual reconnect) needs no replay read.
          const page = after < job.revision ? await store.events(jobId, after, REPLAY_PAGE) : NO_EVENTS;
          return { revision: job.revision, final: FINAL_STATES.has(job.state), page };
        });
        if (after === revision && final) return;

        let last = after;
        // Replay, a page at a time.
        for (;;) {
          for (let i = 0; i < page.length; i++) {
            last = page[i].revision;
            yield eventResponse(page[i]);
            if (FINISHED_STATES.has(page[i].toState)) return;
          }
          if (page.length < REPLAY_PAGE) break;
          page = await store.events(jobId, last, REPLAY_PAGE);
        }
        // Dropped, not held while the stream idles.
        page = NO_EVENTS;
        for (;;) {
          const next = await queue.next(clock);
          if (next.kind === "idle") {
            yield create(WatchJobResponseSchema, { kind: { case: "heartbeat", value: heartbeat(last) } });
            continue;
          }
          if (next.kind !== "event") {
            const error = endOfStream(next.kind, deps.drainSignal, ctx.signal, `after_revision=${last}`);
            if (error) throw error;
            return;
          }
          revision = next.event.revision;
          if (revision <= last) continue;
          if (revision > last + 1) {
            for await (const missed of fromLog(store, jobId, last, revision - 1)) {
              last = missed.revision;
              yield eventResponse(missed);
              if (FINISHED_STATES.has(missed.toState)) return;
            }
          }
          last = revision;
          const finished = FINISHED_STATES.has(next.event.toState);
          yield eventResponse(next.event);
          if (finished) return;
        }
      } finally {
        unfollow(queue, ctx);
        unsubscribe();
      }
    },

    async *watchJobs(req, ctx) {
      const { principal } = callerOf(ctx);
      const filter = {
        states: v.jobStates(req.states),
        types: v.jobTypes(req.types),
        executorId: v.optionalIdentifier(req.executorId, "executor_id"),
        companyId: v.companyScope(principal, req.companyId, "WatchJobs"),
      };
      const matches = (job: JobRecord, state: JobStateName | null, executorId: string) =>
        state !== null &&
        (filter.states.length === 0 || filter.states.includes(state)) &&
        (filter.types.length === 0 || filter.types.includes(job.type)) &&
        (filter.executorId === "" || filter.executorId === executorId) &&
        (filter.companyId === null || filter.companyId === job.companyId);
      // A job that matched before the change or matches after it: watchers see jobs enter and leave their set.
      const queue = new WatchQueue(
        deps.watchBufferEvents,
        (e) => matches(e.job, e.toState, e.job.executorId) || matches(e.job, e.fromState, e.previousExecutorId),
      );
      const unsubscribe = hub.subscribeFiltered(queue);
      follow(queue, ctx);
      try {
        const snapshot = await admission.run(async () => {
          await deps.notifier.ensureActive();
          return store.unfinished(filter);
        });
        // Live events of snapshot jobs at or below the snapshot's revision are already known.
        const snapshotRevision = new Map<string, number>();
        for (const job of snapshot) {
          snapshotRevision.set(job.id, job.revision);
          yield create(WatchJobsResponseSchema, { kind: { case: "snapshot", value: jobToProto(job) } });
        }
        yield create(WatchJobsResponseSchema, { kind: { case: "synced", value: create(SnapshotCompleteSchema) } });
        for (;;) {
          const next = await queue.next(clock);
          if (next.kind === "idle") {
            yield create(WatchJobsResponseSchema, { kind: { case: "heartbeat", value: heartbeat(0) } });
            continue;
          }
          if (next.kind !== "event") {
            const error = endOfStream(next.kind, deps.drainSignal, ctx.signal, "a fresh snapshot");
            if (error) throw error;
            return;
          }
          const { event } = next;
          const known = snapshotRevision.get(event.jobId);
          if (known !== undefined) {
            if (event.revision <= known) continue;
            snapshotRevision.delete(event.jobId);
          }
          yield create(WatchJobsResponseSchema, { kind: { case: "event", value: eventToProto(event) } });
        }
      } finally {
        unfollow(queue, ctx);
        unsubscribe();
      }
    },
  };
}

const NO_EVENTS: readonly EventRecord[] = [];

function eventResponse(event: EventRecord) {
  return create(WatchJobResponseSchema, { kind: { case: "event", value: eventToProto(event) } });
}

/** Events after `after` up to `upTo`, from the log: fills a gap in the live queue. */
async function* fromLog(store: JobStore, jobId: string, after: number, upTo: number): AsyncGenerator<EventRecord> {
  while (after < upTo) {
    const events = await store.events(jobId, after, Math.min(REPLAY_PAGE, upTo - after));
    if (events.length === 0) return;
    yield* events;
    after = events[events.length - 1].revision;
  }
}

/**
 * Why a live stream stops: the server drains, the client fell behind, its
 * token was revoked, the database stopped answering, its deadline passed (an
 * OK end would tell the client its job had finished), or the client left
 * (then it returns quietly: nobody listens).
 */
function endOfStream(
  kind: "overflow" | "closed" | "revoked" | "unreachable",
  drain: AbortSignal | undefined,
  call: AbortSignal,
  resume: string,
): Error | null {
  if (kind === "unreachable") {
    return new Unavailable("DATABASE_UNAVAILABLE", `the job database stopped answering; reconnect with ${resume} and backoff to continue without loss`);
  }
  if (kind === "revoked") {
    return new Unauthenticated("INVALID_TOKEN", "the bearer token this stream was opened with has been revoked");
  }
  if (kind === "overflow") {
    return new Unavailable(
      "WATCH_LAGGING",
      `the stream fell too far behind (the client read too slowly); reconnect with ${resume} to continue without loss`,
    );
  }
  if (drain?.aborted) {
    return new Unavailable("SERVER_DRAINING", `the server is shutting down; reconnect with ${resume} to continue without loss`);
  }
  if (call.aborted && ConnectError.from(call.reason).code === Code.DeadlineExceeded) return ConnectError.from(call.reason);
  return null;
}
