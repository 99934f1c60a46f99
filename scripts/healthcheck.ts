// Health probe for the container image (Dockerfile HEALTHCHECK) or a
// Kubernetes exec probe: asks the server in this container, through
// grpc.health.v1.Health/Check for the whole server (""), and exits 0 only on
// SERVING — NOT_SERVING while the database is unreachable or while draining.
// Reads HOST, PORT and TLS_CERT as the server does.
//
//   node dist/scripts/healthcheck.js

import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus } from "../src/gen/grpc/health/v1/health_pb.js";

/** Where to reach a server listening on HOST: the loopback address for a wildcard. */
function probeHost(host: string): string {
  if (host === "" || host === "0.0.0.0") return "127.0.0.1";
  if (host === "::") return "[::1]";
  return host.includes(":") ? `[${host}]` : host;
}

const host = probeHost(process.env.HOST?.trim() ?? "127.0.0.1");
const port = process.env.PORT?.trim() || "50051";
const tls = Boolean(process.env.TLS_CERT?.trim());
const transport = createGrpcTransport({
  baseUrl: `${tls ? "https" : "http"}://${host}:${port}`,
  // Probing our own process over loopback: whether it serves matters here, not
  // whose certificate it shows (which need not name 127.0.0.1).
  nodeOptions: tls ? { rejectUnauthorized: false } : {},
});

try {
  const { status } = await createClient(Health, transport).check({ service: "" }, { timeoutMs: 3000 });
  if (status !== HealthCheckResponse_ServingStatus.SERVING) {
    process.stderr.write(`jobs health: ${HealthCheckResponse_ServingStatus[status]}\n`);
    process.exitCode = 1;
  }
} catch (error) {
  process.stderr.write(`jobs health: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
}
