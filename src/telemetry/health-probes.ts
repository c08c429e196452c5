// Probes each cluster endpoint's health path on a schedule, like Linkerd's gateway probe: a GET,
// anything but 200 fails, `failureThreshold` consecutive failures mark the cluster not alive.
// Reasons are kept (DNS, connect, timeout, status) so `isthmus check` can say why.
import type { CompiledCluster } from "../routing/table.ts";
import { parseDuration } from "../config/duration.ts";
import { errorMessage, silentLogger, type Logger } from "../util/log.ts";
import { LATENCY_BUCKETS_MS, seriesKey, type MetricBatch } from "./metric-batch.ts";

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export interface ProbeState {
  /** null until the first probe has answered. */
  alive: boolean | null;
  consecutiveFailures: number;
  lastProbeAt: string | null;
  lastSuccessAt: string | null;
  lastLatencyMs: number | null;
  lastError: string | null;
  url: string;
}

interface Target {
  cluster: CompiledCluster;
  url: string;
  intervalMs: number;
  timeoutMs: number;
  nextAt: number;
  inflight: boolean;
  state: ProbeState;
  /** Latency histogram of successful probes: non-cumulative bucket counts, sum, count. */
  buckets: number[];
  sum: number;
  count: number;
}

export interface ProberOptions {
  failureThreshold?: number;
  defaultIntervalMs?: number;
  defaultTimeoutMs?: number;
  now?: () => number;
  log?: Logger;
  /** Called when a cluster changes between alive and not alive. */
  onChange?: (cluster: string, alive: boolean) => void;
}

export class HealthProber {
  private targets = new Map<string, Target>();
  private readonly now: () => number;
  private readonly log: Logger;

  constructor(
    private readonly fetchFn: FetchLike,
    private readonly opts: ProberOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.log = opts.log ?? silentLogger;
  }

  /** Follows the registered clusters; a cluster whose endpoint or health settings changed starts afresh. */
  sync(clusters: ReadonlyMap<string, CompiledCluster>): void {
    const next = new Map<string, Target>();
    for (const c of clusters.values()) {
      const path = c.spec.health?.path ?? "/ready";
      const url = `${c.base}${path}`;
      const intervalMs = Math.max(100, parseDuration(c.spec.health?.interval ?? "") || (this.opts.defaultIntervalMs ?? 3000));
      const timeoutMs = parseDuration(c.spec.health?.timeout ?? "") ?? this.opts.defaultTimeoutMs ?? Math.min(1000, intervalMs);
      const old = this.targets.get(c.name);
      if (old && old.url === url && old.intervalMs === intervalMs && old.timeoutMs === timeoutMs) {
        // The same object: a probe in flight must finish on the target the prober keeps.
        old.cluster = c;
        next.set(c.name, old);
        continue;
      }
      next.set(c.name, {
        cluster: c,
        url,
        intervalMs,
        timeoutMs,
        nextAt: 0,
        inflight: false,
        state: { alive: null, consecutiveFailures: 0, lastProbeAt: null, lastSuccessAt: null, lastLatencyMs: null, lastError: null, url },
        buckets: new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0),
        sum: 0,
        count: 0,
      });
    }
    this.targets = next;
  }

  /** Probes every cluster whose interval has elapsed (jittered by up to 10%, as Linkerd does). */
  async probeDue(): Promise<void> {
    const now = this.now();
    const due = [...this.targets.values()].filter((t) => !t.inflight && now >= t.nextAt);
    await Promise.all(due.map((t) => this.probe(t)));
  }

  state(cluster: string): ProbeState | null {
    const t = this.targets.get(cluster);
    return t ? { ...t.state } : null;
  }

  /** gateway_alive and gateway_probe_latency_ms, labelled target_cluster_name. */
  metrics(): MetricBatch {
    const out: MetricBatch = { series: {}, values: {} };
    for (const t of this.targets.values()) {
      const labels = { target_cluster_name: t.cluster.name };
      if (t.state.alive !== null) {
        const k = seriesKey("gateway_alive", labels);
        out.series[k] = { name: "gateway_alive", kind: "gauge", labels };
        out.values[`${k}\t`] = t.state.alive ? 1 : 0;
      }
      if (t.count > 0) {
        const k = seriesKey("gateway_probe_latency_ms", labels);
        out.series[k] = { name: "gateway_probe_latency_ms", kind: "histogram", labels };
        t.buckets.forEach((n, i) => (out.values[`${k}\tb${i}`] = n));
        out.values[`${k}\tsum`] = t.sum;
        out.values[`${k}\tcount`] = t.count;
      }
    }
    return out;
  }

  private async probe(t: Target): Promise<void> {
    t.inflight = true;
    const start = this.now();
    let error: string | null = null;
    try {
      const res = await this.fetchFn(t.url, { signal: AbortSignal.timeout(t.timeoutMs), redirect: "manual", headers: { "user-agent": "isthmus-probe" } });
      await res.body?.cancel().catch(() => undefined);
      if (res.status !== 200) error = `HTTP ${res.status}`;
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      error = e.name === "TimeoutError" ? `timeout after ${t.timeoutMs}ms` : e.cause?.code ? `${e.cause.code}` : errorMessage(err);
    } finally {
      t.inflight = false;
    }
    const end = this.now();
    const s = t.state;
    s.lastProbeAt = new Date(end).toISOString();
    const wasAlive = s.alive;
    if (error === null) {
      const ms = end - start;
      s.lastLatencyMs = ms;
      s.lastSuccessAt = s.lastProbeAt;
      s.lastError = null;
      s.consecutiveFailures = 0;
      s.alive = true;
      let i = 0;
      while (i < LATENCY_BUCKETS_MS.length && ms > (LATENCY_BUCKETS_MS[i] as number)) i++;
      t.buckets[i] = (t.buckets[i] ?? 0) + 1;
      t.sum += ms;
      t.count += 1;
    } else {
      s.lastError = error;
      s.consecutiveFailures += 1;
      if (s.consecutiveFailures >= (this.opts.failureThreshold ?? 3)) s.alive = false;
      else if (s.alive === null) s.alive = null;
    }
    if (wasAlive !== s.alive && s.alive !== null) {
      this.log[s.alive ? "info" : "warn"](s.alive ? "cluster probe passing" : "cluster probe failing", { cluster: t.cluster.name, url: t.url, error: s.lastError });
      this.opts.onChange?.(t.cluster.name, s.alive);
    }
    t.nextAt = end + t.intervalMs * (1 + Math.random() * 0.1);
  }
}
