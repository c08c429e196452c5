// What the machine itself charges to wake a process on another core (bench/wakeup.c), printed with
// the one-connection figures: there, a proxy pinned away from its client and upstream is woken
// across cores four times per request, and on a VM each such wake-up can cost tens of microseconds.
import { spawnSync } from "node:child_process";
import { buildC } from "./native.ts";
import { pinning } from "./pinning.ts";

export interface Wakeups {
  /** Round trip between the load core and the proxies' core, p50 µs. */
  crossCoreP50us: number;
  /** Round trip within the load core, p50 µs. */
  sameCoreP50us: number;
}

/** null when not pinning (no cores to tell apart). */
export function measureWakeups(roundTrips = 2000): Wakeups | null {
  if (!pinning) return null;
  const binary = buildC("wakeup");
  const load = pinning.load.split("-")[0] as string;
  const p50 = (a: string, b: string): number => {
    const r = spawnSync(binary, [a, b, String(roundTrips)], { encoding: "utf8", timeout: 60_000 });
    const m = /p50 ([\d.]+) us/.exec(r.stdout ?? "");
    if (r.status !== 0 || !m) throw new Error(`bench/wakeup.c failed: ${r.stderr || r.stdout}`);
    return Number(m[1]);
  };
  return { crossCoreP50us: p50(load, pinning.proxy), sameCoreP50us: p50(load, load) };
}
