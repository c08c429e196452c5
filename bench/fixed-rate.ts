// An open-loop load at a fixed offered rate (what wrk2 or autocannon --overallRate do): requests
// leave on schedule whether or not earlier ones have answered, so a slow target cannot slow the
// load down. Latency is timed in microseconds from each request's actual send (Node's timers fire
// about every millisecond, so timing from the ideal schedule would measure the generator's own
// timer lag). The first 3 seconds warm up (JIT, connections on both sides) and are not counted.
import { Pool } from "undici";
import type { LoadResult } from "./wrk.ts";

export interface FixedRateOptions {
  origin: string;
  ratePerS: number;
  durationS: number;
  connections: number;
  headers?: Record<string, string>;
}

const WARMUP_S = 3;

export async function fixedRate(o: FixedRateOptions): Promise<LoadResult> {
  const pool = new Pool(o.origin, { connections: o.connections, pipelining: 1, keepAliveTimeout: 60_000 });
  const total = Math.round(o.ratePerS * (o.durationS + WARMUP_S));
  const counted = Math.round(o.ratePerS * WARMUP_S);
  const latencies = new Float64Array(total);
  let done = 0;
  let errors = 0;
  let sent = 0;
  const start = performance.now();
  const intervalMs = 1000 / o.ratePerS;
  await new Promise<void>((resolve) => {
    const send = (i: number) => {
      const sentAt = performance.now();
      pool
        .request({ path: "/", method: "GET", headers: o.headers })
        .then(async (res) => {
          await res.body.dump();
          if (i >= counted && (res.statusCode < 200 || res.statusCode >= 300)) errors++;
        })
        .catch(() => {
          if (i >= counted) errors++;
        })
        .finally(() => {
          latencies[i] = (performance.now() - sentAt) * 1000;
          if (++done === total) resolve();
        });
    };
    const tick = () => {
      const now = performance.now();
      while (sent < total && start + sent * intervalMs <= now) {
        send(sent);
        sent++;
      }
      if (sent < total) setTimeout(tick, 1);
    };
    tick();
  });
  const elapsedS = (performance.now() - start) / 1000 - WARMUP_S;
  await pool.close();
  const sorted = Array.from(latencies.subarray(counted)).sort((a, b) => a - b);
  const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number;
  return { rps: sorted.length / elapsedS, p50us: q(0.5), p99us: q(0.99), maxUs: sorted[sorted.length - 1] as number, errors, requests: sorted.length };
}
