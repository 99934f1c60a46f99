// jobsctl watch: a job's events as they happen, until it finishes. Resumes
// from the last revision it printed whenever the stream breaks without the
// server ending it: a drain or restart, a crash, a dropped connection (README:
// "Watching a job, and resuming"), so nothing is missed or printed twice. It
// keeps trying, with backoff, until the job ends, Ctrl-C, or --timeout.

import { setTimeout as delay } from "node:timers/promises";
import { toJson } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { FINISHED_STATES, type JobStateName } from "../domain/states.js";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { JobEventSchema } from "../gen/jobs/v1/job_pb.js";
import type { ClientOptions, JobsClient } from "./connection.js";
import { CliFailure, EXIT } from "./exit-codes.js";
import { eventLine, JSON_OUTPUT, stateName, time } from "./format.js";
import { statusLine } from "./status-line.js";

const backoffMs = (failures: number) => Math.min(5_000, 250 * 2 ** (failures - 1));

/**
 * Whether a failed stream broke rather than being ended by the server:
 * UNAVAILABLE (draining, restarting, unreachable), or a status the client
 * made up for a connection that went away (a reset or GOAWAY is CANCELLED or
 * INTERNAL, a cut-off body UNKNOWN). Every status the service itself sends
 * carries an ErrorInfo, so one without is the connection's.
 */
function brokenStream(error: unknown): boolean {
  if (!(error instanceof ConnectError)) return false;
  if (error.code === Code.Unavailable) return true;
  const madeUp = [Code.Canceled, Code.Unknown, Code.Internal, Code.Aborted].includes(error.code);
  return madeUp && error.findDetails(ErrorInfoSchema).length === 0;
}

export interface WatchOptions extends ClientOptions {
  /** Give up after this many seconds (exit 6); none: wait as long as the job runs. */
  readonly timeout?: number;
}

export async function watchJob(client: JobsClient, jobId: string, after: bigint, opts: WatchOptions): Promise<void> {
  const deadline = opts.timeout === undefined ? undefined : AbortSignal.timeout(opts.timeout * 1000);
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
        for await (const res of client.watchJob({ jobId, afterRevision: revision }, { signal: deadline })) {
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
        if (deadline?.aborted) {
          throw new CliFailure(`watch: job ${jobId} did not finish within ${opts.timeout} s (last revision ${revision})`, EXIT.unavailable);
        }
        // Only a stream that once worked is resumed: an unreachable server at the start is an error at once.
        if (!streamed || !brokenStream(error)) throw error;
        const reason = (error as ConnectError).rawMessage;
        failures++;
        if (failures === 1 && !status.live) {
          process.stderr.write(`jobsctl: watch: ${reason}; resuming after revision ${revision}\n`);
        }
        show(`connection lost (${reason}); reconnecting, try ${failures}…`);
        await sleep(backoffMs(failures), deadline);
      }
    }
  } finally {
    process.off("SIGINT", interrupted);
    status.clear();
  }
}

/** Waits `ms`, or less if `signal` aborts first (the caller then finds it aborted). */
async function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  try {
    await delay(ms, undefined, { signal });
  } catch (error) {
    if (!signal?.aborted) throw error;
  }
}
