// Canary analysis (src/rollout/analysis.ts) and the weight arithmetic of a rollout
// (src/rollout/weights.ts), without a network: counters are built with the real MetricsRecorder, so
// the series shapes are exactly what the gateway records.
import { describe, expect, it } from "vitest";
import type { Route, RouteInput } from "../../src/config/schemas.ts";
import { parseRoute } from "../../src/config/validate.ts";
import { analyse, countersOf, delta, quantile, windowOf } from "../../src/rollout/analysis.ts";
import { rolloutSchema, type Counters, type RolloutSpec } from "../../src/rollout/schema.ts";
import { currentCanaryWeight, ruleIndex, rolloutFitErrors, withCanaryWeight } from "../../src/rollout/weights.ts";
import { MetricsFlusher } from "../../src/telemetry/flusher.ts";
import { LATENCY_BUCKETS_MS, mergeInto, type MetricBatch } from "../../src/telemetry/metric-batch.ts";
import { MetricsRecorder, type TrafficLabels } from "../../src/telemetry/recorder.ts";

const NB = LATENCY_BUCKETS_MS.length + 1; // + the +Inf bucket
const STABLE = { cluster: "east", service: "checkout.shop.svc.cluster.local", port: 8080 };
const CANARY = { cluster: "west", service: "checkout-v2.shop.svc.cluster.local", port: 8080 };
const AT = new Date("2030-01-02T03:04:05.000Z");

const labels = (rollout: string | undefined, role: "stable" | "canary" | undefined, extra: Partial<TrafficLabels> = {}): TrafficLabels => ({
  route_name: "checkout",
  dst_target_cluster: role === "canary" ? "west" : "east",
  dst_target_service: role === "canary" ? CANARY.service : STABLE.service,
  src_cluster: "east",
  ...(rollout ? { rollout } : {}),
  ...(role ? { rollout_role: role } : {}),
  ...extra,
});

/** Counters with `n` observations in bucket `i` (and the given requests/failures). */
function counters(requests: number, failures: number, buckets: Record<number, number> = {}): Counters {
  const b = new Array<number>(NB).fill(0);
  for (const [i, n] of Object.entries(buckets)) b[Number(i)] = n;
  return { requests, failures, buckets: b };
}

/** `requests` observations spread over bucket `i` (for latency), `failures` of them failures. */
const inBucket = (requests: number, failures: number, i: number) => counters(requests, failures, { [i]: requests });

function analysisSpec(a: Record<string, unknown> = {}): NonNullable<RolloutSpec["analysis"]> {
  const spec = rolloutSchema.parse({ name: "r", route: "checkout", rule: "default", stable: STABLE, canary: CANARY, steps: [{ setWeight: 10 }], analysis: a });
  return spec.analysis as NonNullable<RolloutSpec["analysis"]>;
}

// ------------------------------------------------------------------ countersOf / delta

describe("countersOf", () => {
  it("sums responses, failures and latency buckets of one rollout role over all its series", () => {
    const rec = new MetricsRecorder();
    const canary = labels("checkout-v2", "canary");
    rec.recordRequest(canary);
    rec.recordResponse(canary, 200, 0.5); // bucket 0 (<= 1 ms)
    rec.recordResponse(canary, 200, 3); // bucket 2 (<= 3 ms: the bound is inclusive)
    rec.recordResponse(canary, 204, 7); // bucket 5 (5..10]
    rec.recordResponse(canary, 503, 7); // a failure
    rec.recordResponse(canary, 0, 60_000); // a failure in +Inf
    rec.recordResponse({ ...canary, src_cluster: "west" }, 500, 7); // another series of the same role
    rec.recordResponse(canary, 404, 1); // 4xx is not a failure
    // Not this role / rollout / not a rollout at all.
    rec.recordResponse(labels("checkout-v2", "stable"), 500, 1);
    rec.recordResponse(labels("other", "canary"), 500, 1);
    rec.recordResponse(labels(undefined, undefined, { dst_target_cluster: "west" }), 500, 1);
    const batch = rec.drain();

    const c = countersOf(batch, "checkout-v2", "canary");
    expect(c.requests).toBe(7);
    expect(c.failures).toBe(3);
    expect(c.buckets).toHaveLength(NB);
    expect(c.buckets[0]).toBe(2); // 0.5 and 1
    expect(c.buckets[2]).toBe(1);
    expect(c.buckets[5]).toBe(3);
    expect(c.buckets[NB - 1]).toBe(1);
    expect(c.buckets.reduce((a, b) => a + b, 0)).toBe(c.requests);

    expect(countersOf(batch, "checkout-v2", "stable")).toEqual(counters(1, 1, { 0: 1 }));
    expect(countersOf(batch, "nope", "canary")).toEqual(counters(0, 0));
    expect(countersOf({ series: {}, values: {} }, "checkout-v2", "canary")).toEqual(counters(0, 0));
  });

  it("reads fleet totals (merged batches) the same way", () => {
    const a = new MetricsRecorder();
    const b = new MetricsRecorder();
    a.recordResponse(labels("r", "canary"), 200, 2);
    b.recordResponse(labels("r", "canary"), 500, 2);
    b.recordResponse(labels("r", "canary"), 200, 2);
    const merged: MetricBatch = { series: {}, values: {} };
    for (const batch of [a.drain(), b.drain()]) mergeInto(merged, batch);
    expect(countersOf(merged, "r", "canary")).toEqual(counters(3, 1, { 1: 3 }));
  });
});

describe("delta", () => {
  it("is the difference of two snapshots, never negative (a counter reset counts as zero)", () => {
    const then = counters(10, 2, { 0: 4, 3: 6 });
    const now = counters(25, 3, { 0: 9, 3: 6, 7: 10 });
    expect(delta(now, then)).toEqual(counters(15, 1, { 0: 5, 7: 10 }));
    expect(delta(counters(5, 0, { 0: 5 }), counters(10, 4, { 0: 10 }))).toEqual(counters(0, 0));
    expect(delta(now, undefined)).toEqual(now);
    // A shorter old snapshot (fewer buckets) counts the missing buckets as 0.
    expect(delta(counters(1, 0, { [NB - 1]: 1 }), { requests: 0, failures: 0, buckets: [0] })).toEqual(counters(1, 0, { [NB - 1]: 1 }));
  });
});

describe("the totals the controller analyses: MetricsFlusher.flush() first", () => {
  it("a flush that joins a running one still delivers every sample recorded before the call", async () => {
    // The controller's totals() (src/runtime/node.ts) and GET /metrics both call flusher.flush() and
    // then read the store, relying on "true when everything recorded so far reached the store".
    const rec = new MetricsRecorder();
    const stored: MetricBatch = { series: {}, values: {} };
    const gates: Array<() => void> = [];
    const store = {
      applyMetricDeltas: async (_id: string, batch: MetricBatch) => {
        await new Promise<void>((release) => gates.push(release));
        mergeInto(stored, batch);
        return true;
      },
    };
    const flusher = new MetricsFlusher(rec, store);
    const turn = () => new Promise((r) => setImmediate(r));
    const canary = labels("r", "canary");
    rec.recordResponse(canary, 200, 1);
    const first = flusher.flush(); // drains sample 1, waits for the store
    await turn();
    rec.recordResponse(canary, 200, 1);
    gates.shift()?.(); // sample 1 stored; the same run drains sample 2 and waits again
    await turn();
    rec.recordResponse(canary, 200, 1); // sample 3, recorded before the next call
    const second = flusher.flush();
    while (gates.length > 0) {
      gates.shift()?.();
      await turn();
    }
    expect(await second).toBe(true);
    await first;
    expect(countersOf(stored, "r", "canary").requests).toBe(3);
  });
});

// ------------------------------------------------------------------ quantile / windowOf

describe("quantile", () => {
  const b = (entries: Record<number, number>) => counters(0, 0, entries).buckets;

  it("interpolates linearly within the bucket, like histogram_quantile", () => {
    // 100 observations in (5, 10]: the p-quantile is 5 + 5p.
    expect(quantile(b({ 5: 100 }), 0.5)).toBeCloseTo(7.5, 10);
    expect(quantile(b({ 5: 100 }), 0.99)).toBeCloseTo(9.95, 10);
    // The first bucket starts at 0.
    expect(quantile(b({ 0: 10 }), 0.5)).toBeCloseTo(0.5, 10);
    // Half fast (<= 1 ms), half in (50, 100]: p99 is 50 + 50 * 49/50.
    expect(quantile(b({ 0: 50, 10: 50 }), 0.99)).toBeCloseTo(99, 10);
    expect(quantile(b({ 0: 50, 10: 50 }), 0.5)).toBeCloseTo(1, 10);
    // Empty buckets in between are skipped.
    expect(quantile(b({ 1: 1, 20: 99 }), 0.01)).toBeCloseTo(2, 10);
  });

  it("answers the highest finite bound for the +Inf bucket, and null with no observations", () => {
    expect(quantile(b({ [NB - 1]: 10 }), 0.99)).toBe(LATENCY_BUCKETS_MS.at(-1));
    expect(quantile(b({ 0: 1, [NB - 1]: 99 }), 0.5)).toBe(LATENCY_BUCKETS_MS.at(-1));
    expect(quantile(b({}), 0.99)).toBeNull();
  });

  it("is monotone in q", () => {
    const buckets = b({ 0: 3, 4: 10, 9: 40, 12: 30, 15: 17 });
    let prev = -1;
    for (let q = 0.01; q <= 1; q += 0.01) {
      const v = quantile(buckets, q) as number;
      expect(v).toBeGreaterThanOrEqual(prev);
      prev = v;
    }
  });
});

describe("windowOf", () => {
  it("gives the success rate and p99, null when there were no requests", () => {
    expect(windowOf(inBucket(200, 10, 5))).toEqual({ requests: 200, failures: 10, successRate: 0.95, latencyP99Ms: expect.closeTo(9.95, 10) });
    expect(windowOf(counters(0, 0))).toEqual({ requests: 0, failures: 0, successRate: null, latencyP99Ms: null });
  });
});

// ------------------------------------------------------------------ analyse

describe("analyse", () => {
  const none = counters(0, 0);

  it("is nodata below minRequests, and says how many there were", () => {
    const r = analyse(analysisSpec({ minRequests: 20, successRate: { min: 0.99 } }), inBucket(19, 19, 5), none, AT);
    expect(r.verdict).toBe("nodata");
    expect(r.at).toBe(AT.toISOString());
    expect(r.reasons).toEqual(["19 canary requests in the window, fewer than minRequests 20"]);
    expect(r.canary).toMatchObject({ requests: 19, failures: 19, successRate: 0 });
    expect(r.stable).toMatchObject({ requests: 0, successRate: null });
  });

  it("passes a healthy canary and fails on success rate, on p99, or on both", () => {
    const spec = analysisSpec({ minRequests: 20, successRate: { min: 0.99 }, latencyP99Ms: { max: 50 } });
    expect(analyse(spec, inBucket(100, 0, 5), none, AT)).toMatchObject({ verdict: "pass", reasons: [] });
    // Exactly at the bounds is still a pass.
    expect(analyse(spec, inBucket(100, 1, 5), none, AT).verdict).toBe("pass");
    expect(analyse(analysisSpec({ minRequests: 1, latencyP99Ms: { max: 9.95 } }), inBucket(100, 0, 5), none, AT).verdict).toBe("pass");

    const lowSr = analyse(spec, inBucket(100, 2, 5), none, AT);
    expect(lowSr.verdict).toBe("fail");
    expect(lowSr.reasons).toEqual(["success rate 0.98 below 0.99"]);

    const slow = analyse(spec, inBucket(100, 0, 11), none, AT); // (100, 200] -> p99 199
    expect(slow.verdict).toBe("fail");
    expect(slow.reasons).toEqual(["p99 199 ms above 50 ms"]);

    const both = analyse(spec, inBucket(100, 50, 11), none, AT);
    expect(both.verdict).toBe("fail");
    expect(both.reasons).toHaveLength(2);
  });

  it("without thresholds, any window with enough requests passes", () => {
    expect(analyse(analysisSpec({ minRequests: 5 }), inBucket(10, 10, 20), none, AT).verdict).toBe("pass");
  });

  it("compareWithStable: fails a canary much worse than stable over the same window", () => {
    const spec = analysisSpec({ minRequests: 20, compareWithStable: { maxSuccessRateDrop: 0.02, maxLatencyP99Ratio: 1.5 } });
    const stable = inBucket(1000, 0, 5); // 100%, p99 9.95
    expect(analyse(spec, inBucket(100, 1, 5), stable, AT).verdict).toBe("pass");
    const worse = analyse(spec, inBucket(100, 5, 5), stable, AT);
    expect(worse.verdict).toBe("fail");
    expect(worse.reasons).toEqual(["success rate 0.95 is more than 0.02 below stable's 1"]);
    const slower = analyse(spec, inBucket(100, 0, 6), stable, AT); // (10, 20] -> p99 19.9 > 1.5 x 9.95
    expect(slower.verdict).toBe("fail");
    expect(slower.reasons).toEqual(["p99 20 ms is more than 1.5x stable's 10 ms"]);
    // A canary no worse than a struggling stable passes the comparison.
    expect(analyse(spec, inBucket(100, 10, 5), inBucket(1000, 100, 5), AT).verdict).toBe("pass");
    // Stable with too few requests of its own: no comparison (and no verdict from it).
    expect(analyse(spec, inBucket(100, 5, 7), inBucket(5, 0, 5), AT).verdict).toBe("pass");
  });

  it("compareWithStable: a drop of exactly maxSuccessRateDrop is allowed", () => {
    const spec = analysisSpec({ minRequests: 20, compareWithStable: { maxSuccessRateDrop: 0.01 } });
    expect(analyse(spec, inBucket(100, 1, 5), inBucket(100, 0, 5), AT).verdict).toBe("pass");
  });

  it("the thresholds and comparison are judged only with enough canary data", () => {
    const spec = analysisSpec({ minRequests: 50, successRate: { min: 0.99 }, compareWithStable: { maxSuccessRateDrop: 0 } });
    const r = analyse(spec, inBucket(49, 49, 5), inBucket(1000, 0, 5), AT);
    expect(r.verdict).toBe("nodata");
    expect(r.reasons).toHaveLength(1);
  });
});

describe("the rollout schema's analysis defaults", () => {
  it("fills interval, threshold, minRequests and onNoData", () => {
    expect(analysisSpec()).toEqual({ interval: "10s", threshold: 2, minRequests: 20, onNoData: "hold" });
  });
});

// ------------------------------------------------------------------ weights

function routeOf(input: Omit<RouteInput, "hostnames">): Route {
  return parseRoute({ hostnames: ["checkout.shop"], ...input });
}
const oneRule = (backendRefs: Array<Record<string, unknown>>, name?: string) => routeOf({ rules: [{ ...(name ? { name } : {}), backendRefs }] } as Omit<RouteInput, "hostnames">);
const spec = (over: Record<string, unknown> = {}): RolloutSpec => rolloutSchema.parse({ name: "r", route: "checkout", rule: "default", stable: STABLE, canary: CANARY, steps: [{ setWeight: 10 }], ...over });

describe("ruleIndex", () => {
  it("finds a rule by its name, or by rule-<index> when it has none", () => {
    const route = routeOf({ rules: [{ backendRefs: [{ ...STABLE }] }, { name: "api", backendRefs: [{ ...STABLE }] }] } as Omit<RouteInput, "hostnames">);
    expect(ruleIndex(route, "rule-0")).toBe(0);
    expect(ruleIndex(route, "api")).toBe(1);
    expect(ruleIndex(route, "rule-1")).toBe(-1); // it has a name
    expect(ruleIndex(route, "missing")).toBe(-1);
  });
});

describe("withCanaryWeight", () => {
  it("adds the canary when absent and splits 100 between stable and canary, without touching the input", () => {
    const route = oneRule([{ ...STABLE, weight: 100 }], "default");
    const before = structuredClone(route);
    const next = withCanaryWeight(route, spec(), 5);
    expect(route).toEqual(before);
    expect(next.rules[0]?.backendRefs).toEqual([
      { ...STABLE, weight: 95 },
      { ...CANARY, weight: 5 },
    ]);
    // Everything else of the route is kept.
    expect({ ...next, rules: [] }).toEqual({ ...route, rules: [] });
  });

  it("updates a present canary in place, and leaves zero-weight bystanders alone", () => {
    const other = { cluster: "north", service: "legacy.shop.svc.cluster.local", port: 8080, weight: 0 };
    const route = oneRule([{ ...CANARY, weight: 40 }, other, { ...STABLE, weight: 60 }], "default");
    const next = withCanaryWeight(route, spec(), 100);
    expect(next.rules[0]?.backendRefs).toEqual([{ ...CANARY, weight: 100 }, other, { ...STABLE, weight: 0 }]);
    expect(withCanaryWeight(route, spec(), 0).rules[0]?.backendRefs).toEqual([{ ...CANARY, weight: 0 }, other, { ...STABLE, weight: 100 }]);
  });

  it("tells the backends apart by cluster, service and port", () => {
    const route = oneRule([{ ...STABLE, weight: 100 }, { ...CANARY, port: 9090, weight: 0 }], "default");
    const next = withCanaryWeight(route, spec(), 30);
    expect(next.rules[0]?.backendRefs).toEqual([{ ...STABLE, weight: 70 }, { ...CANARY, port: 9090, weight: 0 }, { ...CANARY, weight: 30 }]);
  });

  it("throws when the rule or the stable backend is gone", () => {
    expect(() => withCanaryWeight(oneRule([{ ...STABLE, weight: 1 }], "other"), spec(), 5)).toThrow(/rule default/);
    expect(() => withCanaryWeight(oneRule([{ ...CANARY, weight: 1 }], "default"), spec(), 5)).toThrow(/stable backend/);
  });
});

describe("currentCanaryWeight", () => {
  it("is the canary's share of the rule's total, as a percentage", () => {
    expect(currentCanaryWeight(oneRule([{ ...STABLE, weight: 900 }, { ...CANARY, weight: 100 }], "default"), spec())).toBe(10);
    expect(currentCanaryWeight(oneRule([{ ...STABLE, weight: 2 }, { ...CANARY, weight: 1 }], "default"), spec())).toBe(33);
    expect(currentCanaryWeight(oneRule([{ ...STABLE, weight: 0 }, { ...CANARY, weight: 7 }], "default"), spec())).toBe(100);
  });
  it("is 0 when the canary is absent, every weight is 0, or the rule is missing", () => {
    expect(currentCanaryWeight(oneRule([{ ...STABLE, weight: 100 }], "default"), spec())).toBe(0);
    expect(currentCanaryWeight(oneRule([{ ...STABLE, weight: 0 }, { ...CANARY, weight: 0 }], "default"), spec())).toBe(0);
    expect(currentCanaryWeight(oneRule([{ ...CANARY, weight: 100 }], "other"), spec())).toBe(0);
  });
});

describe("rolloutFitErrors", () => {
  it("accepts a rule holding stable (canary present or not, bystanders at 0)", () => {
    expect(rolloutFitErrors(oneRule([{ ...STABLE, weight: 100 }], "default"), spec())).toEqual([]);
    expect(rolloutFitErrors(oneRule([{ ...STABLE, weight: 90 }, { ...CANARY, weight: 10 }], "default"), spec())).toEqual([]);
    expect(rolloutFitErrors(oneRule([{ ...STABLE, weight: 100 }, { cluster: "north", service: "x.svc", weight: 0 }], "default"), spec())).toEqual([]);
  });
  it("reports a missing rule, a missing stable, and other weighted backends, with their paths", () => {
    expect(rolloutFitErrors(oneRule([{ ...STABLE, weight: 100 }], "other"), spec()).map((e) => e.path)).toEqual(["rule"]);
    expect(rolloutFitErrors(oneRule([{ ...STABLE, port: 9090, weight: 0 }, { ...CANARY, weight: 100 }], "default"), spec()).map((e) => e.path)).toEqual(["stable"]);
    // The same service on another port is another backend: not stable, and a weighted bystander.
    expect(rolloutFitErrors(oneRule([{ ...STABLE, port: 9090, weight: 100 }], "default"), spec()).map((e) => e.path)).toEqual(["stable", "rule"]);
    const mixed = rolloutFitErrors(oneRule([{ ...STABLE, weight: 50 }, { cluster: "north", service: "x.svc", weight: 50 }], "default"), spec());
    expect(mixed.map((e) => e.path)).toEqual(["rule"]);
    expect(mixed[0]?.message).toMatch(/north\/x\.svc/);
  });
});
