// grpc.health.v1.Health (docs/contract.md §10, §11): SERVING while the database answers
// and the server is not draining; NOT_SERVING otherwise.

import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { DomainError, Unavailable } from "../domain/errors.js";
import { Health, HealthCheckResponse_ServingStatus as Status, HealthCheckResponseSchema } from "../gen/grpc/health/v1/health_pb.js";
import { JobService } from "../gen/jobs/v1/job_service_pb.js";

const KNOWN_SERVICES = new Set(["", JobService.typeName]);

export class HealthState {
  private serving = false;
  private readonly watchers = new Set<() => void>();

  get status(): Status {
    return this.serving ? Status.SERVING : Status.NOT_SERVING;
  }

  set(serving: boolean): void {
    if (serving === this.serving) return;
    this.serving = serving;
    for (const wake of this.watchers) wake();
  }

  /** Resolves on the next change, or when `signal` aborts. */
  changed(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.watchers.delete(done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      this.watchers.add(done);
      signal.addEventListener("abort", done, { once: true });
    });
  }
}

/**
 * `drainSignal` aborts when the server starts draining (every call's signal
 * aborts with it too): Watch streams then say NOT_SERVING and end
 * UNAVAILABLE, so they do not hold the server open.
 */
export function createHealthService(state: HealthState, drainSignal?: AbortSignal): ServiceImpl<typeof Health> {
  return {
    check(req) {
      if (!KNOWN_SERVICES.has(req.service)) {
        throw new DomainError("not_found", "SERVICE_NOT_FOUND", `unknown service "${req.service}"; ask for "" or "${JobService.typeName}"`, { service: req.service });
      }
      return create(HealthCheckResponseSchema, { status: state.status });
    },
    async *watch(req, ctx) {
      const { signal } = ctx;
      let sent: Status | undefined;
      if (!KNOWN_SERVICES.has(req.service)) {
        // The service may never appear, but the protocol keeps the stream open.
        yield create(HealthCheckResponseSchema, { status: Status.SERVICE_UNKNOWN });
        while (!signal.aborted) await state.changed(signal);
      } else {
        while (!signal.aborted) {
          if (state.status !== sent) {
            sent = state.status;
            yield create(HealthCheckResponseSchema, { status: sent });
          }
          await state.changed(signal);
        }
      }
      if (!drainSignal?.aborted) return;
      // Draining: say so, then end like every watch stream (UNAVAILABLE) so the watcher moves to another replica.
      if (sent !== undefined && sent !== Status.NOT_SERVING) {
        yield create(HealthCheckResponseSchema, { status: Status.NOT_SERVING });
      }
      throw new Unavailable("SERVER_DRAINING", "the server is shutting down; watch another replica");
    },
  };
}
