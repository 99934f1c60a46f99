// grpc.health.v1.Health (SPEC §2, §11): SERVING while the database answers
// and the server is not draining; NOT_SERVING otherwise.

import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
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

export function createHealthService(state: HealthState): ServiceImpl<typeof Health> {
  return {
    check(req) {
      if (!KNOWN_SERVICES.has(req.service)) {
        throw new ConnectError(`unknown service "${req.service}"; ask for "" or "${JobService.typeName}"`, Code.NotFound);
      }
      return create(HealthCheckResponseSchema, { status: state.status });
    },
    async *watch(req, ctx) {
      if (!KNOWN_SERVICES.has(req.service)) {
        // The service may never appear, but the protocol keeps the stream open.
        yield create(HealthCheckResponseSchema, { status: Status.SERVICE_UNKNOWN });
        while (!ctx.signal.aborted) await state.changed(ctx.signal);
        return;
      }
      let sent: Status | undefined;
      while (!ctx.signal.aborted) {
        if (state.status !== sent) {
          sent = state.status;
          yield create(HealthCheckResponseSchema, { status: sent });
        }
        await state.changed(ctx.signal);
      }
    },
  };
}
