// The fixed offered rate (what wrk2 or autocannon --overallRate do): requests leave on schedule
// whether or not earlier ones have answered, so a slow target cannot slow the load down. The load
// comes from bench/openloop.c, compiled here with the machine's C compiler: a native client has no
// garbage collector and wakes on a timerfd, so it sends within tens of microseconds of the schedule
// and times each request from its due time. The Node client it replaced had millisecond timers and
// pauses of its own, which put 0.4 ms into the p99 of the upstream itself and moved every row.
import { spawn } from "node:child_process";
import { readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildC } from "./native.ts";
import { pinned } from "./pinning.ts";
import type { LoadResult } from "./wrk.ts";

export { hasCompiler } from "./native.ts";

/** The open-loop client, built from bench/openloop.c. */
export function buildOpenLoop(): string {
  return buildC("openloop");
}

export interface FixedRateOptions {
  origin: string;
  ratePerS: number;
  durationS: number;
  /** Sent on schedule but not counted: connections open, JIT warm. */
  warmupS: number;
  connections: number;
  headers?: Record<string, string>;
}

export interface FixedRateResult extends LoadResult {
  p90us: number;
  p999us: number;
  /** How late the client's sends left against the schedule, p99: the generator's own precision (a stalled load core shows here). */
  sendLagP99us: number;
  /** Every counted request's latency in µs, in schedule order, for pooling rounds. */
  latenciesUs: Float64Array;
}

interface OpenLoopReport {
  requests: number;
  errors: number;
  rps: number;
  p50us: number;
  p90us: number;
  p99us: number;
  p999us: number;
  maxUs: number;
  sendLagP99us: number;
}

export async function fixedRate(o: FixedRateOptions): Promise<FixedRateResult> {
  const trace = join(tmpdir(), `isthmus-openloop-${process.pid}-${Math.random().toString(36).slice(2)}.txt`);
  const args = ["-r", String(o.ratePerS), "-d", String(o.durationS), "-w", String(o.warmupS), "-c", String(o.connections), "-o", trace];
  for (const [k, v] of Object.entries(o.headers ?? {})) args.push("-H", `${k}: ${v}`);
  args.push(`${o.origin}/`);
  const stdout = await new Promise<string>((resolve, reject) => {
    const proc = spawn(...pinned("load", buildOpenLoop(), args), { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    proc.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    proc.once("error", reject);
    proc.once("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`openloop exited with ${code}`))));
  });
  try {
    const r = JSON.parse(stdout) as OpenLoopReport;
    const text = await readFile(trace, "utf8");
    const lines = text.split("\n").filter((l) => l !== "");
    const latenciesUs = new Float64Array(lines.length);
    lines.forEach((l, i) => (latenciesUs[i] = Number(l.slice(l.indexOf(" ") + 1))));
    return { rps: r.rps, p50us: r.p50us, p90us: r.p90us, p99us: r.p99us, p999us: r.p999us, maxUs: r.maxUs, errors: r.errors, requests: r.requests, sendLagP99us: r.sendLagP99us, latenciesUs };
  } finally {
    await rm(trace, { force: true });
  }
}

/** A round whose load generator sent late (send lag p99 over 1 ms): its own core stalled, and the stall went into that round's latencies. */
export const CLIENT_STALL_US = 1000;

/**
 * The rounds to pool for comparing targets' tails: those in which the load generator kept its schedule.
 * A stall of the generator is not the target's latency, and it falls on whichever target's round it meets.
 * All rounds when none kept it, so that a target is never left without figures.
 */
export function unstalledRounds<R extends { sendLagP99us: number }>(rounds: R[]): R[] {
  const kept = rounds.filter((r) => r.sendLagP99us <= CLIENT_STALL_US);
  return kept.length > 0 ? kept : rounds;
}

/** Quantiles of latencies pooled over rounds (the same rule as openloop.c: the value at floor(q·n)). */
export function pooled(latencies: Float64Array[]): { p50us: number; p90us: number; p99us: number; p999us: number; maxUs: number; requests: number; over500us: number; over1ms: number } {
  const n = latencies.reduce((s, l) => s + l.length, 0);
  const all = new Float64Array(n);
  let at = 0;
  for (const l of latencies) {
    all.set(l, at);
    at += l.length;
  }
  all.sort();
  const q = (p: number) => (n === 0 ? NaN : (all[Math.min(n - 1, Math.floor(p * n))] as number));
  // The share of requests slower than a threshold: where a p99 falls inside a cluster of stalls,
  // these say how many requests each target actually slowed, which the p99 alone hides.
  const over = (us: number) => {
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((all[mid] as number) > us) hi = mid;
      else lo = mid + 1;
    }
    return n === 0 ? NaN : (n - lo) / n;
  };
  return { p50us: q(0.5), p90us: q(0.9), p99us: q(0.99), p999us: q(0.999), maxUs: q(1), requests: n, over500us: over(500), over1ms: over(1000) };
}
