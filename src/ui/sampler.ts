// Golden metrics over the last minutes for the dashboard's charts: the fleet totals are sampled
// every few seconds (lazily, when a dashboard asks, so an idle gateway does no work) and each
// sample becomes one point per route and per destination cluster: responses per second, success
// rate and p99 latency over a short sliding window. Points live in a bounded ring per instance.
import { delta, quantile } from "../rollout/analysis.ts";
import type { Counters } from "../rollout/schema.ts";
import { LATENCY_BUCKETS_MS, type MetricBatch } from "../telemetry/metric-batch.ts";

const BUCKETS = LATENCY_BUCKETS_MS.length + 1;

export interface SamplerOptions {
  /** Least time between two samples. */
  intervalMs?: number;
  /** Rates and p99 are taken over this trailing window (like PromQL's rate(x[10s])). */
  windowMs?: number;
  /** Points kept: intervalMs x capacity is the history the charts can show. */
  capacity?: number;
  /** Routes plus clusters tracked per point; the rest are left out (sorted by name). */
  maxKeys?: number;
  now?: () => number;
}

/** One point of one route or cluster. */
export interface Golden {
  /** Responses per second. */
  rps: number;
  /** Share of responses that were not failures; null without responses. */
  successRate: number | null;
  p99Ms: number | null;
}

/** Columnar series for the client: every array is aligned with `t`; null where there is no point. */
export interface SeriesColumns {
  rps: Array<number | null>;
  successRate: Array<number | null>;
  p99Ms: Array<number | null>;
}

export interface SeriesPayload {
  /** Server time of the answer: the charts' right edge, whatever the browser's clock says. */
  now: number;
  intervalMs: number;
  windowMs: number;
  /** History the ring can hold. */
  spanMs: number;
  t: number[];
  routes: Record<string, SeriesColumns>;
  clusters: Record<string, SeriesColumns>;
}

type Key = `r:${string}` | `c:${string}`;

interface Point {
  t: number;
  values: Map<Key, Golden>;
}

interface Cumulative {
  t: number;
  totals: Map<Key, Counters>;
}

/** Cumulative responses, failures and latency buckets per route (`r:`) and destination cluster (`c:`). */
export function aggregate(batch: MetricBatch, maxKeys = Infinity): Map<Key, Counters> {
  const out = new Map<Key, Counters>();
  const get = (key: Key): Counters | null => {
    let c = out.get(key);
    if (!c) {
      if (out.size >= maxKeys) return null;
      c = { requests: 0, failures: 0, buckets: new Array<number>(BUCKETS).fill(0) };
      out.set(key, c);
    }
    return c;
  };
  const entries = Object.entries(batch.series)
    .filter(([, s]) => s.name === "response_total" || s.name === "response_latency_ms")
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [seriesKey, s] of entries) {
    const keys: Key[] = [];
    if (s.labels.route_name) keys.push(`r:${s.labels.route_name}`);
    if (s.labels.dst_target_cluster) keys.push(`c:${s.labels.dst_target_cluster}`);
    for (const key of keys) {
      const c = get(key);
      if (!c) continue;
      if (s.name === "response_total") {
        const v = batch.values[`${seriesKey}\t`] ?? 0;
        c.requests += v;
        if (s.labels.classification === "failure") c.failures += v;
      } else {
        for (let i = 0; i < BUCKETS; i++) c.buckets[i] = (c.buckets[i] as number) + (batch.values[`${seriesKey}\tb${i}`] ?? 0);
      }
    }
  }
  return out;
}

export class MetricsSampler {
  readonly intervalMs: number;
  readonly windowMs: number;
  readonly capacity: number;
  private readonly maxKeys: number;
  private readonly now: () => number;
  private readonly points: Point[] = [];
  /** Cumulative totals of the last samples, for the sliding window. */
  private history: Cumulative[] = [];
  private inflight: Promise<void> | null = null;

  constructor(
    private readonly read: () => Promise<MetricBatch>,
    opts: SamplerOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? 2_000;
    this.windowMs = opts.windowMs ?? 10_000;
    this.capacity = opts.capacity ?? 150;
    this.maxKeys = opts.maxKeys ?? 512;
    this.now = opts.now ?? Date.now;
  }

  /** Takes a sample when the last one is at least `intervalMs` old; concurrent callers share one read. Throws what `read` throws. */
  async sampleIfDue(): Promise<void> {
    const last = this.history[this.history.length - 1];
    if (last && this.now() - last.t < this.intervalMs) return;
    this.inflight ??= (async () => {
      try {
        this.add(aggregate(await this.read(), this.maxKeys), this.now());
      } finally {
        this.inflight = null;
      }
    })();
    return this.inflight;
  }

  /** Adds cumulative totals taken at `t`; exposed for tests. */
  add(totals: Map<Key, Counters>, t: number): void {
    // The base of the window: the oldest sample inside it, or failing that the newest before it.
    const from = t - this.windowMs;
    let base = this.history.find((h) => h.t >= from) ?? this.history[this.history.length - 1];
    // Too old a base (nobody watched for a while) says nothing about the last seconds.
    if (base && (t - base.t > 2 * this.windowMs || t <= base.t)) base = undefined;
    // Totals went backwards: the store lost its data. No point rather than a wrong one, and the
    // samples before the reset cannot be a base any more.
    if ([...totals].some(([key, now]) => now.requests < (this.history[this.history.length - 1]?.totals.get(key)?.requests ?? 0))) {
      this.history = [];
      base = undefined;
    }
    if (base) {
      const seconds = (t - base.t) / 1000;
      const values = new Map<Key, Golden>();
      for (const [key, now] of totals) {
        const d = delta(now, base.totals.get(key));
        values.set(key, { rps: d.requests / seconds, successRate: d.requests > 0 ? (d.requests - d.failures) / d.requests : null, p99Ms: quantile(d.buckets, 0.99) });
      }
      this.points.push({ t, values });
      if (this.points.length > this.capacity) this.points.splice(0, this.points.length - this.capacity);
    }
    this.history.push({ t, totals });
    this.history = this.history.filter((h) => h.t >= t - 2 * this.windowMs);
  }

  /** Points within the ring, columnar, per route and per cluster. */
  series(): SeriesPayload {
    const points = this.points;
    const routes: Record<string, SeriesColumns> = {};
    const clusters: Record<string, SeriesColumns> = {};
    const columns = (key: Key): SeriesColumns => {
      const [kind, name] = [key.slice(0, 1), key.slice(2)];
      const into = kind === "r" ? routes : clusters;
      let col = into[name];
      if (!col) {
        const empty = () => new Array<number | null>(points.length).fill(null);
        col = into[name] = { rps: empty(), successRate: empty(), p99Ms: empty() };
      }
      return col;
    };
    points.forEach((p, i) => {
      for (const [key, g] of p.values) {
        const col = columns(key);
        col.rps[i] = round(g.rps, 3);
        col.successRate[i] = g.successRate === null ? null : round(g.successRate, 5);
        col.p99Ms[i] = g.p99Ms === null ? null : round(g.p99Ms, 2);
      }
    });
    return { now: this.now(), intervalMs: this.intervalMs, windowMs: this.windowMs, spanMs: this.intervalMs * this.capacity, t: points.map((p) => p.t), routes, clusters };
  }
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
