// How values look on the page. Everything a job carries is rendered as text
// nodes (JSX children), never as markup, so a string such as
// `<img src=x onerror=…>` in a failure message shows as those characters.
// Input and result variants are laid out from their protobuf descriptors, so
// a field added to proto/ shows up without a change here.

import type { DescEnum, DescField, DescMessage } from "@bufbuild/protobuf";
import { type JsonValue, toJson } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate, ValueSchema } from "@bufbuild/protobuf/wkt";
import type { ComponentChildren } from "preact";
import { ExecutionCluster, JobEventType, JobState, JobType, type Principal, PrincipalType } from "../../src/gen/jobs/v1/job_pb.js";

export const stateName = (state: JobState): string => JobState[state] ?? String(state);
export const typeName = (type: JobType): string => JobType[type] ?? String(type);
export const eventTypeName = (type: JobEventType): string => JobEventType[type] ?? String(type);
export const clusterName = (cluster: ExecutionCluster): string => ExecutionCluster[cluster] ?? String(cluster);

/** A point in time as `2026-12-04 17:03:05Z` (UTC, to the second), or an em dash when unset. */
export function time(ts: Timestamp | undefined): string {
  if (!ts) return "—";
  return timestampDate(ts).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

/** How far `ts` is from `now`: "in 42 s", "3 min ago". */
export function relative(ts: Timestamp, now: number): string {
  const seconds = Math.round((timestampDate(ts).getTime() - now) / 1000);
  const span = Math.abs(seconds);
  const text = span < 120 ? `${span} s` : span < 7200 ? `${Math.round(span / 60)} min` : `${Math.round(span / 3600)} h`;
  return seconds >= 0 ? `in ${text}` : `${text} ago`;
}

export function principal(p: Principal | undefined): string {
  if (!p) return "—";
  if (p.type === PrincipalType.SERVICE) return `service ${p.name}`;
  if (p.type === PrincipalType.API_USER) return `user ${p.userId} of company ${p.companyId}`;
  return "unknown";
}

export const orDash = (text: string) => (text === "" ? "—" : text);

/** `affected_rows` → "Affected rows". */
export const label = (name: string) => name.charAt(0).toUpperCase() + name.slice(1).replaceAll("_", " ");

/** The fields of a protobuf message as a definition list. */
export function MessageFields({ schema, message }: { schema: DescMessage; message: object }) {
  return (
    <dl class="fields">
      {schema.fields.map((field) => (
        <div key={field.name}>
          <dt>{label(field.name)}</dt>
          <dd>
            <FieldValue field={field} value={(message as Record<string, unknown>)[field.localName]} />
          </dd>
        </div>
      ))}
    </dl>
  );
}

function FieldValue({ field, value }: { field: DescField; value: unknown }): ComponentChildren {
  switch (field.fieldKind) {
    case "scalar":
      return scalar(value);
    case "enum":
      return enumName(field.enum, value as number);
    case "message":
      return value === undefined ? "—" : <MessageValue schema={field.message} value={value} />;
    case "list": {
      const items = value as unknown[];
      if (items.length === 0) return "none";
      if (field.listKind === "message") return <MessageTable schema={field.message} rows={items as object[]} />;
      return <ul class="plain">{items.map((item, i) => <li key={i}>{field.listKind === "enum" ? enumName(field.enum, item as number) : scalar(item)}</li>)}</ul>;
    }
    case "map": {
      const entries = Object.entries(value as Record<string, unknown>);
      if (entries.length === 0) return "none";
      return (
        <dl class="fields">
          {entries.map(([key, item]) => (
            <div key={key}>
              <dt>{key}</dt>
              <dd>{field.mapKind === "message" ? <MessageValue schema={field.message} value={item} /> : field.mapKind === "enum" ? enumName(field.enum, item as number) : scalar(item)}</dd>
            </div>
          ))}
        </dl>
      );
    }
  }
}

function MessageValue({ schema, value }: { schema: DescMessage; value: unknown }): ComponentChildren {
  switch (schema.typeName) {
    case "google.protobuf.Timestamp":
      return time(value as Timestamp);
    case "google.protobuf.Struct":
      return <JsonView value={value as JsonValue} />;
    case "google.protobuf.Value":
      return <JsonView value={toJson(ValueSchema, value as never)} />;
    default:
      return <MessageFields schema={schema} message={value as object} />;
  }
}

function MessageTable({ schema, rows }: { schema: DescMessage; rows: object[] }) {
  return (
    <div class="scroll">
      <table class="compact">
        <thead>
          <tr>{schema.fields.map((f) => <th key={f.name} scope="col">{label(f.name)}</th>)}</tr>
        </thead>
        <tbody>
          {rows.map((row, i) => (
            <tr key={i}>
              {schema.fields.map((f) => (
                <td key={f.name}>
                  <FieldValue field={f} value={(row as Record<string, unknown>)[f.localName]} />
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function scalar(value: unknown): string {
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (value === "" || value === undefined || value === null) return "—";
  return String(value);
}

/** An enum value's name without its type's prefix (EXECUTION_CLUSTER_SHARED → SHARED), as protobuf-es names it. */
function enumName(desc: DescEnum, n: number): string {
  return desc.value[n]?.localName ?? String(n);
}

/** Free-form JSON (an `other` input, a failure's diagnostic) as nested lists, read as text. */
export function JsonView({ value }: { value: JsonValue }): ComponentChildren {
  if (value === null) return "null";
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]";
    return <ol class="json" start={0}>{value.map((item, i) => <li key={i}><JsonView value={item} /></li>)}</ol>;
  }
  if (typeof value === "object") {
    const entries = Object.entries(value);
    if (entries.length === 0) return "{}";
    return (
      <dl class="fields json">
        {entries.map(([key, item]) => (
          <div key={key}>
            <dt>{key}</dt>
            <dd><JsonView value={item} /></dd>
          </div>
        ))}
      </dl>
    );
  }
  return typeof value === "string" ? value : String(value);
}
