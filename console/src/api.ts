// The API, as the page calls it: the Connect client generated from proto/
// (src/gen), over fetch to the page's own origin, with the token in the
// `authorization` header of every call and nowhere else.

import { Code, ConnectError, type Client, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { JobService } from "../../src/gen/jobs/v1/job_service_pb.js";

export type Jobs = Client<typeof JobService>;

export function jobsClient(token: string): Jobs {
  const bearer: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  // Binary protobuf: a WatchJobs snapshot of thousands of jobs decodes faster than JSON.
  return createClient(JobService, createConnectTransport({ baseUrl: location.origin, useBinaryFormat: true, interceptors: [bearer] }));
}

/** What went wrong with a call, as the server said it: the status code, the ErrorInfo reason and the message. */
export interface Problem {
  /** e.g. FAILED_PRECONDITION */
  readonly code: string;
  /** The google.rpc.ErrorInfo reason, e.g. INVALID_TRANSITION; empty when the server was not reached. */
  readonly reason: string;
  readonly message: string;
}

export function problemOf(error: unknown): Problem {
  const e = ConnectError.from(error);
  const info = e.findDetails(ErrorInfoSchema)[0];
  return {
    code: Code[e.code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase(),
    reason: info?.reason ?? "",
    message: e.rawMessage,
  };
}

/** A failure that another try may cure (the server restarting, the network); the others need a person. */
export function isRetryable(problem: Problem): boolean {
  return !["UNAUTHENTICATED", "PERMISSION_DENIED", "INVALID_ARGUMENT", "NOT_FOUND", "OUT_OF_RANGE", "FAILED_PRECONDITION"].includes(problem.code);
}

export const describeProblem = (p: Problem) => `${p.code}${p.reason ? ` ${p.reason}` : ""}: ${p.message}`;

/** What the signed-in token may do, learned from the server at sign-in. */
export interface Access {
  /** The company an API user is confined to; null for a service, which sees every company. */
  readonly companyId: bigint | null;
  readonly canWrite: boolean;
  /** Why actions are unavailable, when they are. */
  readonly writeRefusal: string;
}

/**
 * Checks the token and learns what it may do. CountJobs needs jobs:read (and
 * says which company the caller is confined to). For jobs:write, CancelJob
 * with no job id: the server checks the scope before it validates the
 * request (docs/contract.md), so the answer is PERMISSION_DENIED without the
 * scope and INVALID_ARGUMENT with it, and nothing changes either way.
 */
export async function probeAccess(client: Jobs): Promise<Access> {
  const counted = await client.countJobs({});
  try {
    await client.cancelJob({ jobId: "" });
  } catch (error) {
    const problem = problemOf(error);
    if (problem.code === "PERMISSION_DENIED") {
      return { companyId: companyOf(counted.companyId), canWrite: false, writeRefusal: problem.message };
    }
    if (problem.code !== "INVALID_ARGUMENT") throw error;
  }
  return { companyId: companyOf(counted.companyId), canWrite: true, writeRefusal: "" };
}

const companyOf = (id: bigint) => (id === 0n ? null : id);
