// The dashboard's metric ring: fleet totals in, per-route and per-cluster rates, success rates and
// p99 out, over a sliding window, bounded in points and keys.
import { describe, expect, it } from "vitest";
import { MetricsRecorder, type TrafficLabels } from "../../src/telemetry/recorder.ts";
import { mergeInto, type MetricBatch } from "../../src/telemetry/metric-batch.ts";
import { aggregate, MetricsSampler } from "../../src/ui/sampler.ts";

const labels = (route: string, cluster: string): TrafficLabels => ({ route_name: route, dst_target_cluster: cluster, dst_target_service: "checkout.shop", src_cluster: "" });

/** Cumulative totals as the store keeps them: every recorded delta added in. */
class Totals {
  readonly batch: MetricBatch = { series: {}, values: {} };
  private readonly rec = new MetricsRecorder();
  respond(route: string, cluster: string, status: number, latencyMs: number, times = 1): this {
    for (let i = 0; i < times; i++) this.rec.recordResponse(labels(route, cluster), status, latencyMs);
    mergeInto(this.batch, this.rec.drain());
    return this;
  }
}

describe("aggregate", () => {
  it("sums responses, failures and latency buckets per route and per destination cluster", () => {
    const t = new Totals().respond("shop", "east", 200, 3, 4).respond("shop", "west", 503, 40).respond("cart", "east", 200, 1);
    const a = aggregate(t.batch);
    expect(a.get("r:shop")).toMatchObject({ requests: 5, failures: 1 });
    expect(a.get("r:cart")).toMatchObject({ requests: 1, failures: 0 });
    expect(a.get("c:east")).toMatchObject({ requests: 5, failures: 0 });
    expect(a.get("c:west")).toMatchObject({ requests: 1, failures: 1 });
    expect(a.get("r:shop")?.buckets.reduce((x, y) => x + y, 0)).toBe(5);
  });

  it("tracks at most maxKeys routes and clusters", () => {
    const t = new Totals();
    for (let i = 0; i < 10; i++) t.respond(`r${i}`, "east", 200, 1);
    expect(aggregate(t.batch, 4).size).toBe(4);
  });
});

describe("MetricsSampler", () => {
  const build = (t: Totals, now: { t: number }, opts = {}) => {
    let reads = 0;
    const sampler = new MetricsSampler(
      async () => {
        reads++;
        return structuredClone(t.batch);
      },
      { intervalMs: 2_000, windowMs: 10_000, capacity: 5, now: () => now.t, ...opts },
    );
    return { sampler, reads: () => reads };
  };

  it("turns totals into responses per second, success rate and p99 over the window", async () => {
    const now = { t: 1_000_000 };
    const totals = new Totals().respond("shop", "east", 200, 3, 10);
    const { sampler } = build(totals, now);
    await sampler.sampleIfDue();
    // The first sample is only a base: no point yet.
    expect(sampler.series().t).toEqual([]);

    totals.respond("shop", "east", 200, 3, 18).respond("shop", "east", 500, 250, 2);
    now.t += 2_000;
    await sampler.sampleIfDue();
    const s = sampler.series();
    expect(s.t).toEqual([1_002_000]);
    expect(s.routes.shop).toEqual({ rps: [10], successRate: [0.9], p99Ms: [expect.any(Number)] });
    expect(s.routes.shop?.p99Ms[0]).toBeGreaterThan(200);
    expect(s.routes.shop?.p99Ms[0]).toBeLessThanOrEqual(300);
    expect(s.clusters.east?.rps).toEqual([10]);
    expect(s).toMatchObject({ now: 1_002_000, intervalMs: 2_000, windowMs: 10_000, spanMs: 10_000 });
  });

  it("samples at most once per interval, and concurrent callers share one read", async () => {
    const now = { t: 0 };
    const { sampler, reads } = build(new Totals(), now);
    await Promise.all([sampler.sampleIfDue(), sampler.sampleIfDue(), sampler.sampleIfDue()]);
    expect(reads()).toBe(1);
    now.t += 1_999;
    await sampler.sampleIfDue();
    expect(reads()).toBe(1);
    now.t += 1;
    await sampler.sampleIfDue();
    expect(reads()).toBe(2);
  });

  it("keeps a bounded ring, with null where a route had no point yet", async () => {
    const now = { t: 0 };
    const totals = new Totals().respond("shop", "east", 200, 1);
    const { sampler } = build(totals, now);
    for (let i = 0; i < 8; i++) {
      if (i === 6) totals.respond("cart", "west", 200, 1);
      totals.respond("shop", "east", 200, 1, 2);
      await sampler.sampleIfDue();
      now.t += 2_000;
    }
    const s = sampler.series();
    expect(s.t).toHaveLength(5);
    expect(s.routes.shop?.rps.every((v) => v !== null && v > 0)).toBe(true);
    expect(s.routes.cart?.rps.slice(0, 3)).toEqual([null, null, null]);
    expect(s.routes.cart?.rps[3]).toBeGreaterThan(0);
  });

  it("gives no point across a counter reset or after a long gap", () => {
    const { sampler } = build(new Totals(), { t: 0 });
    const at = (requests: number) => new Map([["r:shop" as const, { requests, failures: 0, buckets: [requests] }]]);
    sampler.add(at(100), 0);
    sampler.add(at(10), 2_000);
    expect(sampler.series().t).toEqual([]);
    sampler.add(at(30), 4_000);
    expect(sampler.series().routes.shop?.rps).toEqual([10]);
    // Nobody watched for a minute: the next point would average over it.
    sampler.add(at(1_000), 64_000);
    expect(sampler.series().t).toEqual([4_000]);
  });
});
