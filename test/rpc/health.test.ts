// grpc.health.v1.Health while the database is up (docs/contract.md §10, §11): Check for
// "" and jobs.v1.JobService, NOT_FOUND for other names, Watch streaming the
// status; no token needed. The outage is in health-outage.test.ts.

import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { status } from "@grpc/grpc-js";
import { jobsClient } from "../support/grpc.js";
import { type HealthClient, healthClient } from "../support/health-client.js";
import { startServer, type TestServer } from "../support/harness.js";

let server: TestServer;
let health: HealthClient;

beforeAll(async () => {
  server = await startServer();
  health = healthClient(server.address);
});

afterAll(async () => {
  health?.close();
  await server?.stop();
});

test.each(["", "jobs.v1.JobService"])('Check("%s") answers SERVING without a token', async (service) => {
  expect(await health.check(service)).toBe("SERVING");
});

test("Check of an unknown service is NOT_FOUND", async () => {
  expect(await health.checkOutcome("jobs.v1.NoSuchService")).toBe("NOT_FOUND");
  expect(await health.checkOutcome("grpc.health.v1.Health.Check")).toBe("NOT_FOUND");
});

test.each(["", "jobs.v1.JobService"])('Watch("%s") streams SERVING and stays open', async (service) => {
  const watch = health.watch(service);
  try {
    expect(await watch.next()).toBe("SERVING");
    // Nothing changed, so nothing more comes — but the stream is still open.
    await expect(watch.next(500)).rejects.toThrow(/no stream message/);
  } finally {
    watch.stream.cancel();
  }
});

test("Watch of an unknown service says SERVICE_UNKNOWN and stays open", async () => {
  const watch = health.watch("jobs.v1.NoSuchService");
  try {
    expect(await watch.next()).toBe("SERVICE_UNKNOWN");
    await expect(watch.next(500)).rejects.toThrow(/no stream message/);
  } finally {
    watch.stream.cancel();
  }
});

test("Check ignores the authorization header, even a garbage one", async () => {
  // Load balancers send whatever header they are configured with.
  const withGarbage = jobsClient(server.address, "nope");
  try {
    expect(await withGarbage.health("")).toBe("SERVING");
  } finally {
    withGarbage.close();
  }
});

test("a draining server tells Watch NOT_SERVING, then ends the stream UNAVAILABLE instead of waiting on it", async () => {
  // A shutdown timeout far beyond jest's: if the open Watch held the drain, stop() would not return in time.
  const draining = await startServer({ databaseUrl: server.databaseUrl, env: { SHUTDOWN_TIMEOUT_SECONDS: "3600" } });
  const client = healthClient(draining.address);
  const watch = client.watch("");
  try {
    expect(await watch.next()).toBe("SERVING");
    const stopped = draining.stop();
    expect(await watch.next()).toBe("NOT_SERVING");
    await expect(watch.next()).rejects.toMatchObject({ code: status.UNAVAILABLE });
    await stopped;
  } finally {
    watch.stream.cancel();
    client.close();
  }
});
