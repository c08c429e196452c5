// The wire shape of metrics between an instance and the store: series (name, kind, labels) keyed
// by their canonical Prometheus text, and numeric values per series field. Counters have one field
// (""), histograms one per bucket ("b<i>") plus "sum" and "count".
export type Labels = Readonly<Record<string, string>>;

export interface SeriesInfo {
  name: string;
  kind: "counter" | "histogram" | "gauge";
  labels: Labels;
}

export interface MetricBatch {
  series: Record<string, SeriesInfo>;
  /** `${seriesKey}\t${field}` -> value */
  values: Record<string, number>;
}

export const emptyBatch = (): MetricBatch => ({ series: {}, values: {} });

/** Linkerd's response_latency_ms bucket bounds, in milliseconds. */
export const LATENCY_BUCKETS_MS = [1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500, 1000, 2000, 3000, 4000, 5000, 10000, 20000, 30000, 40000, 50000] as const;

/** `name{a="1",b="2"}`: label names sorted, values escaped as in the exposition format. */
export function seriesKey(name: string, labels: Labels): string {
  const names = Object.keys(labels).sort();
  let s = `${name}{`;
  for (let i = 0; i < names.length; i++) {
    const n = names[i] as string;
    s += `${i > 0 ? "," : ""}${n}="${escapeLabel(labels[n] as string)}"`;
  }
  return `${s}}`;
}

export function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

export function mergeInto(target: MetricBatch, from: MetricBatch): void {
  Object.assign(target.series, from.series);
  for (const [k, v] of Object.entries(from.values)) target.values[k] = (target.values[k] ?? 0) + v;
}
