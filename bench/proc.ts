// What the benchmark reads from Linux about the processes it measures: CPU
// time (utime + stime from /proc/<pid>/stat) and resident memory (VmRSS from
// /proc/<pid>/status). Nothing here needs privileges; every process's stat
// file is world-readable.

import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import os from "node:os";

let ticksPerSecond: number | null = null;

/** USER_HZ: the unit of the CPU fields in /proc/<pid>/stat. */
export function clockTicksPerSecond(): number {
  if (ticksPerSecond === null) {
    try {
      ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

interface Stat {
  readonly ppid: number;
  /** utime + stime of the process itself (all its threads), in ticks. */
  readonly own: number;
  /** stime alone: time in the kernel on the process's behalf (syscalls: socket reads and writes …). */
  readonly system: number;
  /** cutime + cstime: children it has waited for (exited backends, for the postmaster), in ticks. */
  readonly reaped: number;
}

function readStat(pid: number): Stat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return null; // gone
  }
  // The command name (field 2) may hold spaces or parentheses; fields after the last ")" are fixed.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state), so field n is fields[n - 3].
  return {
    ppid: Number(fields[1]),
    own: Number(fields[11]) + Number(fields[12]),
    system: Number(fields[12]),
    reaped: Number(fields[13]) + Number(fields[14]),
  };
}

/** CPU time of one process in microseconds: user + system, and system alone. */
export function processCpuMicros(pid: number): { total: number; system: number } {
  const stat = readStat(pid);
  if (!stat) throw new Error(`process ${pid} is gone`);
  return { total: (stat.own * 1e6) / clockTicksPerSecond(), system: (stat.system * 1e6) / clockTicksPerSecond() };
}

/**
 * CPU time of a process and all its children, in microseconds: the root's own
 * time, what it reaped from exited children, and every live child's own and
 * reaped time. For PostgreSQL's postmaster this is the whole server: backends,
 * WAL writer, checkpointer, … — a backend that exits between two readings
 * moves from "live child" to the postmaster's reaped time, so the sum stays
 * continuous.
 */
export function treeCpuMicros(rootPid: number): number {
  const root = readStat(rootPid);
  if (!root) throw new Error(`process ${rootPid} is gone`);
  let ticks = root.own + root.reaped;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === rootPid) continue;
    const stat = readStat(pid);
    if (stat && stat.ppid === rootPid) ticks += stat.own + stat.reaped;
  }
  return (ticks * 1e6) / clockTicksPerSecond();
}

/** Whether /proc shows this pid (a database on another host does not). */
export function isLocalProcess(pid: number): boolean {
  return readStat(pid) !== null;
}

/** The process's command name (/proc/<pid>/comm), or null when it is not visible. */
export function processName(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return null;
  }
}

export function parentPid(pid: number): number | null {
  return readStat(pid)?.ppid ?? null;
}

/** VmRSS of a process, in bytes. */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!match) throw new Error(`no VmRSS for process ${pid}`);
  return Number(match[1]) * 1024;
}

export interface MachineFacts {
  readonly cores: number;
  readonly cpuModel: string;
  readonly memoryBytes: number;
  readonly kernel: string;
  readonly node: string;
  readonly loadAverageAtStart: readonly number[];
}

export function machineFacts(): MachineFacts {
  const cpus = os.cpus();
  return {
    cores: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? "unknown",
    memoryBytes: os.totalmem(),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    loadAverageAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

/** CPU time of the whole machine from /proc/stat (all cores), busy and total, in microseconds. */
export function machineCpuMicros(): { busy: number; total: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0];
  // cpu user nice system idle iowait irq softirq steal guest guest_nice (guest time is inside user/nice)
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const busy = user + nice + system + irq + softirq + steal;
  const toMicros = (ticks: number) => (ticks * 1e6) / clockTicksPerSecond();
  return { busy: toMicros(busy), total: toMicros(busy + idle + iowait) };
}
