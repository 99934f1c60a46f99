// Hostile request bodies (issue 24) against a real server process: 4 MB
// Connect JSON with hundreds of thousands of unknown keys, JSON nested two
// million arrays deep, 4 MB protobuf messages of two million unknown fields,
// on gRPC, Connect (unary and streaming) and HTTP/1.1. Without a valid token
// their bodies are never decoded: each is refused UNAUTHENTICATED for little
// of the server's CPU (read from /proc; decoding them used to cost far more
// than the budget below, see docs/reliability.md), logged once and counted,
// while an authenticated client's calls go on succeeding. With a valid token the JSON ones are refused by the
// decoder's own bounds (depth, number of values) before they are parsed.

import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { generateSecret } from "../../src/auth/tokens.js";
import { freePort } from "../../src/store/embedded-postgres.js";
import { reportFigures } from "../support/figures.js";
import { jobsClient, type JobsClient } from "../support/grpc.js";
import { freshDatabase } from "../support/harness.js";
import { deepNestingJson, unknownFieldsBinary, unknownKeysJson } from "../support/hostile.js";
import { createServiceToken, processCpuMs, type ServerProcess, spawnServer } from "../support/processes.js";
import { envelope, rawCaller, type RawOutcome } from "../support/raw-calls.js";
import { pool } from "../support/watching.js";

const BODY_BYTES = 4_000_000; // under the default MAX_MESSAGE_BYTES (4 MiB): the size check passes them
/** Server CPU a refused request may cost on average: a small fraction of what decoding one of these bodies costs. */
const REFUSAL_CPU_BUDGET_MS = 25;

let server: ServerProcess;
let token: string;
let client: JobsClient;
let metricsUrl: string;
let jobId: string;

beforeAll(async () => {
  const databaseUrl = await freshDatabase();
  token = await createServiceToken(databaseUrl, "hostile-bodies");
  const metricsPort = await freePort();
  metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  server = await spawnServer({ databaseUrl, env: { LOG_LEVEL: "info", METRICS_PORT: String(metricsPort) } });
  client = jobsClient(server.address, token);
  jobId = (await client.call("CreateJob", { type: "JOB_TYPE_HEALTH_CHECK", company_id: "1" })).job.id;
}, 60_000);
afterAll(async () => {
  client?.close();
  await server?.stop();
});

const keys = unknownKeysJson(BODY_BYTES);
const deep = deepNestingJson(2_000_000);
const fields = unknownFieldsBinary(BODY_BYTES);

type Send = (authorization: string | null) => Promise<RawOutcome>;

/** One hostile request, on a connection of its own (Node's client counts a refused stream's unsent body against its session). */
function oneShot(call: (raw: ReturnType<typeof rawCaller>) => Promise<RawOutcome>): Promise<RawOutcome> {
  const raw = rawCaller(server.url, "");
  return call(raw).finally(() => raw.close());
}

const HOSTILE: Array<[string, Send]> = [
  ["Connect JSON, unknown keys", (token) => oneShot((raw) => raw.connectJson("GetJob", keys, { token }))],
  ["Connect JSON, deep nesting", (token) => oneShot((raw) => raw.connectJson("GetJob", deep, { token }))],
  ["Connect streaming JSON, unknown keys", (token) => oneShot((raw) => raw.connectJson("WatchJobs", keys, { token, stream: true }))],
  ["Connect binary, unknown fields", (token) => oneShot((raw) => raw.connectJson("GetJob", fields, { token, headers: { "content-type": "application/proto" } }))],
  ["gRPC, unknown fields", (token) => oneShot((raw) => raw.grpc("GetJob", fields, { token }))],
  ["HTTP/1.1 Connect JSON, unknown keys", (token) => http1Json(keys, token)],
];

async function http1Json(body: Buffer, token: string | null): Promise<RawOutcome> {
  const res = await fetch(`${server.url}/jobs.v1.JobService/GetJob`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token === null ? {} : { authorization: `Bearer ${token}` }) },
    body,
  });
  const json = (await res.json()) as { code?: string };
  return { code: (json.code ?? `HTTP_${res.status}`).toUpperCase(), message: "", httpStatus: res.status };
}

async function metric(series: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

/** GetJob calls, one after another, until `until` resolves and at least `min` are made; every outcome is kept. */
async function legitimateCalls(until: Promise<unknown>, min: number): Promise<string[]> {
  let done = false;
  void until.then(() => (done = true));
  const outcomes: string[] = [];
  while (!done || outcomes.length < min) {
    try {
      outcomes.push((await client.call("GetJob", { job_id: jobId })).job.id === jobId ? "OK" : "WRONG_JOB");
    } catch (error) {
      outcomes.push(String((error as { code?: number }).code ?? error));
    }
  }
  return outcomes;
}

test("unauthenticated hostile bodies are refused without being decoded, cost little CPU, are logged and counted once, and an authenticated client is served throughout", async () => {
  const TOKENS: Array<[string, string | null, string]> = [
    ["no token", null, "MISSING_TOKEN"],
    ["a malformed token", "not-a-token", "MALFORMED_TOKEN"],
    ["an unknown token", generateSecret(), "INVALID_TOKEN"],
  ];
  const requests = TOKENS.flatMap(([who, secret, reason]) => HOSTILE.map(([what, send]) => ({ what: `${what}, ${who}`, send: () => send(secret), reason })));

  // The authenticated client's own CPU cost, alone, to take out of the figure below.
  const calibrationCalls = 100;
  let cpu = processCpuMs(server.child.pid as number);
  for (let i = 0; i < calibrationCalls; i++) await client.call("GetJob", { job_id: jobId });
  const cpuPerLegitimateCall = (processCpuMs(server.child.pid as number) - cpu) / calibrationCalls;

  const refusedBefore = await Promise.all(TOKENS.map(([, , reason]) => metric(`jobs_rpc_refused_total{reason="${reason}"}`)));
  const logFrom = server.stdout().length;
  cpu = processCpuMs(server.child.pid as number);
  const hostile = pool(requests, 6, async (r) => [r.what, (await r.send()).code] as const);
  const legitimate = await legitimateCalls(hostile, 20);
  const outcomes = await hostile;
  const cpuSpent = processCpuMs(server.child.pid as number) - cpu;

  expect(outcomes).toEqual(requests.map((r) => [r.what, "UNAUTHENTICATED"]));
  expect(legitimate.filter((o) => o !== "OK")).toEqual([]);
  const refusalCpuMs = Math.max(0, cpuSpent - legitimate.length * cpuPerLegitimateCall) / requests.length;
  reportFigures("hostile bodies, no valid token", {
    requests: requests.length,
    body_bytes: BODY_BYTES,
    server_cpu_ms_per_refused_request: refusalCpuMs.toFixed(1),
    legitimate_calls_meanwhile: legitimate.length,
  });
  expect(refusalCpuMs).toBeLessThan(REFUSAL_CPU_BUDGET_MS);

  // Each refusal: one line at info, and counted by its reason.
  const lines = server
    .stdout()
    .slice(logFrom)
    .split("\n")
    .filter((l) => l.includes('"msg":"rpc"'))
    .map((l) => JSON.parse(l));
  const refusedLines = lines.filter((e) => e.code === "unauthenticated");
  expect(refusedLines.map((e) => e.level)).toEqual(requests.map(() => "info"));
  for (const [i, [, , reason]] of TOKENS.entries()) {
    expect(await metric(`jobs_rpc_refused_total{reason="${reason}"}`)).toBe(refusedBefore[i] + HOSTILE.length);
  }
}, 120_000);

test("with a valid token, JSON past the decoder's bounds is refused before it is parsed, and unknown binary fields are skipped", async () => {
  const cases: Array<[string, Send, string, RegExp]> = [
    ["unknown keys", HOSTILE[0][1], "INVALID_ARGUMENT", /holds more than 100000 values/],
    ["deep nesting", HOSTILE[1][1], "INVALID_ARGUMENT", /nests deeper than 100 levels/],
  ];
  let cpu = processCpuMs(server.child.pid as number);
  for (const [what, send, code, message] of cases) {
    const outcome = await send(token);
    expect([what, outcome.code, outcome.errorInfo?.reason, outcome.message]).toEqual([what, code, "MALFORMED_MESSAGE", expect.stringMatching(message)]);
  }
  const jsonCpuMs = (processCpuMs(server.child.pid as number) - cpu) / cases.length;
  // Two million unknown fields are decoded (and skipped): the call is answered on its merits.
  cpu = processCpuMs(server.child.pid as number);
  const binary = await HOSTILE[4][1](token);
  const binaryCpuMs = processCpuMs(server.child.pid as number) - cpu;
  expect([binary.code, binary.errorInfo?.metadata.field]).toEqual(["INVALID_ARGUMENT", "job_id"]);
  reportFigures("hostile bodies, valid token", { json_cpu_ms_per_request: jsonCpuMs.toFixed(1), binary_unknown_fields_cpu_ms: binaryCpuMs.toFixed(1) });
  expect(jsonCpuMs).toBeLessThan(150);
}, 60_000);
