// On-CPU profile of the server with Linux perf (when installed): unlike V8's
// --cpu-prof, which samples the main thread's wall time (a thread preempted
// inside a write that woke PostgreSQL is charged to that write), perf's
// cpu-clock event samples only while a thread is on a CPU, in every thread
// (GC helpers, the libuv pool) and in the kernel. The server runs with
// --perf-prof, which writes a jitdump (jit-<pid>.dump, in the server's working
// directory) of every code object V8 makes; `perf inject --jit` turns it into
// symbols. (--perf-basic-prof's map file was tried first: V8 reuses code
// addresses, and its stale entries named the wrong functions.)

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { parseArgs } from "node:util";
import { createInterface } from "node:readline";
import { layerOf } from "./profile.js";

export function perfAvailable(): boolean {
  const probe = spawnSync("perf", ["--version"], { encoding: "utf8" });
  return probe.status === 0;
}

/** Node flags for a server that perf will profile. */
export const PERF_NODE_OPTIONS = "--perf-prof --interpreted-frames-native-stack";

/** `perf inject --jit`: the recording with JIT code symbolized (jitted-*.so files next to the dump). */
export function injectJit(file: string): string {
  const out = file.replace(/\.data$/, "") + ".jit.data";
  const result = spawnSync("perf", ["inject", "--jit", "-i", file, "-o", out], { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`perf inject --jit failed: ${result.stderr.slice(-500)}`);
  return out;
}

export interface PerfRecording {
  stop(): Promise<void>;
}

/** Starts `perf record` on `pid` (all its threads, with call graphs). */
export function recordPerf(pid: number, file: string, hz = 999): PerfRecording {
  // -k mono: sample times on CLOCK_MONOTONIC, the clock of the benchmark's windows (process.hrtime).
  const child: ChildProcess = spawn("perf", ["record", "-k", "mono", "-e", "cpu-clock", "-F", String(hz), "-g", "-p", String(pid), "-o", file], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  return {
    async stop() {
      child.kill("SIGINT");
      const code = await exited;
      if (code !== 0 && code !== null && !/Captured and wrote/.test(stderr)) throw new Error(`perf record failed (${code}): ${stderr.slice(-500)}`);
    },
  };
}

export interface PerfSummary {
  readonly samples: number;
  /** Percent of all samples, by thread (name as the kernel knows it). */
  readonly threads: Record<string, number>;
  /** Percent of all samples spent in the kernel (syscalls, TCP, scheduling, page faults). */
  readonly kernelPercent: number;
  /** Main-thread samples by owner: the nearest JavaScript frame of a library or of our code up the stack (percent of all samples). */
  readonly mainByOwner: Record<string, number>;
  /** Main-thread samples by what the leaf is doing (percent of all samples). */
  readonly mainByLeaf: Record<string, number>;
  /** The heaviest leaf functions, all threads (percent of all samples). */
  readonly topLeaves: { frame: string; percent: number }[];
  /** For the biggest owners: what their time is spent in (percent of all samples). */
  readonly ownerDetail: Record<string, Record<string, number>>;
  /** For the biggest owners: their heaviest functions (the owner frame itself), percent of all samples. */
  readonly ownerFunctions: Record<string, Record<string, number>>;
}

function threadGroup(comm: string): string {
  if (comm === "MainThread" || comm === "node") return "main thread (JS, event loop)";
  if (/^V8/.test(comm)) return "V8 helper threads (GC, compilation)";
  if (/libuv-worker/.test(comm)) return "libuv thread pool (zlib, crypto, fs)";
  return `other threads (${comm})`;
}

interface Frame {
  readonly sym: string;
  readonly dso: string;
}

function isJs(sym: string): boolean {
  return sym.startsWith("JS:");
}

/** The layer of a JS frame, as the V8 profile summary names them. */
function jsLayer(sym: string): string {
  const body = sym.slice(3).replace(/^[~^+*]/, "");
  const space = body.lastIndexOf(" ");
  const name = space < 0 ? body : body.slice(0, space);
  const url = space < 0 ? "" : body.slice(space + 1).replace(/:\d+:\d+$/, "");
  return layerOf({ functionName: name, url, lineNumber: 0, columnNumber: 0 });
}

function transparent(layer: string): boolean {
  return (
    layer === "V8/native builtins" ||
    layer === "other" ||
    (layer.startsWith("node") && layer !== "node http2" && layer !== "node (zlib)" && layer !== "node (crypto)")
  );
}

function leafKind(frame: Frame): string {
  const { sym, dso } = frame;
  if (dso.includes("kernel")) return "kernel (syscalls, TCP, scheduler)";
  if (isJs(sym)) return "JavaScript (JIT/interpreted code)";
  if (/Scavenge|MarkCompact|Marking|Sweep|Evacuat|Heap::|GCTracer|ConcurrentMark|MinorMS|Compactor/i.test(sym)) return "V8 GC";
  if (/Json(Stringifier|Parser)|JsonStringify|JsonParse/.test(sym)) return "JSON (V8)";
  // Before zlib: nghttp2's HPACK functions are named *_deflate_* and *_inflate_*.
  if (/nghttp2|node::http2/.test(sym)) return "HTTP/2 (nghttp2, node::http2)";
  if (/deflate|inflate|zlib|crc32|adler32|longest_match|compress_block|send_bits/i.test(sym)) return "zlib";
  if (/^uv_|uv__/.test(sym)) return "libuv";
  if (/libc|ld-linux/.test(dso)) return "libc (memcpy, malloc …)";
  if (/^Builtins_|^Builtin:/.test(sym)) return "V8 builtins (async/await, promises, …)";
  if (/ssl|crypto|EVP_|SHA|sha256/i.test(sym)) return "crypto";
  if (/v8::|Runtime_|node::/.test(sym)) return "V8/node runtime";
  return "other native";
}

/** Reads `perf script` of a recording and attributes every sample taken inside `windows` (CLOCK_MONOTONIC µs). */
export async function summarizePerf(file: string, windows: readonly { fromMicros: number; toMicros: number }[], top = 30): Promise<PerfSummary> {
  const child = spawn("perf", ["script", "-i", file, "-F", "comm,tid,time,ip,sym,dso"], { stdio: ["ignore", "pipe", "ignore"] });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const threads = new Map<string, number>();
  const owners = new Map<string, number>();
  const leaves = new Map<string, number>();
  const leafKinds = new Map<string, number>();
  const ownerDetail = new Map<string, Map<string, number>>();
  const ownerFunctions = new Map<string, Map<string, number>>();
  const add = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
  let samples = 0;
  let kernel = 0;
  let comm = "";
  let time = 0;
  let frames: Frame[] = [];
  const flush = () => {
    if (!comm || !windows.some((w) => time >= w.fromMicros && time <= w.toMicros)) {
      comm = "";
      frames = [];
      return;
    }
    samples++;
    const group = threadGroup(comm);
    add(threads, group);
    const leaf = frames[0] ?? { sym: "[unknown]", dso: "" };
    const kind = leafKind(leaf);
    if (kind.startsWith("kernel")) kernel++;
    add(leaves, `${leaf.sym.slice(0, 140)} (${leaf.dso.split("/").pop()})`);
    if (group.startsWith("main")) {
      add(leafKinds, kind);
      let owner: string | null = null;
      let ownerFrame = "";
      for (const f of frames) {
        if (!isJs(f.sym)) continue;
        const layer = jsLayer(f.sym);
        if (!transparent(layer)) {
          owner = layer;
          ownerFrame = f.sym
            .slice(3)
            .replace(/^[~^+*]/, "")
            .replace(/file:\/\/\S*\/node_modules\//, "")
            .replace(/file:\/\/\S*\/dist\//, "dist/");
          break;
        }
      }
      const name = owner ?? "no library frame on the stack (event loop, native callbacks)";
      add(owners, name);
      let detail = ownerDetail.get(name);
      if (!detail) ownerDetail.set(name, (detail = new Map()));
      add(detail, kind);
      if (owner) {
        let fns = ownerFunctions.get(owner);
        if (!fns) ownerFunctions.set(owner, (fns = new Map()));
        add(fns, ownerFrame);
      }
    }
    comm = "";
    frames = [];
  };
  for await (const line of lines) {
    if (!line.trim()) {
      flush();
      continue;
    }
    if (!line.startsWith("\t") && !line.startsWith(" ")) {
      flush();
      const header = /^(.*?)\s+\d+\s+(\d+\.\d+):/.exec(line);
      comm = header?.[1] ?? line.trim();
      time = header ? Math.round(Number(header[2]) * 1e6) : 0;
      continue;
    }
    const m = /^\s*[0-9a-f]+\s+(.*)\s+\(([^)]*)\)\s*$/.exec(line);
    if (m) frames.push({ sym: m[1].trim(), dso: m[2] });
  }
  flush();
  const pct = (n: number) => Math.round((1000 * n) / Math.max(1, samples)) / 10;
  const record = (m: Map<string, number>, limit = 1000) =>
    Object.fromEntries([...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, limit).map(([k, n]) => [k, pct(n)]));
  const detail: Record<string, Record<string, number>> = {};
  for (const [owner, m] of [...ownerDetail.entries()].sort((a, b) => sum(b[1]) - sum(a[1])).slice(0, 8)) detail[owner] = record(m);
  const functions: Record<string, Record<string, number>> = {};
  for (const [owner, m] of [...ownerFunctions.entries()].sort((a, b) => sum(b[1]) - sum(a[1])).slice(0, 8)) functions[owner] = record(m, 8);
  return {
    samples,
    ownerFunctions: functions,
    threads: record(threads),
    kernelPercent: pct(kernel),
    mainByOwner: record(owners),
    mainByLeaf: record(leafKinds),
    topLeaves: [...leaves.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([frame, n]) => ({ frame, percent: pct(n) })),
    ownerDetail: detail,
  };
}

function sum(m: Map<string, number>): number {
  let total = 0;
  for (const n of m.values()) total += n;
  return total;
}

export function formatPerf(title: string, s: PerfSummary): string {
  const L = [`${title}: ${s.samples} on-CPU samples (perf cpu-clock, all threads); percentages are of all samples; ${s.kernelPercent}% in the kernel`, "", "  by thread"];
  for (const [k, v] of Object.entries(s.threads)) L.push(`  ${String(v).padStart(5)}%  ${k}`);
  L.push("", "  main thread by owner (nearest library or our code up the stack)");
  for (const [k, v] of Object.entries(s.mainByOwner)) if (v >= 0.1) L.push(`  ${String(v).padStart(5)}%  ${k}`);
  L.push("", "  main thread by what the leaf frame is");
  for (const [k, v] of Object.entries(s.mainByLeaf)) L.push(`  ${String(v).padStart(5)}%  ${k}`);
  L.push("", "  the biggest owners' time by leaf kind");
  for (const [owner, kinds] of Object.entries(s.ownerDetail)) {
    L.push(`    ${owner}: ${Object.entries(kinds).filter(([, v]) => v >= 0.1).map(([k, v]) => `${k} ${v}%`).join(", ")}`);
  }
  L.push("", "  the biggest owners' heaviest functions (the nearest frame of that owner)");
  for (const [owner, fns] of Object.entries(s.ownerFunctions)) {
    L.push(`    ${owner}:`);
    for (const [fn, v] of Object.entries(fns)) L.push(`      ${String(v).padStart(5)}%  ${fn}`);
  }
  L.push("", "  top leaf functions (all threads)");
  for (const f of s.topLeaves) L.push(`  ${String(f.percent).padStart(5)}%  ${f.frame}`);
  return L.join("\n");
}



if (process.argv[1]?.endsWith("/bench/perf.js")) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { from: { type: "string" }, to: { type: "string" } } });
  const [file] = positionals;
  if (!file) {
    process.stderr.write("usage: node dist/bench/perf.js FILE.jit.data [--from MICROS --to MICROS]  (a recording after perf inject --jit)\n");
    process.exit(2);
  }
  const windows = [{ fromMicros: values.from ? Number(values.from) : -Infinity, toMicros: values.to ? Number(values.to) : Infinity }];
  const summary = await summarizePerf(file, windows);
  process.stdout.write(`${formatPerf(file, summary)}\n`);
}
