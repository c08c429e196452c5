// Records golden metrics on the request path: in memory, a map update per sample. Deltas are
// drained by the flusher and added to the store, so counters add up across the whole fleet.
// Label values come only from configuration and verified identities (route names, cluster names,
// services, status codes): request data (hosts, paths, headers) never becomes a label.
import { LATENCY_BUCKETS_MS, seriesKey, type Labels, type MetricBatch } from "./metric-batch.ts";

export interface TrafficLabels {
  route_name: string;
  dst_target_cluster: string;
  dst_target_service: string;
  src_cluster: string;
  rollout?: string;
  rollout_role?: "stable" | "canary";
}

/** Linkerd's direction label plus the traffic labels; an empty value (an unidentified caller's cluster) is no label. */
function traffic(l: TrafficLabels): Record<string, string> {
  const out: Record<string, string> = { direction: "outbound" };
  for (const [k, v] of Object.entries(l)) if (v !== undefined && v !== "") out[k] = v;
  return out;
}

/** Bound on distinct series held in memory; beyond it new series are dropped and counted. */
export const MAX_SERIES = 20_000;

export class MetricsRecorder {
  private batch: MetricBatch = { series: {}, values: {} };
  private seriesCount = 0;
  droppedSamples = 0;

  recordRequest(l: TrafficLabels): void {
    this.inc("request_total", traffic(l));
  }

  recordResponse(l: TrafficLabels, status: number, latencyMs: number): void {
    const base = traffic(l);
    const code = status >= 100 && status <= 599 ? String(status) : "0";
    this.inc("response_total", { ...base, classification: status >= 500 || status === 0 ? "failure" : "success", status_code: code });
    this.observe("response_latency_ms", base, latencyMs);
  }

  /** A caller refused before any upstream call: counted explicitly, never as success. */
  recordDenied(route: string, reason: "unauthenticated" | "forbidden"): void {
    this.inc("isthmus_denied_total", { route_name: route, reason });
  }

  inc(name: string, labels: Labels, by = 1): void {
    const key = this.series(name, "counter", labels);
    if (key === null) return;
    const f = `${key}\t`;
    this.batch.values[f] = (this.batch.values[f] ?? 0) + by;
  }

  observe(name: string, labels: Labels, value: number): void {
    const key = this.series(name, "histogram", labels);
    if (key === null) return;
    const v = this.batch.values;
    let i = 0;
    while (i < LATENCY_BUCKETS_MS.length && value > (LATENCY_BUCKETS_MS[i] as number)) i++;
    // Buckets are stored non-cumulative; exposition accumulates. Index = bucket count means +Inf.
    const b = `${key}\tb${i}`;
    v[b] = (v[b] ?? 0) + 1;
    v[`${key}\tsum`] = (v[`${key}\tsum`] ?? 0) + value;
    v[`${key}\tcount`] = (v[`${key}\tcount`] ?? 0) + 1;
  }

  /** Takes everything recorded since the last drain. */
  drain(): MetricBatch {
    const out = this.batch;
    this.batch = { series: {}, values: {} };
    this.seriesCount = 0;
    return out;
  }

  private series(name: string, kind: "counter" | "histogram", labels: Labels): string | null {
    const key = seriesKey(name, labels);
    if (!(key in this.batch.series)) {
      if (this.seriesCount >= MAX_SERIES) {
        this.droppedSamples += 1;
        return null;
      }
      this.batch.series[key] = { name, kind, labels };
      this.seriesCount += 1;
    }
    return key;
  }
}
