// Which input and result variants fit which job type. The variant names are
// the `JobInput.kind` / `JobResult.kind` oneof cases (camelCase, as
// protobuf-es names them).

import type { JobTypeName } from "./states.js";

/** The `JobResult.kind` case a job of this type completes with. */
export function resultCaseFor(type: JobTypeName): string {
  return type.toLowerCase().replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** Types whose input has a typed variant; every other type takes `other`. */
const TYPED_INPUTS: Partial<Record<JobTypeName, string>> = {
  FORECAST: "forecast",
  REFRESH_MATERIALIZED_VIEW: "refreshMaterializedView",
};

/** The `JobInput.kind` case that fits this type. */
export function inputCaseFor(type: JobTypeName): string {
  return TYPED_INPUTS[type] ?? "other";
}

/** The snake_case field name of a oneof case, as the proto (and clients) spell it. */
export function snakeCase(camel: string): string {
  return camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}
