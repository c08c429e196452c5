// An open-loop load at a fixed offered rate (what wrk2 or autocannon --overallRate do), with
// latencies in microseconds measured from each request's scheduled send time, so a stall shows up
// in the percentiles instead of silently lowering the rate (coordinated omission).
import { Pool } from "undici";
import type { LoadResult } from "./wrk.ts";

export interface FixedRateOptions {
  origin: string;
  ratePerS: number;
  durationS: number;
  connections: number;
  headers?: Record<string, string>;
}

export async function fixedRate(o: FixedRateOptions): Promise<LoadResult> {
  const pool = new Pool(o.origin, { connections: o.connections, pipelining: 1, keepAliveTimeout: 60_000 });
  const total = Math.round(o.ratePerS * o.durationS);
  const latencies = new Float64Array(total);
  let done = 0;
  let errors = 0;
  let sent = 0;
  const start = performance.now();
  const intervalMs = 1000 / o.ratePerS;
  await new Promise<void>((resolve) => {
    const send = (scheduled: number, i: number) => {
      pool
        .request({ path: "/", method: "GET", headers: o.headers })
        .then(async (res) => {
          await res.body.dump();
          if (res.statusCode < 200 || res.statusCode >= 300) errors++;
        })
        .catch(() => errors++)
        .finally(() => {
          latencies[i] = (performance.now() - scheduled) * 1000;
          if (++done === total) resolve();
        });
    };
    const tick = () => {
      const now = performance.now();
      while (sent < total && start + sent * intervalMs <= now) {
        send(start + sent * intervalMs, sent);
        sent++;
      }
      if (sent < total) setTimeout(tick, 1);
    };
    tick();
  });
  const elapsedS = (performance.now() - start) / 1000;
  await pool.close();
  const sorted = Array.from(latencies).sort((a, b) => a - b);
  const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number;
  return { rps: total / elapsedS, p50us: q(0.5), p99us: q(0.99), maxUs: sorted[sorted.length - 1] as number, errors, requests: total };
}
