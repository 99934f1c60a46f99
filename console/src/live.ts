// Keeping a server stream open: the server ends watch streams with
// UNAVAILABLE when it drains or restarts, and the network may drop them, so a
// page that stays live opens its stream again, with a growing pause, until it
// is told to stop or meets an error that another try cannot cure.

import { isRetryable, type Problem, problemOf } from "./api.js";

export type LiveState = "connecting" | "live" | "reconnecting" | "finished" | "stopped";

/** How each state reads in a page's live indicator. */
export const LIVE_TEXT: Record<LiveState, string> = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  finished: "Finished: no more changes will come",
  stopped: "Not live",
};

interface KeepOpenOptions {
  readonly signal: AbortSignal;
  /** Opens one stream and reads it to its end: "done" when nothing more will come, "again" to reopen. */
  readonly open: (signal: AbortSignal) => Promise<"done" | "again">;
  readonly onState: (state: LiveState, problem?: Problem) => void;
  /** An error that retrying cannot cure (a revoked token, a job that is not there). */
  readonly onFatal: (problem: Problem) => void;
}

const FIRST_PAUSE_MS = 250;
const LONGEST_PAUSE_MS = 3000;

export async function keepOpen(options: KeepOpenOptions): Promise<void> {
  const { signal } = options;
  let pause = FIRST_PAUSE_MS;
  options.onState("connecting");
  while (!signal.aborted) {
    try {
      const outcome = await options.open(signal);
      if (outcome === "done") {
        options.onState("finished");
        return;
      }
      pause = FIRST_PAUSE_MS;
    } catch (error) {
      if (signal.aborted) break;
      const problem = problemOf(error);
      if (!isRetryable(problem)) {
        options.onState("stopped", problem);
        options.onFatal(problem);
        return;
      }
      options.onState("reconnecting", problem);
      await wait(pause, signal);
      pause = Math.min(pause * 2, LONGEST_PAUSE_MS);
    }
  }
}

function wait(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}

/**
 * Runs `work` soon after the first call, then at most once per `gapMs` while
 * calls keep coming, never two at a time: a burst of events costs one
 * re-read, and the last event of a burst is always followed by one.
 */
export function coalesced(work: () => Promise<void>, gapMs: number): { (): void; cancel(): void } {
  let timer: ReturnType<typeof setTimeout> | null = null;
  let running = false;
  let pending = false;
  let lastStart = 0;
  const schedule = () => {
    if (running) {
      pending = true;
      return;
    }
    if (timer !== null) return;
    timer = setTimeout(run, Math.max(50, lastStart + gapMs - Date.now()));
  };
  const run = async () => {
    timer = null;
    running = true;
    lastStart = Date.now();
    try {
      await work();
    } finally {
      running = false;
      if (pending) {
        pending = false;
        schedule();
      }
    }
  };
  return Object.assign(schedule, {
    cancel() {
      if (timer !== null) clearTimeout(timer);
      timer = null;
      pending = false;
    },
  });
}
