// Summarizes a V8 .cpuprofile (node --cpu-prof): where the samples fall, by
// function (self and inclusive time) and by layer (HTTP/2 and Connect,
// protobuf, the ORM/Kysely query path, the pg driver, JSON, our code, GC …),
// optionally restricted to a time window. Also a command:
//   node dist/bench/profile.js FILE.cpuprofile [--from MICROS --to MICROS] [--callers FRAME]
// (profile timestamps are CLOCK_MONOTONIC microseconds, the same clock as
// process.hrtime, so a window recorded by the benchmark applies directly).

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface FrameShare {
  readonly frame: string;
  readonly layer: string;
  readonly percent: number;
}

export interface ProfileSummary {
  readonly samples: number;
  readonly windowMs: number;
  /** Share of samples in which the process was idle (waiting for I/O). */
  readonly idlePercent: number;
  /** Percentages of non-idle samples. */
  readonly layersSelf: Record<string, number>;
  readonly layersInclusive: Record<string, number>;
  /**
   * Every non-idle sample attributed to one owner: the nearest frame up the
   * stack that belongs to a library or to our code, so that Node's own
   * plumbing (streams, events, sockets, microtasks) is charged to whoever
   * called it (a pg socket write to the pg driver, a zlib run to compression).
   * Sums to 100.
   */
  readonly owners: Record<string, number>;
  /** Share of non-idle samples whose leaf is a native socket write (see ownersWithoutSocketWrites). */
  readonly socketWritePercent: number;
  /**
   * `owners` without the samples that sit in a native socket write: the
   * profiler samples wall time, and a write that wakes the reader (PostgreSQL,
   * the client) often gets its writer preempted inside the syscall on a busy
   * 2-core machine, so those samples overstate CPU (compare the process's
   * system time from /proc).
   */
  readonly ownersWithoutSocketWrites: Record<string, number>;
  readonly topSelf: FrameShare[];
  readonly topInclusive: FrameShare[];
}

/** Native frames of socket writes (libuv stream writes behind net.Socket). */
const SOCKET_WRITES = new Set(["writev", "writeBuffer", "writeUtf8String", "writeLatin1String", "writeAsciiString", "writeUcs2String"]);

/** Layers that are plumbing: charged to the nearest owner up the stack. */
function isTransparent(layer: string): boolean {
  return (
    layer === "V8/native builtins" ||
    layer === "root" ||
    layer === "other" ||
    (layer.startsWith("node") && layer !== "node http2" && layer !== "node (zlib)" && layer !== "node (crypto)")
  );
}

/** The layer a frame belongs to, from its script URL and name. */
export function layerOf(frame: CallFrame): string {
  const url = frame.url;
  const name = frame.functionName;
  if (name === "(garbage collector)") return "GC";
  if (name === "(idle)") return "idle";
  if (name === "(program)") return "V8/native (program)";
  if (name === "(root)") return "root";
  if (/^JSON\.|^(stringify|parse)$/.test(name) && !url) return "JSON";
  if (url.includes("/@connectrpc/")) return "Connect";
  if (url.includes("/@bufbuild/protobuf/")) return "protobuf (@bufbuild)";
  if (url.includes("/@mikro-orm/")) return "MikroORM";
  if (url.includes("/kysely/")) return "Kysely";
  if (/\/(pg|pg-protocol|pg-pool|pg-types|postgres-[a-z]+|pgpass|pg-connection-string)\//.test(url)) return "pg driver";
  if (url.includes("/node_modules/")) return `other npm (${/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1] ?? "?"})`;
  if (url.includes("/dist/src/gen/")) return "protobuf (generated)";
  if (url.includes("/dist/src/")) {
    const part = /\/dist\/src\/([^/]+)/.exec(url)?.[1] ?? "";
    return `our code (${part.replace(/\.js$/, "")})`;
  }
  if (/^node:internal\/http2|^node:http2/.test(url)) return "node http2";
  if (/^node:internal\/(stream_base_commons|net)|^node:net/.test(url)) return "node net/socket";
  if (/^node:internal\/streams|^node:stream/.test(url)) return "node streams";
  if (/^node:internal\/(process\/task_queues|timers)|^node:timers/.test(url)) return "node event loop (timers/microtasks)";
  if (url.startsWith("node:")) return `node (${url.replace(/^node:(internal\/)?/, "").split("/")[0]})`;
  if (!url) return "V8/native builtins";
  return "other";
}

function frameName(frame: CallFrame): string {
  const file = frame.url
    .replace(/^file:\/\//, "")
    .replace(/^.*\/node_modules\//, "")
    .replace(/^.*\/dist\//, "dist/");
  return `${frame.functionName || "(anonymous)"} ${file ? `${file}:${frame.lineNumber + 1}` : "(native)"}`;
}

/** Time windows (CLOCK_MONOTONIC microseconds); samples outside every window are left out. */
export type Windows = readonly { readonly fromMicros: number; readonly toMicros: number }[];

const inWindows = (windows: Windows, time: number) => windows.some((w) => time >= w.fromMicros && time <= w.toMicros);

export function summarizeProfile(profile: CpuProfile, windows: Windows = [{ fromMicros: -Infinity, toMicros: Infinity }], top = 25): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const layerSelf = new Map<string, number>();
  const layerInclusive = new Map<string, number>();
  const layerOfFrame = new Map<string, string>();
  const owners = new Map<string, number>();
  const ownersNoWrites = new Map<string, number>();
  let writes = 0;
  let time = profile.startTime;
  let counted = 0;
  let idle = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    time += profile.timeDeltas[i];
    if (!inWindows(windows, time)) continue;
    const leaf = byId.get(profile.samples[i]) as ProfileNode;
    const leafLayer = layerOf(leaf.callFrame);
    if (leafLayer === "idle") {
      idle++;
      continue;
    }
    counted++;
    const leafName = frameName(leaf.callFrame);
    self.set(leafName, (self.get(leafName) ?? 0) + 1);
    layerOfFrame.set(leafName, leafLayer);
    layerSelf.set(leafLayer, (layerSelf.get(leafLayer) ?? 0) + 1);
    // Inclusive: each frame (and layer) once per sample, however often it recurs on the stack.
    const seenFrames = new Set<string>();
    const seenLayers = new Set<string>();
    let owner: string | null = isTransparent(leafLayer) ? null : leafLayer;
    for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
      const frame = (byId.get(id) as ProfileNode).callFrame;
      const layer = layerOf(frame);
      if (layer === "root") continue;
      const name = frameName(frame);
      layerOfFrame.set(name, layer);
      seenFrames.add(name);
      seenLayers.add(layer);
      if (owner === null && !isTransparent(layer)) owner = layer;
    }
    const ownerName = owner ?? `unattributed (${leafLayer})`;
    owners.set(ownerName, (owners.get(ownerName) ?? 0) + 1);
    if (SOCKET_WRITES.has(leaf.callFrame.functionName) && !leaf.callFrame.url) writes++;
    else ownersNoWrites.set(ownerName, (ownersNoWrites.get(ownerName) ?? 0) + 1);
    for (const name of seenFrames) inclusive.set(name, (inclusive.get(name) ?? 0) + 1);
    for (const layer of seenLayers) layerInclusive.set(layer, (layerInclusive.get(layer) ?? 0) + 1);
  }
  const pct = (n: number) => Math.round((1000 * n) / Math.max(1, counted)) / 10;
  const ranked = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([frame, n]) => ({ frame, layer: layerOfFrame.get(frame) ?? "?", percent: pct(n) }));
  const record = (m: Map<string, number>) =>
    Object.fromEntries([...m.entries()].sort((a, b) => b[1] - a[1]).map(([k, n]) => [k, pct(n)]));
  return {
    samples: counted + idle,
    windowMs: Math.round(
      windows.reduce(
        (sum, w) => sum + Math.max(0, Math.min(w.toMicros, profile.endTime) - Math.max(w.fromMicros, profile.startTime)),
        0,
      ) / 1000,
    ),
    idlePercent: Math.round((1000 * idle) / Math.max(1, counted + idle)) / 10,
    layersSelf: record(layerSelf),
    layersInclusive: record(layerInclusive),
    owners: record(owners),
    socketWritePercent: pct(writes),
    ownersWithoutSocketWrites: Object.fromEntries(
      [...ownersNoWrites.entries()].sort((a, b) => b[1] - a[1]).map(([k, n]) => [k, Math.round((1000 * n) / Math.max(1, counted - writes)) / 10]),
    ),
    topSelf: ranked(self),
    topInclusive: ranked(inclusive),
  };
}

/**
 * Who calls `match` (a substring of "function file:line"): the heaviest
 * chains of `depth` frames above it, as a share of all non-idle samples.
 */
export function callersOf(profile: CpuProfile, match: string, depth = 6, windows: Windows = [{ fromMicros: -Infinity, toMicros: Infinity }], top = 12): { chain: string; percent: number }[] {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const chains = new Map<string, number>();
  let time = profile.startTime;
  let counted = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    time += profile.timeDeltas[i];
    if (!inWindows(windows, time)) continue;
    const leaf = byId.get(profile.samples[i]) as ProfileNode;
    if (leaf.callFrame.functionName === "(idle)") continue;
    counted++;
    for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
      if (!frameName((byId.get(id) as ProfileNode).callFrame).includes(match)) continue;
      const names: string[] = [];
      for (let up: number | undefined = id; up !== undefined && names.length < depth; up = parent.get(up)) {
        names.push(frameName((byId.get(up) as ProfileNode).callFrame));
      }
      const chain = names.join("  <  ");
      chains.set(chain, (chains.get(chain) ?? 0) + 1);
      break;
    }
  }
  return [...chains.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([chain, n]) => ({ chain, percent: Math.round((1000 * n) / Math.max(1, counted)) / 10 }));
}

export function formatSummary(title: string, s: ProfileSummary): string {
  const lines = [
    `${title}: ${s.samples} samples in ${s.windowMs} ms of measurement windows, ${s.idlePercent}% idle; percentages below are of the non-idle samples`,
    "",
    "  by owner (each sample charged to the nearest library or our code up its stack; sums to 100)",
  ];
  for (const [owner, pct] of Object.entries(s.owners)) lines.push(`  ${String(pct).padStart(5)}%  ${owner}`);
  lines.push(
    "",
    `  the same without the ${s.socketWritePercent}% of samples inside native socket writes (wall time: a writer preempted in the syscall when it wakes its reader)`,
  );
  for (const [owner, pct] of Object.entries(s.ownersWithoutSocketWrites)) lines.push(`  ${String(pct).padStart(5)}%  ${owner}`);
  lines.push("", "  by layer (where the leaf frame is)        self %   inclusive %");
  for (const [layer, selfPct] of Object.entries(s.layersSelf)) {
    lines.push(`  ${layer.padEnd(40)} ${String(selfPct).padStart(6)}   ${String(s.layersInclusive[layer] ?? "").padStart(6)}`);
  }
  lines.push("", "  top self time");
  for (const f of s.topSelf) lines.push(`  ${String(f.percent).padStart(5)}%  ${f.frame}  [${f.layer}]`);
  lines.push("", "  top inclusive time (synchronous stacks only)");
  for (const f of s.topInclusive) lines.push(`  ${String(f.percent).padStart(5)}%  ${f.frame}  [${f.layer}]`);
  return lines.join("\n");
}

if (process.argv[1]?.endsWith("/bench/profile.js")) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { from: { type: "string" }, to: { type: "string" }, callers: { type: "string", multiple: true }, depth: { type: "string" } },
  });
  const file = positionals[0];
  if (!file) {
    process.stderr.write("usage: node dist/bench/profile.js FILE.cpuprofile [--from MICROS --to MICROS] [--callers FRAME ...] [--depth N]\n");
    process.exit(2);
  }
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const windows = [{ fromMicros: values.from ? Number(values.from) : -Infinity, toMicros: values.to ? Number(values.to) : Infinity }];
  if (values.callers?.length) {
    for (const match of values.callers) {
      process.stdout.write(`callers of "${match}":\n`);
      for (const c of callersOf(profile, match, Number(values.depth ?? 6), windows)) {
        process.stdout.write(`  ${String(c.percent).padStart(5)}%  ${c.chain}\n`);
      }
    }
  } else {
    process.stdout.write(`${formatSummary(file, summarizeProfile(profile, windows))}\n`);
  }
}
