// Idempotent create under retries (docs/contract.md §2, §11): the same CreateJob
// `request_id`, sent at once by many clients through two replicas on one
// database, creates one job per principal — whatever token the principal
// used and whatever the rest of each request says — and every answer names
// that job. The database's unique constraint is what holds this across
// replicas; each process only sees half of the racing requests.

import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, expect, test } from "@jest/globals";
import { reportFigures, scaled, soakFactor } from "../support/figures.js";
import { jobsClient, type JobsClient, type Msg, type RpcError } from "../support/grpc.js";
import { sql, startServer, type TestServer } from "../support/harness.js";
import { type ServerProcess, spawnServer } from "../support/processes.js";
import { range } from "../support/watching.js";

const CLIENTS = 16;
const ROUNDS = scaled(20);

let a: TestServer;
let b: ServerProcess;
let clients: JobsClient[];
/** The senders: a principal, and the token each client uses for it. */
let senders: Array<{ principal: string; token: string; fields: Msg }>;

beforeAll(async () => {
  a = await startServer({ env: { LOG_LEVEL: "warn" } });
  b = await spawnServer({ databaseUrl: a.databaseUrl });
  clients = range(0, CLIENTS - 1).map((i) => jobsClient(i % 2 === 0 ? a.address : b.address, null, { "grpc.use_local_subchannel_pool": 1 }));
  // A second token of the same service principal: the request_id space belongs to the principal, not the token.
  const again = await a.issueToken({ type: "service", name: "test-service" }, ["jobs:read", "jobs:write"]);
  senders = [
    { principal: "service test-service", token: a.tokens.service, fields: { company_id: "7" } },
    { principal: "service test-service", token: again.secret, fields: { company_id: "7" } },
    { principal: "service test-writer", token: a.tokens.writer, fields: { company_id: "7" } },
    { principal: "api_user 100/1", token: a.tokens.companyA, fields: {} },
  ];
}, 60_000 * soakFactor());
afterAll(async () => {
  for (const client of clients ?? []) client.close();
  await b?.stop();
  await a?.stop();
});

test(`${ROUNDS} rounds of ${CLIENTS} clients racing one request_id through two replicas: one job per principal`, async () => {
  const violations: string[] = [];
  const jobIds = new Set<string>();
  let requests = 0;
  let principals = 0;
  for (const round of range(1, ROUNDS)) {
    const requestId = randomUUID();
    // Everything but the request_id and principal differs between the racing requests: the first one in wins.
    const answers = await Promise.all(
      clients.map((client, i) => {
        const sender = senders[i % senders.length];
        const request = { type: "JOB_TYPE_FORECAST", request_id: requestId, data_plane_id: `plane-${round}-${i}`, ...sender.fields };
        return client.call("CreateJob", request, sender.token).then(
          (answer) => ({ sender, job: answer.job as Msg, error: null }),
          (error: RpcError) => ({ sender, job: null, error }),
        );
      }),
    );
    requests += answers.length;

    const byPrincipal = new Map<string, Set<string>>();
    for (const { sender, job, error } of answers) {
      if (error) violations.push(`round ${round}: CreateJob as ${sender.principal} failed: ${error.code} ${error.details}`);
      else byPrincipal.set(sender.principal, (byPrincipal.get(sender.principal) ?? new Set()).add(job?.id));
    }
    const expected = new Set(senders.map((s) => s.principal)).size;
    principals += expected;
    for (const [principal, ids] of byPrincipal) {
      if (ids.size !== 1) violations.push(`round ${round}: ${principal}'s answers name ${ids.size} jobs: ${[...ids].join(", ")}`);
    }
    const distinct = new Set([...byPrincipal.values()].flatMap((ids) => [...ids]));
    if (distinct.size !== expected) violations.push(`round ${round}: ${expected} principals got ${distinct.size} jobs in all`);
    for (const id of distinct) jobIds.add(id);

    // What is stored: one job per principal for this request_id, each with its one CREATED event and nothing else.
    const stored = await sql<{ id: string; events: string; created: string }>(
      a.databaseUrl,
      `select j.id, count(e.*) as events, count(e.*) filter (where e.type = 'CREATED') as created
       from jobs j left join job_events e on e.job_id = j.id
       where j.request_id = $1 group by j.id`,
      [requestId],
    );
    if (stored.length !== expected) violations.push(`round ${round}: ${stored.length} jobs stored for request_id ${requestId}, expected ${expected}`);
    for (const row of stored) {
      if (!distinct.has(row.id)) violations.push(`round ${round}: job ${row.id} stored for the request_id, but no answer named it`);
      if (row.events !== "1" || row.created !== "1") violations.push(`round ${round}: job ${row.id} has ${row.events} events, ${row.created} CREATED`);
    }
  }
  reportFigures("idempotent create (2 replicas)", {
    requests,
    request_ids: ROUNDS,
    principals,
    jobs: jobIds.size,
    violations: violations.length,
  });
  expect(violations).toEqual([]);
  expect(jobIds.size).toBe(ROUNDS * new Set(senders.map((s) => s.principal)).size);
}, 60_000 * soakFactor());
