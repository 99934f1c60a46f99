// payloadBytes and jobBytes (src/domain/job-size.ts) must be upper bounds of
// what protobuf actually sends, or the limits that keep every reply under the
// stock clients' 4 MiB would not hold. Checked against protobuf-es's own
// encoding on random JSON (numbers, strings with non-ASCII and astral
// characters, deep nesting), and on whole jobs as replies carry them.

import { describe, expect, test } from "@jest/globals";
import { fromJson, toBinary } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import type { JobRecord, JsonValue } from "../../src/domain/job.js";
import { jobBytes, payloadBytes, smallestJobLimit, textBytes } from "../../src/domain/job-size.js";
import { JobSchema } from "../../src/gen/jobs/v1/job_pb.js";
import { jobToProto } from "../../src/rpc/convert.js";

const json = fc.jsonValue({ maxDepth: 6, stringUnit: "binary" }) as fc.Arbitrary<JsonValue>;

describe("job sizes", () => {
  test("textBytes is the UTF-8 length", () => {
    fc.assert(fc.property(fc.string({ unit: "binary" }), (text) => expect(textBytes(text)).toBe(Buffer.byteLength(text, "utf8"))));
  });

  test("payloadBytes bounds a JSON value's size as a google.protobuf.Value", () => {
    fc.assert(
      fc.property(json, (value) => {
        expect(toBinary(ValueSchema, fromJson(ValueSchema, value as never)).length).toBeLessThanOrEqual(payloadBytes(value));
      }),
      { numRuns: 2000 },
    );
  });

  test("jobBytes bounds a whole job's size as a reply carries it", () => {
    const job = (other: JsonValue, diagnostic: JsonValue, message: string): JobRecord => ({
      id: "0b7e7c64-5c1f-4b8e-9f57-2f0f0c1a1111",
      type: "DATASETS_DELIVER_DATA",
      state: "FAILED",
      companyId: "9223372036854775807",
      createdBy: { type: "api_user", companyId: "9223372036854775807", userId: "9223372036854775807" },
      input: { other: other as { [key: string]: JsonValue } },
      executorId: "é".repeat(256),
      attempt: 2_000_000_000,
      revision: 2_000_000_000,
      result: null,
      failures: [{ attempt: 2_000_000_000, executorId: "x".repeat(256), message, diagnostic, failedAt: 253_402_300_799_000_000 }],
      cancellationReason: "ü".repeat(1000),
      dataPlaneId: "d".repeat(256),
      computePoolId: "p".repeat(256),
      executionCluster: "DEDICATED",
      leaseSeconds: 86_400,
      leaseExpiresAt: 253_402_300_799_000_000,
      createdAt: 253_402_300_799_000_000,
      updatedAt: 253_402_300_799_000_000,
      startedAt: 253_402_300_799_000_000,
      finishedAt: 253_402_300_799_000_000,
    });
    fc.assert(
      fc.property(fc.dictionary(fc.string(), json, { maxKeys: 5 }), json, fc.string({ unit: "binary" }), (other, diagnostic, message) => {
        const record = job(other, diagnostic, message);
        expect(toBinary(JobSchema, jobToProto(record)).length).toBeLessThanOrEqual(jobBytes(record));
      }),
      { numRuns: 500 },
    );
  });

  test("the default limits let a job with the largest input record its result or failure", () => {
    expect(smallestJobLimit(256 * 1024)).toBeLessThanOrEqual(1024 * 1024);
  });
});
