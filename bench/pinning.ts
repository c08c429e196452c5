// CPU pinning for the bench. On a small shared machine the scheduler otherwise decides how the load
// generator, the upstream and the proxy under test share the cores, and that moved req/s by ±30%
// between identical runs. Pinned, every proxy gets the same thing: one core of its own (the issue's
// "one process against one nginx worker"), with wrk, the upstream nginx, Redis and the bench's own
// open-loop client on the other cores. Uses taskset (util-linux); BENCH_PIN=0 turns it off.
import { spawnSync } from "node:child_process";
import { availableParallelism } from "node:os";
import { childPids } from "./proc.ts";

export interface Pinning {
  /** The core every proxy under test runs on. */
  proxy: string;
  /** The cores of the load generators, the upstream and Redis. */
  load: string;
}

function plan(): Pinning | null {
  if (process.env.BENCH_PIN === "0") return null;
  const n = availableParallelism();
  if (n < 2 || spawnSync("taskset", ["-V"], { stdio: "ignore" }).error !== undefined) return null;
  return { proxy: String(n - 1), load: n === 2 ? "0" : `0-${n - 2}` };
}

export const pinning = plan();

/** The command line that runs `cmd` on `cpus` (unchanged when not pinning). taskset execs the command, so the pid is the command's. */
export function pinned(cpus: keyof Pinning, cmd: string, args: string[]): [string, string[]] {
  return pinning ? ["taskset", ["-c", pinning[cpus], cmd, ...args]] : [cmd, args];
}

/** Moves this process (every thread) onto the load cores: the open-loop client runs here. */
export function pinSelf(): void {
  if (pinning) spawnSync("taskset", ["-apc", pinning.load, String(process.pid)], { stdio: "ignore" });
}

/** Back onto every core (the startup measurements run unpinned). */
export function unpinSelf(): void {
  if (pinning) spawnSync("taskset", ["-apc", `0-${availableParallelism() - 1}`, String(process.pid)], { stdio: "ignore" });
}

/** Moves a running target (every thread, and its child processes: nginx's workers) onto `cpus`. */
export async function move(pid: number, cpus: keyof Pinning): Promise<void> {
  if (!pinning) return;
  for (const p of [pid, ...(await childPids(pid))]) {
    const r = spawnSync("taskset", ["-apc", pinning[cpus], String(p)], { stdio: "ignore" });
    if (r.status !== 0) throw new Error(`taskset could not move process ${p} to CPU ${pinning[cpus]}`);
  }
}

export function describePinning(): string {
  return pinning ? `pinned with taskset: proxies on CPU ${pinning.proxy}; wrk, the upstream, Redis and the open-loop client on CPU ${pinning.load}` : "not pinned (BENCH_PIN=0, one CPU, or no taskset)";
}
