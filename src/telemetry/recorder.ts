// Records golden metrics on the request path: in memory, a map update per sample. Deltas are
// drained by the flusher and added to the store, so counters add up across the whole fleet.
// Label values come only from configuration and verified identities (route names, cluster names,
// services, status codes): request data (hosts, paths, headers) never becomes a label.
import type { CompiledBackend, CompiledRule } from "../routing/table.ts";
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

/**
 * The series of one traffic label set, with their keys computed once: the hot path records into
 * it without building label objects or series keys per request.
 */
export class TrafficSeries {
  readonly labels: Record<string, string>;
  readonly requestKey: string;
  readonly latencyKey: string;
  readonly requestValueKey: string;
  /** The batch's value keys of the latency histogram: one per bucket (+Inf last), sum and count. */
  readonly latencyValueKeys: { buckets: string[]; sum: string; count: string };
  private readonly byStatus = new Map<number, { key: string; valueKey: string; labels: Labels }>();

  constructor(l: TrafficLabels) {
    this.labels = traffic(l);
    this.requestKey = seriesKey("request_total", this.labels);
    this.latencyKey = seriesKey("response_latency_ms", this.labels);
    this.latencyValueKeys = histogramKeys(this.latencyKey);
    this.requestValueKey = `${this.requestKey}\t`;
  }

  /** The response_total series of a status code (at most 501 per label set: codes 100..599 and "0"). */
  response(status: number): { key: string; valueKey: string; labels: Labels } {
    const code = status >= 100 && status <= 599 ? status : 0;
    let hit = this.byStatus.get(code);
    if (!hit) {
      const labels = { ...this.labels, classification: code >= 500 || code === 0 ? "failure" : "success", status_code: String(code) };
      const key = seriesKey("response_total", labels);
      hit = { key, valueKey: `${key}\t`, labels };
      this.byStatus.set(code, hit);
    }
    return hit;
  }
}

/** The value keys of a histogram series in a batch (non-cumulative buckets, +Inf last, sum, count). */
function histogramKeys(key: string): { buckets: string[]; sum: string; count: string } {
  const buckets: string[] = [];
  for (let i = 0; i <= LATENCY_BUCKETS_MS.length; i++) buckets.push(`${key}\tb${i}`);
  return { buckets, sum: `${key}\tsum`, count: `${key}\tcount` };
}

/** Bound on distinct series held in memory; beyond it new series are dropped and counted. */
export const MAX_SERIES = 20_000;

export class MetricsRecorder {
  private batch: MetricBatch = { series: {}, values: {} };
  private seriesCount = 0;
  droppedSamples = 0;

  private readonly seriesByBackend = new WeakMap<CompiledBackend, Map<string, TrafficSeries>>();

  /**
   * The traffic series of a backend of a rule for a caller's cluster, kept with the compiled backend
   * (a new routing table brings new backends, and the old entries go with the old table).
   */
  series(rule: CompiledRule, backend: CompiledBackend, srcCluster: string): TrafficSeries {
    let byCaller = this.seriesByBackend.get(backend);
    if (!byCaller) this.seriesByBackend.set(backend, (byCaller = new Map()));
    let s = byCaller.get(srcCluster);
    if (!s) {
      const l: TrafficLabels = { route_name: rule.route, dst_target_cluster: backend.cluster, dst_target_service: backend.service, src_cluster: srcCluster };
      const ro = rule.rollout;
      if (ro && (backend.id === ro.canaryId || backend.id === ro.stableId)) {
        l.rollout = ro.name;
        l.rollout_role = backend.id === ro.canaryId ? "canary" : "stable";
      }
      // Caller clusters are registered clusters (verified identities only), so this map stays small.
      s = new TrafficSeries(l);
      byCaller.set(srcCluster, s);
    }
    return s;
  }

  recordRequest(l: TrafficLabels | TrafficSeries): void {
    const s = l instanceof TrafficSeries ? l : new TrafficSeries(l);
    this.incKey("request_total", s.requestKey, s.labels, 1, s.requestValueKey);
  }

  recordResponse(l: TrafficLabels | TrafficSeries, status: number, latencyMs: number): void {
    const s = l instanceof TrafficSeries ? l : new TrafficSeries(l);
    const r = s.response(status);
    this.incKey("response_total", r.key, r.labels, 1, r.valueKey);
    this.observeKey("response_latency_ms", s.latencyKey, s.labels, latencyMs, s.latencyValueKeys);
  }

  /** A caller refused before any upstream call: counted explicitly, never as success. */
  recordDenied(route: string, reason: "unauthenticated" | "forbidden"): void {
    this.inc("isthmus_denied_total", { route_name: route, reason });
  }

  inc(name: string, labels: Labels, by = 1): void {
    this.incKey(name, seriesKey(name, labels), labels, by);
  }

  private incKey(name: string, seriesId: string, labels: Labels, by = 1, valueKey?: string): void {
    const key = this.register(name, "counter", seriesId, labels);
    if (key === null) return;
    const f = valueKey ?? `${key}\t`;
    this.batch.values[f] = (this.batch.values[f] ?? 0) + by;
  }

  observe(name: string, labels: Labels, value: number): void {
    this.observeKey(name, seriesKey(name, labels), labels, value);
  }

  private observeKey(name: string, seriesId: string, labels: Labels, value: number, precomputed?: TrafficSeries["latencyValueKeys"]): void {
    const key = this.register(name, "histogram", seriesId, labels);
    if (key === null) return;
    const v = this.batch.values;
    let i = 0;
    while (i < LATENCY_BUCKETS_MS.length && value > (LATENCY_BUCKETS_MS[i] as number)) i++;
    // Buckets are stored non-cumulative; exposition accumulates. Index = bucket count means +Inf.
    const keys = precomputed ?? histogramKeys(key);
    const b = keys.buckets[i] as string;
    v[b] = (v[b] ?? 0) + 1;
    v[keys.sum] = (v[keys.sum] ?? 0) + value;
    v[keys.count] = (v[keys.count] ?? 0) + 1;
  }

  /** Takes everything recorded since the last drain. */
  drain(): MetricBatch {
    const out = this.batch;
    this.batch = { series: {}, values: {} };
    this.seriesCount = 0;
    return out;
  }

  private register(name: string, kind: "counter" | "histogram", key: string, labels: Labels): string | null {
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
