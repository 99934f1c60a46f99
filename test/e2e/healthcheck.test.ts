// The container's health probe (scripts/healthcheck.ts, the Dockerfile's
// HEALTHCHECK): exit 0 when the server answers SERVING, 1 with a reason otherwise.

import { execFile } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { startServer, type TestServer } from "../support/harness.js";
import { childEnv, freePort } from "../support/processes.js";

const PROBE = join(import.meta.dirname, "..", "..", "dist", "scripts", "healthcheck.js");

let server: TestServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server?.stop();
});

function probe(env: Record<string, string>): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [PROBE], { env: childEnv(env), timeout: 20_000 }, (error, _stdout, stderr) =>
      resolve({ code: error ? Number(error.code ?? 1) : 0, stderr }),
    );
  });
}

test("exits 0 against a serving server, also when HOST is the wildcard address", async () => {
  expect(await probe({ HOST: "127.0.0.1", PORT: String(server.port) })).toEqual({ code: 0, stderr: "" });
  expect(await probe({ HOST: "0.0.0.0", PORT: String(server.port) })).toEqual({ code: 0, stderr: "" });
});

test("exits 1 with the reason when nothing answers", async () => {
  const res = await probe({ HOST: "127.0.0.1", PORT: String(await freePort()) });
  expect(res.code).toBe(1);
  expect(res.stderr).toMatch(/^jobs health: .*(ECONNREFUSED|unavailable)/i);
});
