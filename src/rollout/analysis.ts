// Canary analysis from the gateway's own fleet-wide metrics: no Prometheus query to write.
// Pure functions over counter snapshots.
import { LATENCY_BUCKETS_MS, type MetricBatch } from "../telemetry/metric-batch.ts";
import type { AnalysisResult, AnalysisWindow, Counters, RolloutSpec } from "./schema.ts";

const BUCKETS = LATENCY_BUCKETS_MS.length + 1;

/** Cumulative responses, failures and latency buckets of one rollout role, summed over its series. */
export function countersOf(totals: MetricBatch, rollout: string, role: "stable" | "canary"): Counters {
  const c: Counters = { requests: 0, failures: 0, buckets: new Array<number>(BUCKETS).fill(0) };
  for (const [key, s] of Object.entries(totals.series)) {
    if (s.labels.rollout !== rollout || s.labels.rollout_role !== role) continue;
    if (s.name === "response_total") {
      const v = totals.values[`${key}\t`] ?? 0;
      c.requests += v;
      if (s.labels.classification === "failure") c.failures += v;
    } else if (s.name === "response_latency_ms") {
      for (let i = 0; i < BUCKETS; i++) c.buckets[i] = (c.buckets[i] as number) + (totals.values[`${key}\tb${i}`] ?? 0);
    }
  }
  return c;
}

export function delta(now: Counters, then: Counters | undefined): Counters {
  if (!then) return now;
  return {
    requests: Math.max(0, now.requests - then.requests),
    failures: Math.max(0, now.failures - then.failures),
    buckets: now.buckets.map((b, i) => Math.max(0, b - (then.buckets[i] ?? 0))),
  };
}

/** Quantile from non-cumulative bucket counts, interpolated within the bucket like histogram_quantile. */
export function quantile(buckets: readonly number[], q: number): number | null {
  const total = buckets.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const rank = q * total;
  let cum = 0;
  for (let i = 0; i < buckets.length; i++) {
    const n = buckets[i] as number;
    if (cum + n >= rank && n > 0) {
      const lower = i === 0 ? 0 : (LATENCY_BUCKETS_MS[i - 1] as number);
      const upper = i < LATENCY_BUCKETS_MS.length ? (LATENCY_BUCKETS_MS[i] as number) : lower;
      return lower + (upper - lower) * ((rank - cum) / n);
    }
    cum += n;
  }
  return LATENCY_BUCKETS_MS[LATENCY_BUCKETS_MS.length - 1] as number;
}

export function windowOf(c: Counters): AnalysisWindow {
  return {
    requests: c.requests,
    failures: c.failures,
    successRate: c.requests > 0 ? (c.requests - c.failures) / c.requests : null,
    latencyP99Ms: quantile(c.buckets, 0.99),
  };
}

/** One analysis: the canary's window against the thresholds (and against stable when asked). */
export function analyse(spec: NonNullable<RolloutSpec["analysis"]>, canary: Counters, stable: Counters, at: Date): AnalysisResult {
  const cw = windowOf(canary);
  const sw = windowOf(stable);
  const reasons: string[] = [];
  if (cw.requests < spec.minRequests) {
    return { at: at.toISOString(), verdict: "nodata", canary: cw, stable: sw, reasons: [`${cw.requests} canary requests in the window, fewer than minRequests ${spec.minRequests}`] };
  }
  const sr = cw.successRate ?? 1;
  if (spec.successRate && sr < spec.successRate.min) reasons.push(`success rate ${fmt(sr)} below ${spec.successRate.min}`);
  if (spec.latencyP99Ms && cw.latencyP99Ms !== null && cw.latencyP99Ms > spec.latencyP99Ms.max) reasons.push(`p99 ${Math.round(cw.latencyP99Ms)} ms above ${spec.latencyP99Ms.max} ms`);
  const cmp = spec.compareWithStable;
  if (cmp && sw.requests >= spec.minRequests) {
    if (cmp.maxSuccessRateDrop !== undefined && sw.successRate !== null && sw.successRate - sr > cmp.maxSuccessRateDrop + 1e-9)
      reasons.push(`success rate ${fmt(sr)} is more than ${cmp.maxSuccessRateDrop} below stable's ${fmt(sw.successRate)}`);
    if (cmp.maxLatencyP99Ratio !== undefined && sw.latencyP99Ms && cw.latencyP99Ms !== null && cw.latencyP99Ms > sw.latencyP99Ms * cmp.maxLatencyP99Ratio)
      reasons.push(`p99 ${Math.round(cw.latencyP99Ms)} ms is more than ${cmp.maxLatencyP99Ratio}x stable's ${Math.round(sw.latencyP99Ms)} ms`);
  }
  return { at: at.toISOString(), verdict: reasons.length > 0 ? "fail" : "pass", canary: cw, stable: sw, reasons };
}

function fmt(x: number): string {
  return (Math.round(x * 10000) / 10000).toString();
}
