// jobsctl watch: a job's events as they happen, until it finishes. Resumes
// from the last revision it printed when the server drains or restarts
// mid-watch (README: "Watching a job, and resuming"), so nothing is missed
// or printed twice.

import { toJson } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { FINISHED_STATES, type JobStateName } from "../domain/states.js";
import { JobEventSchema } from "../gen/jobs/v1/job_pb.js";
import type { ClientOptions, JobsClient } from "./connection.js";
import { eventLine, JSON_OUTPUT, stateName, time } from "./format.js";
import { statusLine } from "./status-line.js";

/** Reconnection attempts in a row before giving up (about 30 s with the backoff below). */
const MAX_RETRIES = 10;
const backoffMs = (failures: number) => Math.min(5_000, 250 * 2 ** (failures - 1));

export async function watchJob(client: JobsClient, jobId: string, after: bigint, opts: ClientOptions): Promise<void> {
  const status = statusLine(!opts.json);
  let revision = after;
  let state = "";
  const show = (doing: string) => status.set(`watching ${jobId} · rev ${revision}${state ? ` · ${state}` : ""} · ${doing}`);
  // Ctrl-C: leave the terminal clean, then exit the way an interrupted command does.
  const interrupted = () => {
    status.clear();
    process.exit(130);
  };
  process.once("SIGINT", interrupted);

  let streamed = false;
  let failures = 0;
  try {
    show("connecting…");
    for (;;) {
      try {
        for await (const res of client.watchJob({ jobId, afterRevision: revision })) {
          streamed = true;
          failures = 0;
          if (res.kind.case === "event") {
            const event = res.kind.value;
            revision = event.revision;
            state = stateName(event.toState);
            status.print(opts.json ? JSON.stringify(toJson(JobEventSchema, event, JSON_OUTPUT)) : eventLine(event));
            show(FINISHED_STATES.has(state as JobStateName) ? "finished" : "waiting for the next change…");
          } else if (res.kind.case === "heartbeat") {
            show(`idle, server heartbeat at ${time(res.kind.value.sentAt).slice(11, 19)}`);
          }
        }
        return; // The stream ends OK after the job's terminal event.
      } catch (error) {
        // Only a stream that once worked is resumed: an unreachable server at the start is an error at once.
        const retryable = error instanceof ConnectError && error.code === Code.Unavailable;
        if (!streamed || !retryable || failures >= MAX_RETRIES) throw error;
        failures++;
        if (failures === 1 && !status.live) {
          process.stderr.write(`jobsctl: watch: ${error.rawMessage}; resuming after revision ${revision}\n`);
        }
        show(`connection lost (${error.rawMessage}); reconnecting, try ${failures}…`);
        await new Promise((resolve) => setTimeout(resolve, backoffMs(failures)));
      }
    }
  } finally {
    process.off("SIGINT", interrupted);
    status.clear();
  }
}
