// Shared steps of the wire tests in test/rpc: build a job into a given state
// through RPCs only, read a job's whole event log, and check the shape of an
// error the service returned. Everything goes through the grpc-js client, so
// these helpers know the contract (docs/contract.md) and nothing of src/.

import { expect } from "@jest/globals";
import type { JobsClient, Msg, RpcError } from "../support/grpc.js";

export type StateName = "PENDING" | "RUNNING" | "PENDING_CANCELLATION" | "COMPLETED" | "FAILED" | "CANCELLED";
export const STATES: readonly StateName[] = ["PENDING", "RUNNING", "PENDING_CANCELLATION", "COMPLETED", "FAILED", "CANCELLED"];

/** grpc status codes by name (as @grpc/grpc-js reports them). */
export const Status = {
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  OUT_OF_RANGE: 11,
} as const;

export const FORECAST_RESULT = { forecast: { cost: "12", rows: "34" } };

/** Creates a FORECAST job (the service token needs a company). */
export async function createJob(client: JobsClient, fields: Msg = {}): Promise<Msg> {
  const { job } = await client.call("CreateJob", { type: "JOB_TYPE_FORECAST", company_id: "7", ...fields });
  return job;
}

/**
 * A new FORECAST job in `state`, reached the way a client would reach it:
 * RUNNING by RunJob (executor "executor-1"), PENDING_CANCELLATION by
 * RequestJobCancellation of a running job, COMPLETED by CompleteJob and FAILED
 * by FailJob of a running job, CANCELLED by cancelling a running job.
 */
export async function jobIn(client: JobsClient, state: StateName, fields: Msg = {}): Promise<Msg> {
  const job = await createJob(client, fields);
  if (state === "PENDING") return job;
  let last = (await client.call("RunJob", { job_id: job.id, executor_id: "executor-1" })).job;
  if (state === "PENDING_CANCELLATION" || state === "CANCELLED") {
    last = (await client.call("RequestJobCancellation", { job_id: job.id, reason: "not needed any more" })).job;
  }
  if (state === "COMPLETED") last = (await client.call("CompleteJob", { job_id: job.id, result: FORECAST_RESULT })).job;
  if (state === "FAILED") last = (await client.call("FailJob", { job_id: job.id, message: "disk full" })).job;
  if (state === "CANCELLED") last = (await client.call("CancelJob", { job_id: job.id })).job;
  expect(last.state).toBe(`JOB_STATE_${state}`);
  return last;
}

/** The job's whole event log, oldest first, read page by page. */
export async function allEvents(client: JobsClient, jobId: string, pageSize = 1000): Promise<Msg[]> {
  const events: Msg[] = [];
  let page_token = "";
  do {
    const page = await client.call("ListJobEvents", { job_id: jobId, page_size: pageSize, page_token });
    events.push(...page.events);
    page_token = page.next_page_token;
  } while (page_token !== "");
  return events;
}

export async function getJob(client: JobsClient, jobId: string): Promise<Msg> {
  return (await client.call("GetJob", { job_id: jobId })).job;
}

// Words that would only reach a caller if SQL or a driver error leaked.
const SQL_LEAK = /\b(select|insert\s+into|update\s+\w+\s+set|delete\s+from|where|for\s+update|returning|relation|syntax\s+error|violates|constraint|sqlstate|pg_\w+|postgres(ql)?|mikro-?orm)\b/i;
// Signs of a stack trace or of source paths.
const STACK_LEAK = /(\n\s*at\s|\bat\s+\S+\s+\(|node_modules|\.[cm]?[jt]s:\d+|Error:\s)/;

/** An error a person can act on: says something, and leaks neither SQL nor a stack trace. */
export function expectActionableMessage(error: RpcError): void {
  expect(error.details.length).toBeGreaterThan(15);
  expect(error.details).not.toMatch(SQL_LEAK);
  expect(error.details).not.toMatch(STACK_LEAK);
}

export interface ExpectedError {
  readonly code: number;
  /** ErrorInfo.reason; any non-empty UPPER_SNAKE reason when omitted. */
  readonly reason?: string;
  /** ErrorInfo.metadata entries that must be present with these values. */
  readonly metadata?: Record<string, string>;
}

/** The status code, a google.rpc.ErrorInfo in domain jobs.v1, and an actionable message. */
export function expectError(error: RpcError, expected: ExpectedError): void {
  expect({ code: error.code, details: error.details }).toEqual({ code: expected.code, details: expect.any(String) });
  expect(error.errorInfo).toBeDefined();
  expect(error.errorInfo?.domain).toBe("jobs.v1");
  if (expected.reason) expect(error.errorInfo?.reason).toBe(expected.reason);
  else expect(error.errorInfo?.reason).toMatch(/^[A-Z][A-Z_]+$/);
  if (expected.metadata) expect(error.errorInfo?.metadata).toEqual(expect.objectContaining(expected.metadata));
  expectActionableMessage(error);
}

/** Runs `tasks` with at most `limit` in flight; resolves with their results in order. */
export async function inParallel<T>(tasks: readonly (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}
