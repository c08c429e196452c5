// The CLI's pure parts: exposition parsing and deltas, histogram quantiles, stat rows, the unified
// diff, and what `check` can tell of an inline JWK set.
import { describe, expect, it } from "vitest";
import { bundleFromStatus, inspectJwks, type BundleStatus } from "../../src/cli/check.ts";
import { unifiedDiff, stableJson } from "../../src/cli/diff.ts";
import { bar, table } from "../../src/cli/output.ts";
import { deltas, histogramQuantile, parsePrometheusText } from "../../src/cli/prom.ts";
import { statRows } from "../../src/cli/stat.ts";

describe("prometheus text", () => {
  it("parses samples with escaped label values, skipping comments", () => {
    const s = parsePrometheusText('# HELP x y\n# TYPE x counter\nx{a="1",b="q\\"uote\\\\back\\nnl"} 3\ny 4.5\nz{le="+Inf"} +Inf\n');
    expect(s).toEqual([
      { name: "x", labels: { a: "1", b: 'q"uote\\back\nnl' }, value: 3 },
      { name: "y", labels: {}, value: 4.5 },
      { name: "z", labels: { le: "+Inf" }, value: Infinity },
    ]);
  });

  it("deltas between scrapes; a counter that went down was reset", () => {
    const a = parsePrometheusText('x{k="1"} 10\nx{k="2"} 5\n');
    const b = parsePrometheusText('x{k="1"} 15\nx{k="2"} 2\nx{k="3"} 7\n');
    expect(deltas(a, b).map((s) => s.value)).toEqual([5, 2, 7]);
  });
});

describe("histogramQuantile", () => {
  const cum = (pairs: Array<[number, number]>) => pairs.map(([le, count]) => ({ le, count }));
  it("interpolates within the bucket holding the rank, from 0 for the first", () => {
    expect(histogramQuantile(0.5, cum([[1, 0], [10, 100], [Infinity, 100]]))).toBeCloseTo(5.5);
    expect(histogramQuantile(0.5, cum([[10, 100], [Infinity, 100]]))).toBeCloseTo(5);
    expect(histogramQuantile(0.99, cum([[10, 50], [100, 100], [Infinity, 100]]))).toBeCloseTo(98.2);
  });
  it("answers the highest finite bound for a rank in +Inf, and null for no observations", () => {
    expect(histogramQuantile(0.99, cum([[10, 1], [Infinity, 100]]))).toBe(10);
    expect(histogramQuantile(0.5, cum([[10, 0], [Infinity, 0]]))).toBeNull();
  });
});

describe("statRows", () => {
  it("groups by route and destination cluster over every other label", () => {
    const samples = parsePrometheusText(
      [
        'request_total{route_name="r",dst_target_cluster="east",src_cluster="a"} 6',
        'request_total{route_name="r",dst_target_cluster="east",src_cluster="b"} 4',
        'response_total{route_name="r",dst_target_cluster="east",classification="success",status_code="200"} 9',
        'response_total{route_name="r",dst_target_cluster="east",classification="failure",status_code="503"} 1',
        'response_latency_ms_bucket{route_name="r",dst_target_cluster="east",le="10"} 10',
        'response_latency_ms_bucket{route_name="r",dst_target_cluster="east",le="+Inf"} 10',
        'gateway_alive{target_cluster_name="east"} 1',
      ].join("\n"),
    );
    const [row, idle] = statRows(samples, 2, [{ route: "s", cluster: "west" }]);
    expect(row).toMatchObject({ route: "r", cluster: "east", requests: 10, successes: 9, failures: 1, successRate: 0.9, rps: 5 });
    expect(row?.latencyMsP50).toBeCloseTo(5);
    expect(idle).toMatchObject({ route: "s", cluster: "west", requests: 0, successRate: null, latencyMsP99: null });
  });
});

describe("unifiedDiff", () => {
  it("hunks with three lines of context, - before +", () => {
    const a = stableJson({ a: 1, b: [1, 2, 3, 4, 5, 6, 7, 8], c: "x" });
    const b = stableJson({ a: 1, b: [1, 2, 3, 4, 5, 6, 7, 9], c: "y" });
    const d = unifiedDiff(a, b, { from: "old", to: "new" });
    expect(d.slice(0, 3)).toEqual(["--- old", "+++ new", "@@ -8,7 +8,7 @@"]);
    expect(d).toContain("-    8");
    expect(d).toContain("+    9");
    expect(d).toContain('-  "c": "x"');
    expect(d.indexOf("-    8")).toBeLessThan(d.indexOf("+    9"));
  });
  it("is empty for equal texts, and all additions from nothing", () => {
    expect(unifiedDiff("x\ny", "x\ny", { from: "a", to: "b" })).toEqual([]);
    expect(unifiedDiff("", "x\ny", { from: "a", to: "b" })).toEqual(["--- a", "+++ b", "@@ -0,0 +1,2 @@", "+x", "+y"]);
  });
  it("separate hunks for changes far apart", () => {
    const a = Array.from({ length: 30 }, (_, i) => `l${i}`).join("\n");
    const b = a.replace("l2\n", "L2\n").replace("l27", "L27");
    expect(unifiedDiff(a, b, { from: "a", to: "b" }).filter((l) => l.startsWith("@@"))).toEqual(["@@ -1,6 +1,6 @@", "@@ -25,6 +25,6 @@"]);
  });
});

describe("inspectJwks", () => {
  it("fails a set with no usable key, passes one with a kid'd key of the right use", () => {
    expect(inspectJwks({ keys: [{ kty: "EC", kid: "a", use: "x509-svid" }] }, "jwt-svid").status).toBe("fail");
    expect(inspectJwks({ keys: [{ kty: "EC", use: "jwt-svid" }] }, "jwt-svid").status).toBe("fail");
    expect(inspectJwks({ keys: [{ kty: "EC", kid: "a", use: "jwt-svid" }] }, "jwt-svid")).toEqual({ status: "pass", reason: "1 jwt-svid key inline (kid a)" });
    expect(inspectJwks({ keys: [{ kty: "RSA", kid: "k" }] }, "kubernetes")).toEqual({ status: "pass", reason: "1 signing key inline (kid k)" });
  });
});

describe("bundleFromStatus (a gateway serving GET /_isthmus/v1/bundles)", () => {
  const base: BundleStatus = { cluster: "east", trustDomain: "east.example", kind: "jwt-svid", source: "x", loaded: true, keys: 2, loadedAt: "2026-01-01T00:00:00.000Z", nextRefreshAt: null, lastError: null };
  const now = Date.parse("2026-01-02T00:00:00.000Z");
  it("passes loaded bundles, warns on a failed refresh or a close expiry, fails unloaded or expired ones", () => {
    expect(bundleFromStatus([base], now)).toEqual({ status: "pass", reason: "jwt-svid bundle: 2 keys, loaded 2026-01-01T00:00:00.000Z" });
    expect(bundleFromStatus([base, { ...base, kind: "kubernetes", issuer: "https://i", lastError: "HTTP 500" }], now).status).toBe("warn");
    expect(bundleFromStatus([{ ...base, expiresAt: "2026-01-03T00:00:00.000Z" }], now)).toMatchObject({ status: "warn", reason: expect.stringContaining("expires at 2026-01-03") });
    expect(bundleFromStatus([{ ...base, expiresAt: "2026-01-01T12:00:00.000Z" }], now).status).toBe("fail");
    expect(bundleFromStatus([{ ...base, loaded: false, keys: 0, lastError: "ECONNREFUSED" }, base], now)).toMatchObject({ status: "fail", reason: expect.stringContaining("not loaded: ECONNREFUSED") });
  });
});

describe("output", () => {
  it("bars and aligned tables", () => {
    expect(bar(0.9)).toBe("██████████████████░░");
    expect(bar(0)).toBe("░".repeat(20));
    expect(table(["A", "BB"], [["long", "x"]])).toEqual(["A      BB", "long   x"]);
  });
});
