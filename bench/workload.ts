// One job lifecycle, the unit of work of every phase: CreateJob → RunJob →
// CompleteJob, i.e. three events written (CREATED, STARTED, COMPLETED). The
// service phases send it over gRPC; the ceiling sends the SQL the store
// would send for it. Both use these payloads, so the rows and the JSON that
// PostgreSQL stores are the same size either way.

import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import type { JsonValue } from "../src/domain/job.js";
import { JobInputSchema, JobResultSchema } from "../src/gen/jobs/v1/job_pb.js";
import { inputToJson, resultToJson } from "../src/rpc/convert.js";

/** Events (state changes) one lifecycle writes: CREATED, STARTED, COMPLETED. */
export const EVENTS_PER_LIFECYCLE = 3;

export const COMPANY_ID = "4217";
export const DATA_PLANE_ID = "dp-eu-west-1";
export const COMPUTE_POOL_ID = "pool-standard-8";
export const LEASE_SECONDS = 300;

// A forecast job as a product service would submit it: an NQL query of a few
// hundred bytes and the SQL it compiled to (about 1.2 KB).
const NQL =
  "forecast revenue by region, product_line over next 90 days from sales.orders " +
  "where order_date >= date '2024-01-01' and channel in ('web', 'retail', 'partner') " +
  "with seasonality weekly, yearly holidays us, eu confidence 0.9 granularity day";
const COMPILED_SQL = [
  "WITH base AS (SELECT o.region, o.product_line, date_trunc('day', o.order_date) AS d, sum(o.amount) AS revenue",
  "FROM sales.orders o WHERE o.order_date >= DATE '2024-01-01' AND o.channel IN ('web','retail','partner')",
  "GROUP BY 1, 2, 3), calendar AS (SELECT generate_series(current_date, current_date + 89, interval '1 day') AS d),",
  "holidays AS (SELECT h.d, h.country FROM reference.holidays h WHERE h.country IN ('US','DE','FR','ES','IT','NL')),",
  "features AS (SELECT b.*, extract(dow FROM b.d) AS dow, extract(doy FROM b.d) AS doy, (h.d IS NOT NULL) AS holiday",
  "FROM base b LEFT JOIN holidays h ON h.d = b.d) SELECT f.region, f.product_line, c.d AS forecast_date,",
  "ml.forecast(f.revenue, f.d, f.dow, f.doy, f.holiday, horizon => 90, confidence => 0.9) AS predicted_revenue",
  "FROM features f CROSS JOIN calendar c GROUP BY f.region, f.product_line, c.d ORDER BY 1, 2, 3",
].join("\n");

/** Requests for @grpc/grpc-js with proto-loader (keepCase, int64 as strings, enums as names). */
export function createJobRequest(): Record<string, unknown> {
  return {
    type: "JOB_TYPE_FORECAST",
    input: { forecast: { nql: NQL, compiled_sql: COMPILED_SQL } },
    company_id: COMPANY_ID,
    data_plane_id: DATA_PLANE_ID,
    compute_pool_id: COMPUTE_POOL_ID,
    execution_cluster: "EXECUTION_CLUSTER_SHARED",
    request_id: randomUUID(),
  };
}

export function runJobRequest(jobId: string, executorId: string): Record<string, unknown> {
  return { job_id: jobId, executor_id: executorId, lease_seconds: LEASE_SECONDS };
}

export function completeJobRequest(jobId: string, attempt: string): Record<string, unknown> {
  return { job_id: jobId, result: { forecast: { cost: "18734", rows: "1620" } }, attempt };
}

/** The same input and result as the service stores them (their proto-JSON), for the ceiling's SQL. */
export const INPUT_JSON: JsonValue = inputToJson(
  create(JobInputSchema, { kind: { case: "forecast", value: { nql: NQL, compiledSql: COMPILED_SQL } } }),
) as JsonValue;
export const RESULT_JSON: JsonValue = resultToJson(
  create(JobResultSchema, { kind: { case: "forecast", value: { cost: 18734n, rows: 1620n } } }),
);
