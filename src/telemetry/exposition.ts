// Prometheus text exposition (format 0.0.4) of a metric batch, optionally only the series a
// cluster took part in (source, destination or probe target).
import { LATENCY_BUCKETS_MS, seriesKey, type MetricBatch, type SeriesInfo } from "./metric-batch.ts";

const HELP: Record<string, string> = {
  request_total: "Total requests the gateway forwarded across clusters (fleet-wide).",
  response_total: "Total responses, by classification and status code (fleet-wide).",
  response_latency_ms: "Time from the request to the response headers, in milliseconds (fleet-wide).",
  isthmus_denied_total: "Requests refused before any upstream call, by reason (fleet-wide).",
  gateway_alive: "Whether the cluster's endpoint passes its health probe (this instance's view).",
  gateway_probe_latency_ms: "Latency of successful health probes, in milliseconds (this instance).",
};

/** The series a cluster took part in: it was the caller's cluster, the destination, or the probe target. */
export function involves(s: SeriesInfo, cluster: string): boolean {
  const l = s.labels;
  if (cluster === "") return false;
  return l.src_cluster === cluster || l.dst_target_cluster === cluster || l.target_cluster_name === cluster;
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Flattens a batch into samples: counters and gauges as they are, histograms as cumulative buckets, sum and count. */
export function toSamples(batch: MetricBatch, filter?: (s: SeriesInfo) => boolean): Sample[] {
  const out: Sample[] = [];
  const keys = Object.keys(batch.series).sort();
  for (const key of keys) {
    const s = batch.series[key] as SeriesInfo;
    if (filter && !filter(s)) continue;
    const v = (f: string) => batch.values[`${key}\t${f}`] ?? 0;
    if (s.kind !== "histogram") {
      out.push({ name: s.name, labels: { ...s.labels }, value: v("") });
      continue;
    }
    let cum = 0;
    for (let i = 0; i <= LATENCY_BUCKETS_MS.length; i++) {
      cum += v(`b${i}`);
      out.push({ name: `${s.name}_bucket`, labels: { ...s.labels, le: i < LATENCY_BUCKETS_MS.length ? String(LATENCY_BUCKETS_MS[i]) : "+Inf" }, value: cum });
    }
    out.push({ name: `${s.name}_sum`, labels: { ...s.labels }, value: v("sum") });
    out.push({ name: `${s.name}_count`, labels: { ...s.labels }, value: v("count") });
  }
  return out;
}

export function renderText(batches: MetricBatch[], filter?: (s: SeriesInfo) => boolean): string {
  const byFamily = new Map<string, { kind: SeriesInfo["kind"]; lines: string[] }>();
  for (const batch of batches) {
    const kinds = new Map(Object.values(batch.series).map((s) => [s.name, s.kind]));
    for (const sample of toSamples(batch, filter)) {
      const family = sample.name.replace(/_(bucket|sum|count)$/, "");
      const fam = kinds.has(family) ? family : sample.name;
      let f = byFamily.get(fam);
      if (!f) byFamily.set(fam, (f = { kind: kinds.get(fam) ?? "counter", lines: [] }));
      f.lines.push(`${seriesKey(sample.name, sample.labels).replace(/\{\}$/, "")} ${formatValue(sample.value)}`);
    }
  }
  let out = "";
  for (const [name, f] of [...byFamily].sort(([a], [b]) => a.localeCompare(b))) {
    if (HELP[name]) out += `# HELP ${name} ${HELP[name]}\n`;
    out += `# TYPE ${name} ${f.kind}\n${f.lines.join("\n")}\n`;
  }
  return out;
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}
