// In-process fan-out: the notifier publishes each committed event once, and
// the hub hands it to every watch stream that wants it. Publishing never
// waits on a stream: each stream has its own bounded queue (watch-queue.ts).

import type { EventRecord } from "../domain/job.js";

export interface EventSink {
  /** Must not block; a sink that cannot keep up ends itself. */
  push(event: EventRecord): void;
}

export interface FilteredSink extends EventSink {
  matches(event: EventRecord): boolean;
}

export class EventHub {
  private readonly byJob = new Map<string, Set<EventSink>>();
  private readonly filtered = new Set<FilteredSink>();
  private count = 0;

  /** Open subscriptions: the notifier reads the feed only while there are some. */
  get size(): number {
    return this.count;
  }

  /** Open filtered subscriptions (WatchJobs streams); the rest of `size` follow one job each. */
  get filteredSize(): number {
    return this.filtered.size;
  }

  subscribeJob(jobId: string, sink: EventSink): () => void {
    let sinks = this.byJob.get(jobId);
    if (!sinks) {
      sinks = new Set();
      this.byJob.set(jobId, sinks);
    }
    sinks.add(sink);
    this.count++;
    return () => {
      if (sinks.delete(sink)) this.count--;
      if (sinks.size === 0 && this.byJob.get(jobId) === sinks) this.byJob.delete(jobId);
    };
  }

  subscribeFiltered(sink: FilteredSink): () => void {
    this.filtered.add(sink);
    this.count++;
    return () => {
      if (this.filtered.delete(sink)) this.count--;
    };
  }

  publish(events: readonly EventRecord[]): void {
    for (const event of events) {
      const sinks = this.byJob.get(event.jobId);
      if (sinks) for (const sink of sinks) sink.push(event);
      for (const sink of this.filtered) if (sink.matches(event)) sink.push(event);
    }
  }
}
