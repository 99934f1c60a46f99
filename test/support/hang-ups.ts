// Calls that their clients end, each in another way and on another kind of
// RPC: a cancelled WatchJob and health Watch (grpc-js), reflection streams
// whose client resets them or drops the connection (as `buf curl
// --list-methods` and ghz do), a watch stream whose deadline passes, and a
// unary call whose request never completes before its deadline. For the
// tests that hold such calls to CANCELLED or DEADLINE_EXCEEDED in the logs
// and the metrics. Each resolves once the client has done its part.

import http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { ServerReflectionRequestSchema } from "../../src/gen/grpc/reflection/v1/reflection_pb.js";
import { GetJobRequestSchema, WatchJobRequestSchema } from "../../src/gen/jobs/v1/job_service_pb.js";
import { jobsClient } from "./grpc.js";
import { healthClient } from "./health-client.js";
import { envelope } from "./raw-calls.js";
import { cancelStream } from "./watching.js";

/** The method name as the server's log line and metrics write it, and the code the call must end with. */
export interface EndedCall {
  readonly method: string;
  readonly code: "cancelled" | "deadline_exceeded";
  readonly how: string;
}

const REFLECTION_V1 = "grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
const REFLECTION_V1ALPHA = "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

/** Ends one call of each kind; `jobId` names a job that is not finished (so its watch stays open). */
export async function endCallsFromTheClientSide(url: string, address: string, token: string, jobId: string): Promise<EndedCall[]> {
  const jobs = jobsClient(address, token);
  const health = healthClient(address);
  try {
    const watch = jobs.stream("WatchJob", { job_id: jobId, after_revision: "0" });
    await new Promise((resolve) => watch.once("data", resolve));
    await cancelStream(watch);

    const healthWatch = health.watch("");
    await healthWatch.next(10_000);
    await cancelStream(healthWatch.stream);
  } finally {
    jobs.close();
    health.close();
  }
  await reflectionThenHangUp(url, REFLECTION_V1, "drop the connection");
  await reflectionThenHangUp(url, REFLECTION_V1ALPHA, "reset the stream");
  const watchTrailers = await rawCall(url, "/jobs.v1.JobService/WatchJob", token, envelope(toBinary(WatchJobRequestSchema, create(WatchJobRequestSchema, { jobId, afterRevision: 1n }))), true);
  const unaryTrailers = await rawCall(url, "/jobs.v1.JobService/GetJob", token, envelope(toBinary(GetJobRequestSchema, create(GetJobRequestSchema, { jobId }))).subarray(0, 8), false);
  // What the client that waited saw: the deadline's own status.
  if (watchTrailers["grpc-status"] !== "4" || unaryTrailers["grpc-status"] !== "4") {
    throw new Error(`expected DEADLINE_EXCEEDED at the deadline, got ${watchTrailers["grpc-status"]} and ${unaryTrailers["grpc-status"]}`);
  }
  return [
    { method: "WatchJob", code: "cancelled", how: "grpc-js cancels the stream" },
    { method: "grpc.health.v1.Health/Watch", code: "cancelled", how: "grpc-js cancels the stream" },
    { method: REFLECTION_V1, code: "cancelled", how: "the client drops the connection mid-stream" },
    { method: REFLECTION_V1ALPHA, code: "cancelled", how: "the client resets the stream" },
    { method: "WatchJob", code: "deadline_exceeded", how: "the stream's deadline passes" },
    { method: "GetJob", code: "deadline_exceeded", how: "the request never completes before the deadline" },
  ];
}

/** A reflection stream that lists the services, reads the answer, then ends the way `how` says (the request side left open). */
function reflectionThenHangUp(url: string, path: string, how: "drop the connection" | "reset the stream"): Promise<void> {
  const session = http2.connect(url);
  session.on("error", () => {});
  return new Promise((resolve) => {
    const stream = session.request({ ":method": "POST", ":path": `/${path}`, "content-type": "application/grpc", te: "trailers" });
    stream.on("error", () => {});
    stream.once("data", () => {
      if (how === "drop the connection") {
        session.destroy();
        resolve();
      } else {
        stream.close(http2.constants.NGHTTP2_CANCEL, () => {
          session.close();
          resolve();
        });
      }
    });
    stream.write(envelope(toBinary(ServerReflectionRequestSchema, create(ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "*" } }))));
  });
}

/**
 * A gRPC call with a 300 ms deadline from a client that does not enforce it
 * itself (it waits for the server's answer): `body` is all it sends, and
 * `end` says whether it then ends its side. Resolves with the trailers.
 */
function rawCall(url: string, path: string, token: string, body: Uint8Array, end: boolean): Promise<Record<string, string>> {
  const session = http2.connect(url);
  session.on("error", () => {});
  return new Promise((resolve, reject) => {
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      "grpc-timeout": "300m",
      authorization: `Bearer ${token}`,
    });
    const timer = setTimeout(() => reject(new Error(`${path}: no answer 10 s after its deadline`)), 10_300);
    stream.on("data", () => {});
    stream.on("error", () => {});
    stream.on("trailers", (trailers) => {
      clearTimeout(timer);
      session.destroy();
      resolve(Object.fromEntries(Object.entries(trailers).map(([k, v]) => [k, String(v)])));
    });
    if (end) stream.end(body);
    else stream.write(body);
  });
}
