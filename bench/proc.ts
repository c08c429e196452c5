// What the bench reads of its targets from /proc: CPU time and resident memory.
import { readFile } from "node:fs/promises";

/** CPU seconds (user + system) of a process and its child processes (nginx's workers). */
export async function cpuSeconds(pid: number): Promise<number> {
  let ticks = 0;
  for (const p of [pid, ...(await childPids(pid))]) {
    const stat = await readFile(`/proc/${p}/stat`, "utf8").catch(() => "");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    ticks += Number(fields[11] ?? 0) + Number(fields[12] ?? 0);
  }
  return ticks / 100; // USER_HZ on Linux
}

/** The process's child processes (nginx's workers). */
export async function childPids(pid: number): Promise<number[]> {
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, "utf8").catch(() => "");
  return text.split(" ").filter(Boolean).map(Number);
}

export async function rssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? NaN);
}
