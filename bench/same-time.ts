// Two targets saturated at the same time, each by its own wrk, both proxies on the one core they
// share (bench/pinning.ts). Run one after the other, two targets meet a shared VM in different
// moods (its speed moved 2x within minutes here); run at once, every stall and every slow spell
// of the machine falls on both. What each costs is then read per request: the CPU time each
// process spent over the same seconds, divided by the requests it served. That ratio does not
// depend on how the scheduler shared the core; the ratio of requests served does, and is printed
// beside it.
import { cpuSeconds } from "./proc.ts";
import type { Target } from "./targets.ts";
import { wrk, type LoadResult } from "./wrk.ts";

export interface SameTimeRep {
  a: LoadResult;
  b: LoadResult;
}

export interface SameTimeSummary {
  /** Per repetition: b's CPU per request over a's (above 1: a costs less). */
  cpuRatios: number[];
  /** Per repetition: requests a served over requests b served in the same seconds. */
  requestRatios: number[];
  cpuRatio: number;
  requestRatio: number;
  errors: number;
}

/** One repetition: both loads start together and run for the same duration. */
export async function sameTime(a: Target, b: Target, o: { durationS: number; connections: number }): Promise<SameTimeRep> {
  const load = (t: Target) => wrk({ url: `${t.origin}/`, connections: o.connections, durationS: o.durationS, headers: t.headers });
  const [a0, b0] = await Promise.all([cpuSeconds(a.pid), cpuSeconds(b.pid)]);
  const [ra, rb] = await Promise.all([load(a), load(b)]);
  const [a1, b1] = await Promise.all([cpuSeconds(a.pid), cpuSeconds(b.pid)]);
  ra.cpuUsPerRequest = perRequest(a1 - a0, ra.requests);
  rb.cpuUsPerRequest = perRequest(b1 - b0, rb.requests);
  return { a: ra, b: rb };
}

export function summarizeSameTime(reps: readonly SameTimeRep[]): SameTimeSummary {
  const cpuRatios = reps.map((r) => (r.b.cpuUsPerRequest ?? NaN) / (r.a.cpuUsPerRequest ?? NaN));
  const requestRatios = reps.map((r) => (r.b.requests > 0 ? r.a.requests / r.b.requests : NaN));
  return {
    cpuRatios,
    requestRatios,
    cpuRatio: median(cpuRatios),
    requestRatio: median(requestRatios),
    errors: reps.reduce((s, r) => s + r.a.errors + r.b.errors, 0),
  };
}

function perRequest(cpuS: number, requests: number): number {
  return requests > 0 ? (cpuS * 1e6) / requests : NaN;
}

/** The median; NaN for no values or when any value is not a number (a rep that served nothing). */
function median(xs: readonly number[]): number {
  if (xs.length === 0 || xs.some((x) => !Number.isFinite(x))) return NaN;
  const s = [...xs].sort((p, q) => p - q);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}
