// One notifier per process: it learns that events were committed (by any
// replica) and publishes each once to the in-process hub.
//
// Commits never NOTIFY: PostgreSQL serializes the commits of notifying
// transactions. Events this process commits are published at once, from
// memory; the other replicas get one payload-free NOTIFY per
// `notifyIntervalMs` from this process's LISTEN connection, and read the
// feed (store/event-feed.ts), the source of truth, so a lost notification
// or a dropped connection only delays an event until the next read or poll.
// A replica alone sends none: replicas count each other in pg_stat_activity
// (docs/architecture.md, "Events reach watchers").

import pg from "pg";
import type { EventRecord } from "../domain/job.js";
import type { Logger } from "../log.js";
import { currentWatermark, type FeedEvent, readFeed } from "../store/event-feed.js";
import type { CommittedEvent } from "../store/job-store.js";
import type { QueryRunner } from "../store/sql.js";
import type { EventHub } from "./hub.js";

export const CHANNEL = "jobs_events";

/** The application_name of every notifier's LISTEN connection: how replicas count each other. */
export const NOTIFIER_APPLICATION_NAME = "jobs-notifier";

export interface NotifierOptions {
  readonly databaseUrl: string;
  /** Runs feed reads (the ORM's pool). */
  readonly runner: () => QueryRunner;
  readonly hub: EventHub;
  readonly log: Logger;
  /** The longest a committed event waits if every notification is lost. */
  readonly pollIntervalMs: number;
  /** Bounds the NOTIFY rate per process: at most one per interval. */
  readonly notifyIntervalMs: number;
  /** Told the commit-to-publication lag of each batch published (metrics). */
  readonly onPublished?: (lagSeconds: number) => void;
}

export interface NotifierStats {
  notificationsSent: number;
  /** Commits that sent no NOTIFY because no other replica was listening. */
  notificationsSkipped: number;
  notificationsReceived: number;
  /** Other notifiers on this database at the last count (null: not counted yet, or the count failed). */
  otherReplicas: number | null;
  feedReads: number;
  eventsPublished: number;
  reconnects: number;
  /** Milliseconds from an event's commit to its publication, last read. */
  lastLagMs: number;
}

export class Notifier {
  private listener: pg.Client | null = null;
  private stopped = true;
  private reconnectDelayMs = 100;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private pollTimer: NodeJS.Timeout | null = null;

  // Feed state: valid only while `active` (someone is subscribed).
  private active = false;
  private activating: Promise<void> | null = null;
  private watermark = 0n;
  /** Events already published whose xid the window may still re-read: "job:revision" → xid. */
  private readonly published = new Map<string, bigint>();
  private reading = false;
  private readAgain = false;

  // NOTIFY coalescing.
  private notifyPending = false;
  private notifyInFlight = false;
  private lastNotifyAt = 0;

  // Whether another replica listens; assumed until counted.
  private othersListen = true;
  /** Notifications heard from other sessions: a count that raced one of them is not trusted to say "none". */
  private signalsFromOthers = 0;
  private counting = false;

  readonly stats: NotifierStats = {
    notificationsSent: 0,
    notificationsSkipped: 0,
    notificationsReceived: 0,
    otherReplicas: null,
    feedReads: 0,
    eventsPublished: 0,
    reconnects: 0,
    lastLagMs: 0,
  };

  constructor(private readonly options: NotifierOptions) {}

  async start(): Promise<void> {
    this.stopped = false;
    await this.connect().catch((error) => this.scheduleReconnect(error));
    this.pollTimer = setInterval(() => {
      this.requestRead();
      this.countOthers();
    }, this.options.pollIntervalMs);
    this.pollTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const listener = this.listener;
    this.listener = null;
    await listener?.end().catch(() => undefined);
  }

  /**
   * Must resolve before a watch stream reads its replay: from then on every
   * commit the replay does not see reaches the hub.
   */
  async ensureActive(): Promise<void> {
    if (this.active) return;
    this.activating ??= (async () => {
      try {
        this.watermark = await currentWatermark(this.options.runner());
        this.published.clear();
        this.active = true;
      } finally {
        this.activating = null;
      }
    })();
    return this.activating;
  }

  /** Called right after this process committed events: publish them here, and tell the other replicas. */
  committed(events: readonly CommittedEvent[]): void {
    if (events.length === 0) return;
    if (this.othersListen) this.requestNotify();
    else this.stats.notificationsSkipped++;
    if (!this.active) return;
    // Publish from memory only what keeps each job's events in order: an
    // event whose predecessor was published already (or that has none). A
    // predecessor committed by another replica and not yet read would
    // otherwise arrive after it; the feed returns both, in order.
    const ready: CommittedEvent[] = [];
    const deferred = new Set<string>();
    for (const committed of events) {
      const { jobId, revision } = committed.event;
      // The predecessor is out already if this process published it, goes out
      // just before this event (written by the same transaction, and not
      // deferred: see the guard below), or was committed before the
      // last feed read began (that read, or the streams' replay, covered it).
      // A null previousXid past revision 1 means unknown, not "none": the lock
      // statement waited for another replica's commit of the predecessor, and
      // PostgreSQL re-read the locked row but not the subquery, which kept the
      // statement's older snapshot.
      const predecessorOut =
        revision === 1 ||
        committed.previousXid === committed.xid ||
        this.published.has(`${jobId}:${revision - 1}`) ||
        (committed.previousXid !== null && committed.previousXid < this.watermark);
      if (!deferred.has(jobId) && predecessorOut) {
        ready.push(committed);
      } else {
        deferred.add(jobId);
      }
    }
    this.publish(ready);
    if (deferred.size > 0) this.requestRead();
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.options.databaseUrl, application_name: NOTIFIER_APPLICATION_NAME });
    client.on("notification", (message) => {
      // Our own NOTIFY (sent on this connection): this process published those events already.
      if (message.processId === (client as unknown as { processID: number }).processID) return;
      this.stats.notificationsReceived++;
      this.signalsFromOthers++;
      this.othersAreListening();
      this.requestRead();
    });
    client.on("error", (error) => this.onListenerLost(client, error));
    client.on("end", () => this.onListenerLost(client, new Error("connection ended")));
    await client.connect();
    await client.query(`listen ${CHANNEL}`);
    if (this.stopped) {
      await client.end();
      return;
    }
    this.listener = client;
    this.reconnectDelayMs = 100;
    // Whatever was committed while we were not listening.
    this.requestRead();
    this.countOthers();
    // Announce ourselves to the replicas that counted before we listened; this also
    // stands for whatever we committed while not connected.
    this.requestNotify();
  }

  /** A notification from another session, or a count that found one: NOTIFY again, and answer a replica we thought absent. */
  private othersAreListening(): void {
    if (this.othersListen) return;
    this.othersListen = true;
    // What we committed without notifying may postdate that replica's last read.
    this.requestNotify();
  }

  /** Counts the other notifiers on this database, on the LISTEN connection (in order with its notifications). */
  private countOthers(): void {
    const listener = this.listener;
    if (!listener || this.counting) return;
    this.counting = true;
    const signalsBefore = this.signalsFromOthers;
    listener
      .query<{ n: number }>(
        `select count(*)::int as n from pg_stat_activity
         where datname = current_database() and application_name = $1 and pid <> pg_backend_pid()`,
        [NOTIFIER_APPLICATION_NAME],
      )
      .then(({ rows }) => {
        const others = rows[0].n;
        this.stats.otherReplicas = others;
        if (others > 0) this.othersAreListening();
        // A notification that came while counting may be from a replica this count's snapshot missed.
        else if (this.signalsFromOthers === signalsBefore) this.othersListen = false;
      })
      .catch((error) => {
        // Unknown is treated as "someone listens": a spare NOTIFY costs little, a missing one delays watchers.
        this.stats.otherReplicas = null;
        this.othersAreListening();
        // A lost connection is reported (and recounted) by the reconnect.
        if (this.listener === listener) this.options.log.warn("could not count the other replicas' notifiers; notifying as if there were some", {
          error: error instanceof Error ? error.message : String(error),
        });
      })
      .finally(() => (this.counting = false));
  }

  private onListenerLost(client: pg.Client, error: Error): void {
    if (this.listener !== client) return;
    this.listener = null;
    client.end().catch(() => undefined);
    if (!this.stopped) this.scheduleReconnect(error);
  }

  private scheduleReconnect(error: unknown): void {
    if (this.stopped || this.reconnectTimer) return;
    this.options.log.warn("notifier connection lost; reconnecting", {
      error: error instanceof Error ? error.message : String(error),
      retryInMs: this.reconnectDelayMs,
    });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.stats.reconnects++;
      this.connect().catch((e) => this.scheduleReconnect(e));
    }, this.reconnectDelayMs);
    this.reconnectTimer.unref();
    this.reconnectDelayMs = Math.min(this.reconnectDelayMs * 2, 5_000);
  }

  private requestNotify(): void {
    this.notifyPending = true;
    if (this.notifyInFlight || !this.listener) return;
    const wait = this.lastNotifyAt + this.options.notifyIntervalMs - Date.now();
    this.notifyInFlight = true;
    const send = () => {
      const listener = this.listener;
      this.notifyPending = false;
      this.lastNotifyAt = Date.now();
      if (!listener) {
        this.notifyInFlight = false;
        this.notifyPending = true;
        return;
      }
      listener
        .query(`notify ${CHANNEL}`)
        .then(() => this.stats.notificationsSent++)
        .catch(() => (this.notifyPending = true)) // sent again after reconnecting
        .finally(() => {
          this.notifyInFlight = false;
          if (this.notifyPending) this.requestNotify();
        });
    };
    if (wait > 0) setTimeout(send, wait).unref();
    else send();
  }

  /** Reads the feed now, or right after the read in progress. */
  requestRead(): void {
    if (!this.active) return;
    if (this.options.hub.size === 0) {
      // Nobody listens: stop reading; the next subscriber starts afresh.
      this.active = false;
      return;
    }
    if (this.reading) {
      this.readAgain = true;
      return;
    }
    this.reading = true;
    this.readOnce()
      .catch((error) =>
        this.options.log.warn("event feed read failed; retrying on the next notification or poll", {
          error: error instanceof Error ? error.message : String(error),
        }),
      )
      .finally(() => {
        this.reading = false;
        if (this.readAgain) {
          this.readAgain = false;
          this.requestRead();
        }
      });
  }

  private async readOnce(): Promise<void> {
    const page = await readFeed(this.options.runner(), this.watermark, (jobId, revision) =>
      this.published.has(`${jobId}:${revision}`),
    );
    this.stats.feedReads++;
    if (!this.active) return;
    this.publish(page.events);
    this.watermark = page.watermark;
    for (const [key, xid] of this.published) {
      if (xid < this.watermark) this.published.delete(key);
    }
  }

  /**
   * Publishes each event once. An event may come twice, from this process's
   * commit and from a feed read whose window covers its transaction; the
   * record of what was published is kept until the watermark passes it.
   */
  private publish(events: readonly FeedEvent[]): void {
    const fresh: EventRecord[] = [];
    for (const { xid, event } of events) {
      if (xid < this.watermark) continue; // before this notifier started: the streams' replay has it
      const key = `${event.jobId}:${event.revision}`;
      if (this.published.has(key)) continue;
      this.published.set(key, xid);
      fresh.push(event);
    }
    if (fresh.length === 0) return;
    this.stats.eventsPublished += fresh.length;
    this.stats.lastLagMs = Math.max(0, Date.now() - fresh[fresh.length - 1].occurredAt / 1000);
    this.options.onPublished?.(this.stats.lastLagMs / 1000);
    this.options.hub.publish(fresh);
  }
}
