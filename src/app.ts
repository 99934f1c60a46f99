// Wiring only: builds every part from the config, starts them in order, and
// stops them in reverse on drain (docs/contract.md §7).

import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { MikroORM } from "@mikro-orm/postgresql";
import { Authenticator } from "./auth/authenticator.js";
import { StreamTokens } from "./auth/stream-tokens.js";
import { generateSecret, hashSecret } from "./auth/tokens.js";
import type { Config } from "./config.js";
import { openDatabase } from "./database.js";
import { EventHub } from "./events/hub.js";
import { Notifier } from "./events/notifier.js";
import { Health } from "./gen/grpc/health/v1/health_pb.js";
import * as reflectionV1 from "./gen/grpc/reflection/v1/reflection_pb.js";
import * as reflectionV1alpha from "./gen/grpc/reflection/v1alpha/reflection_pb.js";
import { JobService } from "./gen/jobs/v1/job_service_pb.js";
import { principalKey } from "./domain/principal.js";
import type { Logger } from "./log.js";
import { Reaper } from "./maintenance/reaper.js";
import { Metrics, serveMetrics } from "./metrics.js";
import { Retention } from "./maintenance/retention.js";
import { CallLog } from "./rpc/call-log.js";
import { createConsole } from "./rpc/console.js";
import { serverDraining } from "./rpc/errors.js";
import { createHealthService, HealthState } from "./rpc/health.js";
import { errorInterceptor, InFlight, outcomeInterceptor } from "./rpc/interceptors.js";
import { createJobService } from "./rpc/job-service.js";
import { createReflectionServices, describedFiles } from "./rpc/reflection.js";
import { connectionLimits, type Listener, listen } from "./rpc/transport/listener.js";
import { createRpcHandler, rpcService } from "./rpc/transport/rpc-handler.js";
import { DatabaseProbe } from "./store/database-probe.js";
import { JobStore } from "./store/job-store.js";
import { migrate, openOrm } from "./store/orm.js";
import { TokenStore } from "./store/token-store.js";

export interface App {
  readonly port: number;
  /** Base URL of the server, e.g. http://127.0.0.1:50051. */
  readonly url: string;
  readonly databaseUrl: string;
  /** The development service token (embedded database only). */
  readonly devToken: string | null;
  readonly orm: MikroORM;
  readonly store: JobStore;
  readonly tokens: TokenStore;
  readonly notifier: Notifier;
  readonly reaper: Reaper;
  readonly hub: EventHub;
  /** Drains and stops (docs/contract.md §7): streams end UNAVAILABLE, unary calls finish, then everything closes. */
  stop(): Promise<void>;
}

export interface StartOptions {
  readonly migrate?: boolean;
  /** Issue and print a development token (default: when the database is embedded). */
  readonly devToken?: boolean;
}

export const DEV_TOKEN_DESCRIPTION = "development token (jobsctl serve, embedded database)";

export async function startApp(config: Config, log: Logger, options: StartOptions = {}): Promise<App> {
  const { url: databaseUrl, embedded } = await openDatabase(config, log);
  const cleanups: Array<() => Promise<unknown>> = [];
  if (embedded) cleanups.push(() => embedded.stop());
  try {
    const metrics = new Metrics();
    await prepareSchema(databaseUrl, config, options.migrate ?? config.migrateOnStart, log);
    const orm = await openOrm({
      databaseUrl,
      poolSize: config.dbPoolSize,
      acquireTimeoutMs: config.dbAcquireTimeoutMs,
      queryTimeoutMs: config.dbQueryTimeoutMs,
      onPool: (pool) => metrics.pool(pool, config.dbPoolSize),
    });
    cleanups.unshift(() => orm.close(true));

    const probe = new DatabaseProbe(databaseUrl, 1000, Math.min(config.dbAcquireTimeoutMs, 2000));
    await probe.start();
    cleanups.unshift(() => probe.stop());

    const hub = new EventHub();
    const runner = () => orm.em.getConnection().getClient();
    const notifier = new Notifier({
      databaseUrl,
      runner,
      hub,
      log,
      pollIntervalMs: config.watchPollIntervalMs,
      notifyIntervalMs: config.notifyIntervalMs,
      onPublished: (lagSeconds) => metrics.published(lagSeconds),
    });
    await notifier.start();
    cleanups.unshift(() => notifier.stop());
    const logDebug = log.enabled("debug");
    const shares = poolShares(config);
    const limits = { payloadBytes: config.jobPayloadMaxBytes, jobBytes: config.jobMaxBytes };
    const store = new JobStore(
      orm,
      (committed) => {
        notifier.committed(committed);
        for (const { event } of committed) {
          metrics.eventCommitted(event.type);
          if (logDebug) {
            log.debug("transition", {
              job_id: event.jobId,
              revision: event.revision,
              event: event.type,
              from_state: event.fromState ?? undefined,
              to_state: event.toState,
              actor: principalKey(event.actor),
            });
          }
        }
      },
      {
        batchMaxCalls: config.writeBatchMaxCalls,
        batchesInFlight: config.writeBatchesInFlight,
        readSlots: shares.reads,
        limits,
        maxQueueMs: config.dbAcquireTimeoutMs,
        onBatch: ({ calls, ms, outcome, alone, error }) => {
          metrics.writeBatch(calls, ms / 1000, outcome);
          if (logDebug) {
            log.debug("write batch", { calls, duration_ms: Math.round(ms * 100) / 100, outcome, alone: alone || undefined, error: error ? describeError(error) : undefined });
          }
        },
      },
    );
    metrics.writeQueue(() => store.writeQueue);
    metrics.laneWaiting(() => ({ reads: store.readsWaiting, token_lookups: tokens.waiting }));
    metrics.watchStreams(() => ({ WatchJob: hub.size - hub.filteredSize, WatchJobs: hub.filteredSize }));
    metrics.databaseUp(() => probe.state === "up");
    const tokens = new TokenStore(orm, shares.tokenLookups, config.dbAcquireTimeoutMs);
    // Streams re-check their tokens as often as calls' lookups expire (at least every second).
    const streamTokens = new StreamTokens(tokens, Math.max(1, config.tokenCacheSeconds) * 1000, log);
    cleanups.unshift(async () => streamTokens.stop());

    const devToken = (options.devToken ?? embedded !== null) ? await developmentToken(tokens, config.dataDir) : null;

    const health = new HealthState();
    // Connect's shutdownSignal: every call's signal aborts with its reason when the server starts draining.
    const drain = new AbortController();
    const updateHealth = () => health.set(probe.state === "up" && !drain.signal.aborted);
    probe.onChange(updateHealth);
    updateHealth();

    const reflection = createReflectionServices(describedFiles(), [
      JobService.typeName,
      Health.typeName,
      reflectionV1.ServerReflection.typeName,
      reflectionV1alpha.ServerReflection.typeName,
    ]);
    const jobService = createJobService({
      store,
      hub,
      notifier,
      leaseDefaultSeconds: config.leaseDefaultSeconds,
      limits,
      watchHeartbeatSeconds: config.watchHeartbeatSeconds,
      watchBufferEvents: config.watchBufferEvents,
      watchSetupSlots: Math.max(2, Math.floor(config.dbPoolSize / 2)),
      drainSignal: drain.signal,
      streamTokens,
      onDatabaseLost: (listener) => probe.onChange((state) => state === "down" && listener()),
    });
    const inFlight = new InFlight();
    const callLog = new CallLog(log, metrics);
    const authenticator = new Authenticator(tokens, config.tokenCacheSeconds * 1000);
    const handler = createRpcHandler({
      services: [
        rpcService(JobService, jobService),
        rpcService(Health, createHealthService(health, drain.signal)),
        rpcService(reflectionV1.ServerReflection, reflection.v1),
        rpcService(reflectionV1alpha.ServerReflection, reflection.v1alpha),
      ],
      interceptors: [inFlight.interceptor, outcomeInterceptor, errorInterceptor(log)],
      authenticate: (authorization) => authenticator.authenticate(authorization),
      maxMessageBytes: config.maxMessageBytes,
      shutdownSignal: drain.signal,
      grpcUnaryFastPath: config.grpcUnaryFastPath,
      callLog,
      log,
      otherPaths: createConsole({ enabled: config.consoleEnabled, log }),
    });
    const listener: Listener = await listen(handler, {
      host: config.host,
      port: config.port,
      tls: config.tlsCert && config.tlsKey ? { certFile: config.tlsCert, keyFile: config.tlsKey } : undefined,
      limits: connectionLimits(config),
      onConnectionEnd: (reason, remoteAddress) => {
        metrics.connectionEnded(reason);
        log.debug("connection closed", { reason, remote_address: remoteAddress });
      },
    });
    metrics.connections(() => listener.connections);
    // drain() closes the listening socket: a start that fails after this point must not leave the port held.
    cleanups.unshift(async () => {
      listener.drain();
      listener.destroy();
    });

    const reaper = new Reaper(
      store,
      probe,
      {
        intervalMs: config.reaperIntervalSeconds * 1000,
        graceMs: config.reaperGraceSeconds * 1000,
        batchSize: config.reaperBatchSize,
        onRun: (outcome, reaped) => metrics.reaperRun(outcome, reaped),
      },
      log,
    );
    reaper.start();
    cleanups.unshift(() => reaper.stop());
    if (config.retentionDays !== null) {
      const retention = new Retention(store, config.retentionDays, config.retentionIntervalSeconds * 1000, log);
      retention.start();
      cleanups.unshift(() => retention.stop());
    }

    if (config.metricsPort !== null) {
      metrics.collectProcessMetrics();
      const metricsServer = await serveMetrics(metrics, config.metricsHost, config.metricsPort);
      cleanups.unshift(() => new Promise((resolve) => metricsServer.close(resolve)));
      log.info("metrics", { url: `http://${urlHost(config.metricsHost)}:${config.metricsPort}/metrics` });
    }

    const scheme = config.tlsCert ? "https" : "http";
    const url = `${scheme}://${urlHost(config.host)}:${listener.port}`;
    log.info("serving", { url, protocols: ["grpc", "grpc-web", "connect"], embeddedDatabase: embedded !== null });

    let stopping: Promise<void> | null = null;
    const stop = () => {
      stopping ??= (async () => {
        log.info("draining");
        drain.abort(serverDraining());
        updateHealth();
        listener.drain();
        const deadline = new Promise<"timeout">((resolve) =>
          setTimeout(() => resolve("timeout"), config.shutdownTimeoutSeconds * 1000).unref(),
        );
        // Every connection closes once its calls are done. A watch stream whose
        // client stopped reading never finishes its last write, though: once
        // the unary calls have answered, give streams a moment to deliver their
        // UNAVAILABLE and close whatever is left.
        const unaryDone = (async () => {
          while (inFlight.count > 0) await sleep(20);
          await sleep(1000);
          return "unary done" as const;
        })();
        const outcome = await Promise.race([listener.closed(), unaryDone, deadline]);
        if (outcome === "timeout") log.warn("calls still running after SHUTDOWN_TIMEOUT_SECONDS; closing them");
        await runCleanups(cleanups, log);
        log.info("stopped");
      })();
      return stopping;
    };

    return { port: listener.port, url, databaseUrl, devToken, orm, store, tokens, notifier, reaper, hub, stop };
  } catch (error) {
    await runCleanups(cleanups, log);
    throw error;
  }
}

/**
 * Applies pending migrations (or refuses to serve a schema that is behind),
 * on a pool of its own: a migration may rightly run for minutes, past the
 * serving pool's DB_QUERY_TIMEOUT_MS.
 */
async function prepareSchema(databaseUrl: string, config: Config, apply: boolean, log: Logger): Promise<void> {
  const orm = await openOrm({ databaseUrl, poolSize: 1, acquireTimeoutMs: config.dbAcquireTimeoutMs });
  try {
    if (apply) {
      const applied = await migrate(orm, databaseUrl);
      if (applied.length) log.info("migrations applied", { migrations: applied });
      return;
    }
    const pending = await orm.migrator.getPending();
    if (pending.length) {
      throw new Error(
        `the database schema is behind this server (pending migrations: ${pending.map((m) => m.name).join(", ")}); run \`jobsctl migrate\`, or start with MIGRATE_ON_START=true`,
      );
    }
  } finally {
    await orm.close(true);
  }
}

/**
 * How the pool's connections are shared: the batched writer's transactions,
 * token lookups, the notifier's feed reads, and every other read. The shares
 * add up to the pool, so no kind of work can take every connection.
 */
function poolShares(config: Config): { reads: number; tokenLookups: number } {
  const tokenLookups = Math.max(1, Math.floor(config.dbPoolSize / 8));
  const notifier = 1;
  return { tokenLookups, reads: Math.max(1, config.dbPoolSize - config.writeBatchesInFlight - tokenLookups - notifier) };
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A host as a URL writes it: an IPv6 address in brackets. */
function urlHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms).unref());

async function runCleanups(cleanups: Array<() => Promise<unknown>>, log: Logger): Promise<void> {
  for (const cleanup of cleanups) {
    await cleanup().catch((error) => log.warn("error while stopping", { error: describeError(error) }));
  }
}

/**
 * The embedded database's development token: a service principal with both
 * scopes, kept in JOBS_DATA_DIR/dev-token (mode 0600) so that it survives
 * restarts. The database holds only its hash, like any token's.
 */
async function developmentToken(tokens: TokenStore, dataDir: string): Promise<string> {
  const file = join(dataDir, "dev-token");
  if (existsSync(file)) {
    const saved = readFileSync(file, "utf8").trim();
    if (await tokens.findActive(hashSecret(saved))) return saved;
  }
  await tokens.revokeByDescription(DEV_TOKEN_DESCRIPTION);
  const secret = generateSecret();
  await tokens.create(hashSecret(secret), { type: "service", name: "dev" }, ["jobs:read", "jobs:write"], DEV_TOKEN_DESCRIPTION);
  mkdirSync(dataDir, { recursive: true, mode: 0o755 });
  writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  return secret;
}
