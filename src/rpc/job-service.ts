// jobs.v1.JobService: thin handlers. Each validates its request, asks the
// store, and converts the answer; rules live in domain/, SQL in store/.

import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { InvalidArgument } from "../domain/errors.js";
import type { JobRecord, TransitionArgs } from "../domain/job.js";
import { type JobLimits, jobBytes } from "../domain/job-size.js";
import { type Principal, principalKey } from "../domain/principal.js";
import { JOB_STATES } from "../domain/states.js";
import { JobState } from "../gen/jobs/v1/job_pb.js";
import {
  CancelJobResponseSchema,
  CompleteJobResponseSchema,
  type CountJobsRequest,
  CountJobsResponseSchema,
  CreateJobResponseSchema,
  FailJobResponseSchema,
  GetJobResponseSchema,
  HeartbeatJobResponseSchema,
  JobService,
  ListJobEventsResponseSchema,
  type ListJobsRequest,
  ListJobsResponseSchema,
  RequestJobCancellationResponseSchema,
  RunJobResponseSchema,
} from "../gen/jobs/v1/job_service_pb.js";
import type { JobCursor, JobFilter, JobStore } from "../store/job-store.js";
import { annotate, callerOf } from "./context.js";
import { diagnosticToJson, eventToProto, inputToJson, jobToProto, microsFromTimestamp, resultToJson } from "./convert.js";
import { decodePageToken, encodePageToken, fingerprint } from "./page-token.js";
import { readPage } from "./paging.js";
import * as v from "./validate.js";
import { createWatchHandlers, type WatchDeps } from "./watch.js";

export interface JobServiceDeps extends WatchDeps {
  readonly store: JobStore;
  readonly leaseDefaultSeconds: number;
  /** What a job may carry (JOB_PAYLOAD_MAX_BYTES, JOB_MAX_BYTES). */
  readonly limits: JobLimits;
}

export function createJobService(deps: JobServiceDeps): ServiceImpl<typeof JobService> {
  const { store } = deps;

  /** Runs one transition call and shapes its `{ job, changed }` answer. */
  async function transition(ctx: HandlerContext, rawJobId: string, args: TransitionArgs) {
    const jobId = v.requireJobId(rawJobId);
    annotate(ctx, { jobId });
    const result = await store.transition(jobId, args, callerOf(ctx).principal);
    annotate(ctx, {
      changed: result.changed,
      fromState: result.changed ? (result.event.fromState ?? undefined) : result.job.state,
      toState: result.job.state,
    });
    return { job: jobToProto(result.job), changed: result.changed };
  }

  return {
    async createJob(req, ctx) {
      const { principal } = callerOf(ctx);
      const type = v.requireJobType(req.type);
      v.checkInput(type, req.input);
      const fields = {
        type,
        companyId: v.owningCompany(principal, req.companyId),
        input: v.storableJson(inputToJson(req.input), "input", deps.limits.payloadBytes),
        dataPlaneId: v.optionalIdentifier(req.dataPlaneId, "data_plane_id"),
        computePoolId: v.optionalIdentifier(req.computePoolId, "compute_pool_id"),
        executionCluster: v.executionCluster(req.executionCluster),
        requestId: v.optionalRequestId(req.requestId),
      };
      const { job, created } = await store.create(fields, principal);
      annotate(ctx, { jobId: job.id, created });
      return create(CreateJobResponseSchema, { job: jobToProto(job) });
    },

    async getJob(req, ctx) {
      const jobId = v.requireJobId(req.jobId);
      annotate(ctx, { jobId });
      const job = await store.get(jobId, callerOf(ctx).principal, "GetJob");
      return create(GetJobResponseSchema, { job: jobToProto(job) });
    },

    async listJobs(req, ctx) {
      const { principal } = callerOf(ctx);
      const size = v.pageSize(req.pageSize);
      const filter = jobFilter(req, principal, "ListJobs");
      const listing = fingerprint({ list: "jobs", by: principalKey(principal), filter });
      const cursor = decodePageToken(req.pageToken, listing, isJobCursor);
      const page = await readPage(size, cursor, (after, limit) => store.list(filter, after, limit), jobCursor, jobBytes);
      const last: JobRecord | undefined = page.items[page.items.length - 1];
      return create(ListJobsResponseSchema, {
        jobs: page.items.map(jobToProto),
        nextPageToken: page.more && last ? encodePageToken<JobCursor>(listing, jobCursor(last)) : "",
      });
    },

    async countJobs(req, ctx) {
      const filter = jobFilter(req, callerOf(ctx).principal, "CountJobs");
      const counted = await store.countByState(filter);
      const states = JOB_STATES.filter((state) => filter.states.length === 0 || filter.states.includes(state));
      return create(CountJobsResponseSchema, {
        counts: states.map((state) => ({ state: JobState[state], count: BigInt(counted.get(state) ?? 0) })),
        companyId: BigInt(filter.companyId ?? 0),
      });
    },

    async listJobEvents(req, ctx) {
      const { principal } = callerOf(ctx);
      const jobId = v.requireJobId(req.jobId);
      const size = v.pageSize(req.pageSize);
      annotate(ctx, { jobId });
      const listing = fingerprint({ list: "events", by: principalKey(principal), jobId });
      const after = decodePageToken(req.pageToken, listing, isRevision) ?? 0;
      await store.get(jobId, principal, "ListJobEvents");
      const page = await readPage(size, after, (from, limit) => store.events(jobId, from ?? 0, limit), (event) => event.revision, (event) => jobBytes(event.job));
      return create(ListJobEventsResponseSchema, {
        events: page.items.map(eventToProto),
        nextPageToken: page.more ? encodePageToken(listing, page.items[page.items.length - 1].revision) : "",
      });
    },

    async runJob(req, ctx) {
      const executorId = v.requireIdentifier(req.executorId, "executor_id");
      const leaseSeconds = v.leaseSeconds(req.leaseSeconds, deps.leaseDefaultSeconds);
      return create(RunJobResponseSchema, await transition(ctx, req.jobId, { call: "RunJob", executorId, leaseSeconds }));
    },

    async completeJob(req, ctx) {
      const result = req.result;
      if (!result || result.kind.case === undefined) {
        throw new InvalidArgument("result", "result is required: set the variant named after the job's type");
      }
      const attempt = v.nonNegative(req.attempt, "attempt");
      const args: TransitionArgs = { call: "CompleteJob", result: v.storableJson(resultToJson(result), "result", deps.limits.payloadBytes), resultCase: result.kind.case, attempt };
      return create(CompleteJobResponseSchema, await transition(ctx, req.jobId, args));
    },

    async failJob(req, ctx) {
      const args: TransitionArgs = {
        call: "FailJob",
        message: v.requireText(req.message, "message"),
        diagnostic: v.storableJson(diagnosticToJson(req.diagnostic), "diagnostic", deps.limits.payloadBytes),
        attempt: v.nonNegative(req.attempt, "attempt"),
      };
      return create(FailJobResponseSchema, await transition(ctx, req.jobId, args));
    },

    async requestJobCancellation(req, ctx) {
      const args: TransitionArgs = { call: "RequestJobCancellation", reason: v.optionalText(req.reason, "reason") };
      return create(RequestJobCancellationResponseSchema, await transition(ctx, req.jobId, args));
    },

    async cancelJob(req, ctx) {
      return create(CancelJobResponseSchema, await transition(ctx, req.jobId, { call: "CancelJob" }));
    },

    async heartbeatJob(req, ctx) {
      const jobId = v.requireJobId(req.jobId);
      // docs/contract.md §9: an executor or attempt that is not the job's current run (none given included) is STALE_ATTEMPT, decided under the lock.
      const executorId = v.optionalIdentifier(req.executorId, "executor_id");
      const attempt = v.nonNegative(req.attempt, "attempt");
      annotate(ctx, { jobId });
      const job = await store.heartbeat(jobId, executorId, attempt, callerOf(ctx).principal);
      return create(HeartbeatJobResponseSchema, { job: jobToProto(job) });
    },

    ...createWatchHandlers(deps),
  };
}

/** The filters ListJobs and CountJobs share, validated; an API user is confined to its company. */
function jobFilter(req: ListJobsRequest | CountJobsRequest, principal: Principal, call: string): JobFilter {
  return {
    states: v.jobStates(req.states),
    types: v.jobTypes(req.types),
    executorId: v.optionalIdentifier(req.executorId, "executor_id"),
    dataPlaneId: v.optionalIdentifier(req.dataPlaneId, "data_plane_id"),
    companyId: v.companyScope(principal, req.companyId, call),
    createdAfter: req.createdAfter ? microsFromTimestamp(v.timestamp(req.createdAfter, "created_after")) : null,
    createdBefore: req.createdBefore ? microsFromTimestamp(v.timestamp(req.createdBefore, "created_before")) : null,
  };
}

const jobCursor = (job: JobRecord): JobCursor => ({ createdAt: job.createdAt, id: job.id });

function isJobCursor(p: unknown): p is JobCursor {
  const c = p as JobCursor;
  return typeof c === "object" && c !== null && Number.isSafeInteger(c.createdAt) && typeof c.id === "string" && v.isUuid(c.id);
}

function isRevision(p: unknown): p is number {
  return Number.isSafeInteger(p) && (p as number) >= 0;
}
