// WatchJob and WatchJobs (SPEC §5): replay or snapshot from the database,
// then live events from the hub, with no gap and no duplicate at the seam.
//
// The order is what makes the seam safe: subscribe first (events start
// queueing), make sure the notifier is reading the feed, then read the
// replay/snapshot. Anything committed after that read arrives through the
// queue; anything both read and queued is dropped by revision.

import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { RevisionOutOfRange, Unavailable } from "../domain/errors.js";
import type { EventRecord, JobRecord } from "../domain/job.js";
import { FINAL_STATES, FINISHED_STATES, type JobStateName } from "../domain/states.js";
import type { EventHub } from "../events/hub.js";
import type { Notifier } from "../events/notifier.js";
import { WatchQueue } from "../events/watch-queue.js";
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
  /** Aborted when the server starts draining: streams then end UNAVAILABLE so clients reconnect elsewhere. */
  readonly drainSignal?: AbortSignal;
  /** How many streams may read their replay or snapshot at once (see admission.ts). */
  readonly watchSetupSlots?: number;
}

const REPLAY_PAGE = 500;

type WatchHandlers = Pick<ServiceImpl<typeof JobService>, "watchJob" | "watchJobs">;

export function createWatchHandlers(deps: WatchDeps): WatchHandlers {
  const { store, hub } = deps;
  const admission = new Admission(deps.watchSetupSlots ?? 8);
  const heartbeatMs = deps.watchHeartbeatSeconds * 1000;
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
      const signal = streamSignal(ctx, deps.drainSignal);
      try {
        const { job, firstPage } = await admission.run(async () => {
          await deps.notifier.ensureActive();
          const job = await store.get(jobId, principal, "WatchJob");
          if (after > job.revision) throw new RevisionOutOfRange(jobId, req.afterRevision, job.revision);
          // A client resuming at the current revision (the usual reconnect) needs no replay read.
          const firstPage = after < job.revision ? await store.events(jobId, after, REPLAY_PAGE) : [];
          return { job, firstPage };
        });
        if (after === job.revision && FINAL_STATES.has(job.state)) return;

        let last = after;
        const send = (event: EventRecord) => {
          last = event.revision;
          return create(WatchJobResponseSchema, { kind: { case: "event", value: eventToProto(event) } });
        };
        /** Events after `last` up to `upTo`, from the log: fills a gap in the live queue. */
        async function* fromLog(upTo: number) {
          while (last < upTo) {
            const events = await store.events(jobId, last, Math.min(REPLAY_PAGE, upTo - last));
            if (events.length === 0) return;
            yield* events;
          }
        }

        // Replay, a page at a time.
        for (let page = firstPage; ; page = await store.events(jobId, last, REPLAY_PAGE)) {
          for (const event of page) {
            yield send(event);
            if (FINISHED_STATES.has(event.toState)) return;
          }
          if (page.length < REPLAY_PAGE) break;
        }
        for (;;) {
          const next = await queue.next(heartbeatMs, signal);
          if (next.kind === "idle") {
            yield create(WatchJobResponseSchema, { kind: { case: "heartbeat", value: heartbeat(last) } });
            continue;
          }
          if (next.kind !== "event") {
            const error = endOfStream(next.kind, deps.drainSignal, `after_revision=${last}`);
            if (error) throw error;
            return;
          }
          const { event } = next;
          if (event.revision <= last) continue;
          if (event.revision > last + 1) {
            for await (const missed of fromLog(event.revision - 1)) {
              yield send(missed);
              if (FINISHED_STATES.has(missed.toState)) return;
            }
          }
          yield send(event);
          if (FINISHED_STATES.has(event.toState)) return;
        }
      } finally {
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
      const signal = streamSignal(ctx, deps.drainSignal);
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
          const next = await queue.next(heartbeatMs, signal);
          if (next.kind === "idle") {
            yield create(WatchJobsResponseSchema, { kind: { case: "heartbeat", value: heartbeat(0) } });
            continue;
          }
          if (next.kind !== "event") {
            const error = endOfStream(next.kind, deps.drainSignal, "a fresh snapshot");
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
        unsubscribe();
      }
    },
  };
}

function streamSignal(ctx: HandlerContext, drain: AbortSignal | undefined): AbortSignal {
  return drain ? AbortSignal.any([ctx.signal, drain]) : ctx.signal;
}

/** Why a live stream stops: the client left (returns quietly), the server drains, or the client fell behind. */
function endOfStream(kind: "overflow" | "closed", drain: AbortSignal | undefined, resume: string): Error | null {
  if (kind === "overflow") {
    return new Unavailable(
      "WATCH_LAGGING",
      `the stream fell too far behind (the client read too slowly); reconnect with ${resume} to continue without loss`,
    );
  }
  if (drain?.aborted) {
    return new Unavailable("SERVER_DRAINING", `the server is shutting down; reconnect with ${resume} to continue without loss`);
  }
  return null;
}
