// Golden metrics end to end: the real Node gateway in front of real upstreams, real Prometheus
// servers standing for the control planes of "east" and "west" (remote-write receivers, and a
// scraper of the gateway), real Redis for fleet-wide totals. Every wait is for a state with a
// deadline (a PromQL answer, a probe state, a store total), never a sleep.
import { randomBytes } from "node:crypto";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Agent, request } from "undici";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import type { ClusterInput, RouteInput } from "../../src/config/schemas.ts";
import { parseCluster, parseRoute } from "../../src/config/validate.ts";
import { startNodeGateway, type RunningGateway } from "../../src/runtime/node.ts";
import { MemoryStore } from "../../src/store/memory.ts";
import { RedisStore } from "../../src/store/redis.ts";
import type { Store } from "../../src/store/types.ts";
import type { ProbeState } from "../../src/telemetry/health-probes.ts";
import { LATENCY_BUCKETS_MS, seriesKey, type MetricBatch } from "../../src/telemetry/metric-batch.ts";
import { silentLogger } from "../../src/util/log.ts";
import { parseExposition, promtoolCheckMetrics, startPrometheus, sumOf, type ParsedSample, type PrometheusServer } from "../helpers/prometheus.ts";
import { startRedis, uniquePrefix, type RedisServer } from "../helpers/redis-server.ts";
import { refusedPort, startUpstream, type Upstream } from "../helpers/upstream.ts";

const TOKEN = "metrics-federation-test-token-0123456789";
const SERVICE = "checkout.shop.svc.cluster.local";
const LEDGER = "ledger.shop.svc.cluster.local";
const LINKERD_LE = [...LATENCY_BUCKETS_MS.map(String), "+Inf"];

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});
const client = new Agent({ connections: 64, keepAliveTimeout: 10_000 });
afterAll(async () => {
  await client.close();
});

// ------------------------------------------------------------------ helpers

async function upstream(name: string): Promise<Upstream> {
  const u = await startUpstream(name);
  cleanups.push(() => u.close());
  return u;
}

function openRoute(hostnames: string[], backends: Array<{ cluster: string; weight?: number; service?: string }>): RouteInput {
  return {
    hostnames,
    authorization: { unauthenticated: true },
    rules: [{ name: "default", backendRefs: backends.map((b) => ({ cluster: b.cluster, service: b.service ?? SERVICE, port: 8080, weight: b.weight ?? 1 })) }],
  };
}

interface GatewayOptions {
  clusters: Record<string, { endpoint: string } & Partial<ClusterInput>>;
  routes?: Record<string, RouteInput>;
  redisUrl?: string;
  redisPrefix?: string;
  gatewayName?: string;
  /** Default: 1 h, so only explicit flushes (and scrapes) move deltas. */
  metricsFlushMs?: number;
  /** Default: 1 s between probes of each cluster. */
  probeIntervalMs?: number;
  probeTimeoutMs?: number;
}

async function gateway(o: GatewayOptions): Promise<RunningGateway> {
  const gw = await startNodeGateway({
    port: 0,
    hostname: "127.0.0.1",
    adminToken: TOKEN,
    log: silentLogger,
    redisUrl: o.redisUrl,
    redisPrefix: o.redisPrefix,
    gatewayName: o.gatewayName,
    metricsFlushMs: o.metricsFlushMs ?? 3_600_000,
    // Pushes happen when a test calls pushMetrics(), never on a timer.
    remoteWriteIntervalMs: 3_600_000,
    probeIntervalMs: o.probeIntervalMs ?? 1000,
    probeTimeoutMs: o.probeTimeoutMs,
    config: {
      clusters: Object.fromEntries(Object.entries(o.clusters).map(([name, c]) => [name, parseCluster({ trustDomain: `${name}.example`, ...c }, ["clusters", name])])),
      routes: Object.fromEntries(Object.entries(o.routes ?? {}).map(([name, r]) => [name, parseRoute(r, ["routes", name])])),
    },
  });
  cleanups.push(() => gw.close());
  return gw;
}

interface Sent {
  status: number;
  cluster: string;
}

async function send(gw: RunningGateway, host: string, path = "/", headers: Record<string, string> = {}): Promise<Sent> {
  const res = await request(`${gw.url}${path}`, { dispatcher: client, headers: { ...headers, host } });
  const text = await res.body.text();
  let cluster = "-";
  try {
    cluster = (JSON.parse(text) as { cluster?: string }).cluster ?? "-";
  } catch {
    // a gateway problem document or a fixed body
  }
  return { status: res.statusCode, cluster };
}

/** Sends `n` requests with at most `limit` in flight. */
async function sendMany(n: number, limit: number, fn: (i: number) => Promise<Sent>): Promise<Sent[]> {
  const out: Sent[] = new Array<Sent>(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, limit) }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

async function admin(gw: RunningGateway, path: string, token: string | null = TOKEN): Promise<{ status: number; text: string; json: unknown }> {
  const res = await request(`${gw.url}/_isthmus/v1${path}`, { dispatcher: client, headers: token ? { authorization: `Bearer ${token}` } : {} });
  const text = await res.body.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    // text exposition
  }
  return { status: res.statusCode, text, json };
}

async function scrape(gw: RunningGateway, query = ""): Promise<ParsedSample[]> {
  const r = await admin(gw, `/metrics${query}`);
  expect(r.status, r.text).toBe(200);
  return parseExposition(r.text).samples;
}

/** Polls a condition (a state to reach, not a duration to wait) until it holds or the deadline passes. */
async function until<T>(what: string, probe: () => Promise<T> | T, ok: (v: T) => boolean, deadlineMs = 10_000): Promise<T> {
  const start = performance.now();
  let last: T | undefined;
  for (;;) {
    last = await probe();
    if (ok(last)) return last;
    if (performance.now() - start > deadlineMs) throw new Error(`not within ${deadlineMs} ms: ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The sum of an instant vector, or null when it is empty. */
async function promSum(prom: PrometheusServer, promql: string): Promise<number | null> {
  const v = await prom.query(promql);
  return v.length === 0 ? null : v.reduce((a, s) => a + s.value, 0);
}

function tally(results: Sent[]): Map<string, { total: number; failures: number }> {
  const m = new Map<string, { total: number; failures: number }>();
  for (const r of results) {
    const t = m.get(r.cluster) ?? { total: 0, failures: 0 };
    t.total++;
    if (r.status >= 500) t.failures++;
    m.set(r.cluster, t);
  }
  return m;
}

/** Series identity without the histogram's `le`, and the family name without _bucket/_sum/_count. */
function seriesIds(samples: readonly ParsedSample[]): Set<string> {
  return new Set(
    samples.map((s) => {
      const { le: _le, ...labels } = s.labels;
      return seriesKey(s.name.replace(/_(bucket|sum|count)$/, ""), labels);
    }),
  );
}

const token = () => randomBytes(8).toString("hex");

// ------------------------------------------------------------------ remote write to two Prometheus servers

describe("remote write: each cluster's Prometheus gets its slice", () => {
  let promEast: PrometheusServer;
  let promWest: PrometheusServer;
  beforeAll(async () => {
    [promEast, promWest] = await Promise.all([startPrometheus(), startPrometheus()]);
  });
  afterAll(async () => {
    await Promise.all([promEast?.stop(), promWest?.stop()]);
  });

  it("pushes exactly the requests each cluster took part in, cumulative across pushes, and nothing about the others", async () => {
    const [east, west, north] = await Promise.all([upstream("east"), upstream("west"), upstream("north")]);
    const G = `fed-${token()}`;
    const gw = await gateway({
      gatewayName: G,
      clusters: {
        east: { endpoint: east.url, metrics: { remoteWrite: { url: promEast.remoteWriteUrl } } },
        west: { endpoint: west.url, metrics: { remoteWrite: { url: promWest.remoteWriteUrl } } },
        north: { endpoint: north.url },
      },
      routes: {
        checkout: openRoute(["checkout.shop"], [{ cluster: "east", weight: 70 }, { cluster: "west", weight: 30 }]),
        ledger: openRoute(["ledger.shop"], [{ cluster: "west", service: LEDGER }]),
      },
    });

    // Round 1: 70/30 traffic and west-only traffic, then 5 answers of 500 from east, one request at a
    // time (fewer than the breaker's 7 consecutive failures, so east keeps its share afterwards).
    const r1 = [
      ...(await sendMany(100, 16, () => send(gw, "checkout.shop"))),
      ...(await sendMany(40, 16, () => send(gw, "ledger.shop"))),
    ];
    east.setBehaviour({ status: 500 });
    const burst: Sent[] = [];
    while (burst.filter((r) => r.cluster === "east").length < 5) burst.push(await send(gw, "checkout.shop"));
    east.setBehaviour({});
    const t1 = tally([...r1, ...burst]);
    const east500 = burst.filter((r) => r.cluster === "east" && r.status === 500).length;
    expect(east500).toBe(5);
    expect(t1.get("east")?.total).toBe(east.requests);
    expect(t1.get("west")?.total).toBe(west.requests);
    expect(north.requests).toBe(0);
    await until("east and west probed alive", () => [gw.prober.state("east")?.alive, gw.prober.state("west")?.alive], (v) => v.every((a) => a === true));

    await gw.pushMetrics();
    expect(gw.federation.lastResults.get("east")).toMatchObject({ ok: true, attempts: 1 });
    expect(gw.federation.lastResults.get("west")).toMatchObject({ ok: true, attempts: 1 });
    expect(gw.federation.lastResults.has("north")).toBe(false); // no remote-write URL

    // East's Prometheus: exactly what east took part in.
    const eastReq = await until("east's request_total arrives", () => promSum(promEast, `sum(request_total{gateway="${G}",dst_target_cluster="east"})`), (v) => v === east.requests);
    expect(eastReq).toBe(east.requests);
    expect(await promSum(promEast, `sum(request_total{gateway="${G}",route_name="checkout"})`)).toBe(east.requests);
    expect(await promSum(promEast, `sum(response_total{gateway="${G}",dst_target_cluster="east"})`)).toBe(east.requests);
    expect(await promSum(promEast, `sum(response_total{gateway="${G}",dst_target_cluster="east",classification="failure"})`)).toBe(east500);
    expect(await promSum(promEast, `sum(response_total{gateway="${G}",dst_target_cluster="east",classification="failure",status_code="500"})`)).toBe(east500);
    expect(await promSum(promEast, `sum(response_total{gateway="${G}",dst_target_cluster="east",classification="success",status_code="200"})`)).toBe(east.requests - east500);
    const eastSeries = await promEast.query(`{gateway="${G}"}`);
    expect(eastSeries.length).toBeGreaterThan(0);
    for (const s of eastSeries) {
      expect(s.metric.gateway).toBe(G);
      expect([s.metric.dst_target_cluster, s.metric.src_cluster, s.metric.target_cluster_name]).toContain("east");
    }
    const reqLabels = (await promEast.query(`request_total{gateway="${G}"}`)).map((s) => s.metric);
    expect(reqLabels).toEqual([
      // No src_cluster: the caller was not identified (an empty label is no label).
      { __name__: "request_total", gateway: G, direction: "outbound", route_name: "checkout", dst_target_cluster: "east", dst_target_service: SERVICE },
    ]);
    // Linkerd's histogram, with Linkerd's bucket bounds.
    const buckets = await promEast.query(`response_latency_ms_bucket{gateway="${G}",dst_target_cluster="east"}`);
    expect(buckets.map((b) => b.metric.le).sort()).toEqual([...LINKERD_LE].sort());
    expect(buckets.find((b) => b.metric.le === "+Inf")?.value).toBe(east.requests);
    expect(await promSum(promEast, `sum(response_latency_ms_count{gateway="${G}",dst_target_cluster="east"})`)).toBe(east.requests);
    expect(await promSum(promEast, `sum(response_latency_ms_sum{gateway="${G}",dst_target_cluster="east"})`)).toBeGreaterThan(0);
    // Its own probe gauge, not the others'.
    expect(await promSum(promEast, `gateway_alive{gateway="${G}",target_cluster_name="east"}`)).toBe(1);
    expect(await promSum(promEast, `sum(gateway_probe_latency_ms_count{gateway="${G}",target_cluster_name="east"})`)).toBeGreaterThan(0);

    // West's Prometheus: both routes' west traffic.
    await until("west's request_total arrives", () => promSum(promWest, `sum(request_total{gateway="${G}",dst_target_cluster="west"})`), (v) => v === west.requests);
    const westCheckout = t1.get("west")?.total ?? 0;
    expect(await promSum(promWest, `sum(request_total{gateway="${G}",route_name="ledger"})`)).toBe(40);
    expect(await promSum(promWest, `sum(request_total{gateway="${G}",route_name="checkout"})`)).toBe(westCheckout - 40);
    expect(await promSum(promWest, `sum(response_total{gateway="${G}",classification="failure"})`)).toBeNull();
    expect(await promSum(promWest, `gateway_alive{gateway="${G}",target_cluster_name="west"}`)).toBe(1);

    // Nothing about the other clusters: each write request is one POST, so both slices have landed.
    for (const q of ['count({dst_target_cluster="east"})', 'count({target_cluster_name="east"})', 'count({src_cluster="east"})', 'count({dst_target_cluster="north"})', 'count({target_cluster_name="north"})']) {
      expect(await promWest.query(q), `west: ${q}`).toEqual([]);
    }
    for (const q of ['count({dst_target_cluster="west"})', 'count({target_cluster_name="west"})', 'count({dst_target_cluster="north"})', 'count({target_cluster_name="north"})', 'count({route_name="ledger"})']) {
      expect(await promEast.query(q), `east: ${q}`).toEqual([]);
    }

    // Round 2: more traffic, a second push: cumulative totals, nothing counted twice.
    await sendMany(50, 16, () => send(gw, "checkout.shop"));
    await gw.pushMetrics();
    expect(east.requests).toBeGreaterThan(eastReq ?? 0);
    await until("east's second push arrives", () => promSum(promEast, `sum(request_total{gateway="${G}",dst_target_cluster="east"})`), (v) => v === east.requests);
    await until("west's second push arrives", () => promSum(promWest, `sum(request_total{gateway="${G}",dst_target_cluster="west"})`), (v) => v === west.requests);
    expect(await promSum(promEast, `sum(response_total{gateway="${G}",dst_target_cluster="east",classification="failure"})`)).toBe(east500);
    expect(await promSum(promEast, `sum(response_latency_ms_count{gateway="${G}",dst_target_cluster="east"})`)).toBe(east.requests);
    // A re-push without new traffic changes nothing.
    await gw.pushMetrics();
    expect(gw.federation.lastResults.get("east")?.ok).toBe(true);
    const samplesSeen = await until(
      "the re-push landed (two samples in the last minute of east's series)",
      () => promSum(promEast, `count_over_time(request_total{gateway="${G}",dst_target_cluster="east"}[1m])`),
      (v) => v === 3,
    );
    expect(samplesSeen).toBe(3);
    expect(await promSum(promEast, `sum(request_total{gateway="${G}",dst_target_cluster="east"})`)).toBe(east.requests);
    expect(await promWest.query('count({dst_target_cluster="east"})')).toEqual([]);
  });

  it("a cluster whose receiver is down neither delays nor breaks the push to the others", async () => {
    const [east, west, south] = await Promise.all([upstream("east"), upstream("west"), upstream("south")]);
    const G = `down-${token()}`;
    const gw = await gateway({
      gatewayName: G,
      clusters: {
        east: { endpoint: east.url, metrics: { remoteWrite: { url: promEast.remoteWriteUrl } } },
        west: { endpoint: west.url, metrics: { remoteWrite: { url: promWest.remoteWriteUrl } } },
        south: { endpoint: south.url, metrics: { remoteWrite: { url: `http://127.0.0.1:${await refusedPort()}/api/v1/write` } } },
      },
      routes: { checkout: openRoute(["checkout.shop"], [{ cluster: "east" }, { cluster: "west" }, { cluster: "south" }]) },
    });
    await sendMany(90, 16, () => send(gw, "checkout.shop"));
    expect(south.requests).toBeGreaterThan(0);

    gw.federation.lastResults.clear();
    let pushDone = false;
    const push = gw.pushMetrics().then(() => (pushDone = true));
    // East and west finish on their own, while south is still retrying (its backoff alone is >= 375 ms).
    await until("east and west pushed", () => gw.federation.lastResults.has("east") && gw.federation.lastResults.has("west"), (v) => v, 5000);
    expect(gw.federation.lastResults.has("south")).toBe(false);
    expect(pushDone).toBe(false);
    await push;
    expect(gw.federation.lastResults.get("east")).toMatchObject({ ok: true, attempts: 1 });
    expect(gw.federation.lastResults.get("west")).toMatchObject({ ok: true, attempts: 1 });
    expect(gw.federation.lastResults.get("south")).toMatchObject({ ok: false, attempts: 3 });
    expect(gw.federation.lastResults.get("south")?.error).toBeTruthy();

    await until("east's data arrives", () => promSum(promEast, `sum(request_total{gateway="${G}"})`), (v) => v === east.requests);
    await until("west's data arrives", () => promSum(promWest, `sum(request_total{gateway="${G}"})`), (v) => v === west.requests);
    expect(await promEast.query('count({dst_target_cluster="south"})')).toEqual([]);
    expect(await promWest.query('count({dst_target_cluster="south"})')).toEqual([]);
  });
});

// ------------------------------------------------------------------ fleet-wide totals

describe("fleet-wide totals in the store", () => {
  it("two instances sharing Redis: a scrape of either shows the sum of both instances' traffic, every time", async () => {
    const [east, west] = await Promise.all([upstream("east"), upstream("west")]);
    const prefix = uniquePrefix("metrics-two-instances");
    const redisUrl = inject("redisUrl");
    const clusters = { east: { endpoint: east.url }, west: { endpoint: west.url } };
    const a = await gateway({ redisUrl, redisPrefix: prefix, clusters, routes: { checkout: openRoute(["checkout.shop"], [{ cluster: "east" }, { cluster: "west" }]) } });
    const b = await gateway({ redisUrl, redisPrefix: prefix, clusters });
    await until("instance B serves the route", () => b.routing.current.routes.has("checkout"), (v) => v, 5000);

    const viaA = await sendMany(120, 16, () => send(a, "checkout.shop"));
    west.setBehaviour({ status: 503 });
    const viaB = await sendMany(80, 16, () => send(b, "checkout.shop"));
    west.setBehaviour({});
    expect([...viaA, ...viaB].filter((r) => r.status >= 500).every((r) => r.cluster === "west")).toBe(true);
    const west503 = viaB.filter((r) => r.cluster === "west").length;

    // B's deltas reach the store (its timer would do this every 5 s); a scrape of A flushes A.
    expect(await b.flusher.flush()).toBe(true);
    const check = (samples: ParsedSample[]) => {
      expect(sumOf(samples, "request_total")).toBe(200);
      expect(sumOf(samples, "request_total", { dst_target_cluster: "east" })).toBe(east.requests);
      expect(sumOf(samples, "request_total", { dst_target_cluster: "west" })).toBe(west.requests);
      expect(sumOf(samples, "response_total", { classification: "failure" })).toBe(west503);
      expect(sumOf(samples, "response_total", { status_code: "503" })).toBe(west503);
      expect(sumOf(samples, "response_latency_ms_count")).toBe(200);
      expect(sumOf(samples, "response_latency_ms_bucket", { le: "+Inf" })).toBe(200);
    };
    const fromA = await scrape(a);
    check(fromA);
    const fromB = await scrape(b);
    check(fromB);
    // A second scrape never double counts.
    check(await scrape(a));
    check(await scrape(b));
    const totals = await a.store.readMetrics();
    // request_total and response_latency_ms per cluster, response_total per cluster and status.
    expect(Object.keys(totals.series).sort()).toHaveLength(7);
  });

  for (const kind of ["redis", "memory"] as const) {
    it(`a flush retried with the same id is applied once (${kind} store)`, async () => {
      const store: Store = kind === "redis" ? new RedisStore({ url: inject("redisUrl"), prefix: uniquePrefix("metrics-idempotent") }) : new MemoryStore();
      cleanups.push(() => store.close());
      if (store instanceof RedisStore) await store.connect();
      const labels = { route_name: "checkout", dst_target_cluster: "east" };
      const c = seriesKey("request_total", labels);
      const h = seriesKey("response_latency_ms", labels);
      const batch: MetricBatch = {
        series: { [c]: { name: "request_total", kind: "counter", labels }, [h]: { name: "response_latency_ms", kind: "histogram", labels } },
        values: { [`${c}\t`]: 7, [`${h}\tb0`]: 3, [`${h}\tb5`]: 4, [`${h}\tsum`]: 12.5, [`${h}\tcount`]: 7 },
      };
      expect(await store.applyMetricDeltas("flush-1", batch)).toBe(true);
      expect(await store.applyMetricDeltas("flush-1", batch)).toBe(false);
      // Concurrent retries of one id: still applied once.
      const again = await Promise.all(Array.from({ length: 5 }, () => store.applyMetricDeltas("flush-2", batch)));
      expect(again.filter(Boolean)).toHaveLength(1);
      const got = await store.readMetrics();
      expect(got.series).toEqual(batch.series);
      expect(got.values).toEqual({ [`${c}\t`]: 14, [`${h}\tb0`]: 6, [`${h}\tb5`]: 8, [`${h}\tsum`]: 25, [`${h}\tcount`]: 14 });
    });
  }
});

// ------------------------------------------------------------------ scraping

describe("scraping /_isthmus/v1/metrics", () => {
  it("is parsed by a real Prometheus (bearer token, ?cluster=) and passes promtool's parser", async () => {
    const [east, west] = await Promise.all([upstream("east"), upstream("west")]);
    const gw = await gateway({
      clusters: { east: { endpoint: east.url }, west: { endpoint: west.url } },
      routes: { checkout: openRoute(["checkout.shop"], [{ cluster: "east" }, { cluster: "west" }]) },
    });
    await sendMany(60, 16, () => send(gw, "checkout.shop"));
    east.setBehaviour({ status: 502 });
    await sendMany(20, 16, () => send(gw, "checkout.shop"));
    east.setBehaviour({});
    await until("east and west probed", () => [gw.prober.state("east")?.alive, gw.prober.state("west")?.alive], (v) => v.every((a) => a === true));

    const prom = await startPrometheus({ scrape: { target: `127.0.0.1:${gw.port}`, bearerToken: TOKEN, cluster: "east" } });
    cleanups.push(() => prom.stop());
    await until("Prometheus scraped the gateway", () => prom.query('up{job="isthmus"} == 1'), (v) => v.length === 1);
    const eastReq = await until("request_total scraped", () => promSum(prom, 'sum(request_total{job="isthmus",dst_target_cluster="east"})'), (v) => v !== null);
    expect(eastReq).toBe(east.requests);
    expect(await promSum(prom, 'sum(response_total{job="isthmus",classification="failure",status_code="502"})')).toBeGreaterThan(0);
    expect(await promSum(prom, 'gateway_alive{job="isthmus",target_cluster_name="east"}')).toBe(1);
    // ?cluster=east: west's series were not in the scrape.
    expect(await prom.query('count({job="isthmus",dst_target_cluster="west"})')).toEqual([]);
    expect(await prom.query('count({job="isthmus",target_cluster_name="west"})')).toEqual([]);
    // Histograms arrive as histograms: histogram_quantile works on them.
    const p95 = await prom.query('histogram_quantile(0.95, sum by (le) (response_latency_ms_bucket{job="isthmus"}))');
    expect(p95).toHaveLength(1);
    expect(Number.isFinite(p95[0]?.value)).toBe(true);

    for (const query of ["", "?cluster=east"]) {
      const text = (await admin(gw, `/metrics${query}`)).text;
      const check = await promtoolCheckMetrics(text);
      expect(check.parseError, `promtool could not parse /metrics${query}:\n${check.stderr}\n${text}`).toBeNull();
      expect([0, 3]).toContain(check.exitCode);
      // Lint findings only (exit 3), and only about Linkerd's deliberate `_ms` names.
      if (check.exitCode === 3) expect(check.lintProblems.length).toBeGreaterThan(0);
      for (const p of check.lintProblems) expect(p).toMatch(/^(response_latency_ms|gateway_probe_latency_ms) metric names should not contain abbreviated units$/);
    }
  });

  it("?cluster= keeps only the series the cluster took part in; unknown -> 404, bad name -> 400, no token -> 401", async () => {
    const [east, west, north] = await Promise.all([upstream("east"), upstream("west"), upstream("north")]);
    const gw = await gateway({
      clusters: { east: { endpoint: east.url }, west: { endpoint: west.url }, north: { endpoint: north.url } },
      routes: {
        checkout: openRoute(["checkout.shop"], [{ cluster: "east" }, { cluster: "west" }]),
        ledger: openRoute(["ledger.shop"], [{ cluster: "west" }]),
      },
    });
    await sendMany(40, 16, () => send(gw, "checkout.shop"));
    await sendMany(10, 16, () => send(gw, "ledger.shop"));
    await until("all clusters probed", () => ["east", "west", "north"].map((c) => gw.prober.state(c)?.alive), (v) => v.every((a) => a === true));

    const all = await scrape(gw);
    expect(sumOf(all, "request_total")).toBe(50);
    for (const cluster of ["east", "west", "north"]) {
      const slice = await scrape(gw, `?cluster=${cluster}`);
      expect(slice.length).toBeGreaterThan(0);
      for (const s of slice) expect([s.labels.src_cluster, s.labels.dst_target_cluster, s.labels.target_cluster_name], `${s.name} ${JSON.stringify(s.labels)}`).toContain(cluster);
      // Exactly the involved samples of the full scrape, not fewer.
      const expected = all.filter((s) => [s.labels.src_cluster, s.labels.dst_target_cluster, s.labels.target_cluster_name].includes(cluster));
      expect(slice).toEqual(expected);
    }
    expect(sumOf(await scrape(gw, "?cluster=east"), "request_total")).toBe(east.requests);
    expect(sumOf(await scrape(gw, "?cluster=west"), "request_total")).toBe(west.requests);
    expect(sumOf(await scrape(gw, "?cluster=north"), "request_total")).toBe(0);
    expect(sumOf(await scrape(gw, "?cluster=north"), "gateway_alive")).toBe(1);

    const unknown = await admin(gw, "/metrics?cluster=nowhere");
    expect(unknown.status).toBe(404);
    expect(unknown.json).toMatchObject({ status: 404 });
    for (const bad of ["East!", "", "a%20b", "-x"]) {
      const r = await admin(gw, `/metrics?cluster=${bad}`);
      expect(r.status, `?cluster=${bad}`).toBe(400);
      expect((r.json as { errors?: Array<{ path: string }> }).errors?.map((e) => e.path)).toEqual(["query.cluster"]);
    }
    expect((await admin(gw, "/metrics", null)).status).toBe(401);
    expect((await admin(gw, "/metrics?cluster=east", null)).status).toBe(401);
    expect((await admin(gw, "/metrics", "wrong-token")).status).toBe(401);
  });

  it("a cluster that happens to be named \"unknown\" gets no series about unauthenticated callers' traffic to others", async () => {
    const [east, unknown] = await Promise.all([upstream("east"), upstream("unknown")]);
    const gw = await gateway({
      clusters: { east: { endpoint: east.url }, unknown: { endpoint: unknown.url } },
      routes: { checkout: openRoute(["checkout.shop"], [{ cluster: "east" }]) },
    });
    await sendMany(10, 8, () => send(gw, "checkout.shop"));
    expect(east.requests).toBe(10);
    expect(unknown.requests).toBe(0);
    const slice = await scrape(gw, "?cluster=unknown");
    expect(slice.filter((s) => s.labels.dst_target_cluster === "east")).toEqual([]);
  });

  it("a flood of random hosts, paths, queries and header values does not grow the number of series", async () => {
    const [east, west] = await Promise.all([upstream("east"), upstream("west")]);
    const gw = await gateway({
      clusters: { east: { endpoint: east.url }, west: { endpoint: west.url } },
      // No hostnames: a catch-all route, so every random host is served.
      routes: { anything: openRoute([], [{ cluster: "east" }, { cluster: "west" }]) },
    });
    const tokens: string[] = [];
    const randomRequest = () => {
      const t = Array.from({ length: 4 }, token);
      tokens.push(...t);
      return send(gw, `h-${t[0]}.example`, `/p/${t[1]}?q=${t[2]}&${t[3]}=1`, { "x-random": t[3] as string, "user-agent": `ua-${t[0]}`, "x-forwarded-host": `f-${t[1]}.example` });
    };
    const warm = await sendMany(40, 16, randomRequest);
    expect(new Set(warm.map((r) => `${r.status}:${r.cluster}`))).toEqual(new Set(["200:east", "200:west"]));
    const before = seriesIds(await scrape(gw));

    const flood = await sendMany(2000, 64, randomRequest);
    expect(flood.every((r) => r.status === 200)).toBe(true);
    const text = (await admin(gw, "/metrics")).text;
    const after = parseExposition(text).samples;
    expect(seriesIds(after)).toEqual(before);
    expect(sumOf(after, "request_total")).toBe(2040);
    // Only route x cluster (x status) series: request_total, response_total, response_latency_ms per cluster, plus probes.
    const traffic = [...seriesIds(after)].filter((k) => !k.startsWith("gateway_"));
    expect(traffic).toHaveLength(6);
    for (const t of tokens) expect(text.includes(t), `token ${t} leaked into the exposition`).toBe(false);
    const labelValues = new Set(after.flatMap((s) => Object.values(s.labels)));
    for (const v of labelValues) expect(["outbound", "anything", "east", "west", SERVICE, "unknown", "success", "200", ...LINKERD_LE]).toContain(v);
  });
});

// ------------------------------------------------------------------ health probes

/**
 * A health endpoint whose answer a test switches: a status code, or the listener closed (refused).
 * `holdNext()` keeps the next probe waiting (resolves once it has arrived) until `release()`.
 */
async function healthServer() {
  let status = 200;
  let probes = 0;
  let failedProbes = 0;
  let holdWaiter: (() => void) | null = null;
  const held: ServerResponse[] = [];
  const answer = (res: ServerResponse) => {
    probes++;
    if (status !== 200) failedProbes++;
    res.writeHead(status, { "content-type": "text/plain" }).end(status === 200 ? "ok\n" : "unhealthy\n");
  };
  const server: Server = createServer((req, res) => {
    req.resume();
    if (holdWaiter) {
      held.push(res);
      holdWaiter();
      holdWaiter = null;
      return;
    }
    answer(res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | null = null;
  const h = {
    url: `http://127.0.0.1:${port}`,
    setStatus(s: number) {
      status = s;
    },
    get probes() {
      return probes;
    },
    get failedProbes() {
      return failedProbes;
    },
    holdNext(): Promise<void> {
      return new Promise<void>((resolve) => (holdWaiter = resolve));
    },
    release() {
      for (const res of held.splice(0)) answer(res);
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
  cleanups.push(() => h.close());
  return h;
}

describe("cluster health probes", () => {
  it("gateway_alive goes to 0 after 3 consecutive failures, shows why in status.health, and returns to 1 when healed", async () => {
    const flaky = await healthServer();
    const steady = await upstream("steady");
    const gw = await gateway({ probeIntervalMs: 100, clusters: { flaky: { endpoint: flaky.url }, steady: { endpoint: steady.url } } });
    const alive = async (cluster: string) => {
      const s = await scrape(gw, `?cluster=${cluster}`);
      const g = s.filter((x) => x.name === "gateway_alive");
      return g.length === 1 ? g[0]?.value : undefined;
    };
    const health = async (cluster: string) => {
      const r = await admin(gw, `/clusters/${cluster}`);
      expect(r.status).toBe(200);
      return (r.json as { status: { health: ProbeState | null } }).status.health;
    };

    await until("flaky alive", () => alive("flaky"), (v) => v === 1);
    expect(await alive("steady")).toBe(1);
    expect(await health("flaky")).toMatchObject({ alive: true, consecutiveFailures: 0, lastError: null, url: `${flaky.url}/ready` });

    flaky.setStatus(503);
    const failedBefore = flaky.failedProbes;
    await until("flaky not alive", () => alive("flaky"), (v) => v === 0, 5000);
    expect(flaky.failedProbes - failedBefore).toBeGreaterThanOrEqual(3);
    const down = await health("flaky");
    expect(down).toMatchObject({ alive: false, lastError: "HTTP 503" });
    expect(down?.consecutiveFailures).toBeGreaterThanOrEqual(3);
    expect(down?.lastSuccessAt).not.toBeNull();
    expect(await alive("steady")).toBe(1);
    // The list shows it too.
    const list = (await admin(gw, "/clusters")).json as { items: Array<{ name: string; status: { health: ProbeState } }> };
    expect(list.items.find((c) => c.name === "flaky")?.status.health).toMatchObject({ alive: false, lastError: "HTTP 503" });
    expect(list.items.find((c) => c.name === "steady")?.status.health).toMatchObject({ alive: true, lastError: null });

    flaky.setStatus(200);
    await until("flaky alive again", () => alive("flaky"), (v) => v === 1, 5000);
    expect(await health("flaky")).toMatchObject({ alive: true, consecutiveFailures: 0, lastError: null });

    // A connect error is a reason too.
    await flaky.close();
    await until("flaky not alive (refused)", () => alive("flaky"), (v) => v === 0, 5000);
    expect(await health("flaky")).toMatchObject({ alive: false, lastError: "ECONNREFUSED" });

    // Probe latency histogram, Linkerd's buckets, for successful probes.
    const all = await scrape(gw);
    const steadyBuckets = all.filter((s) => s.name === "gateway_probe_latency_ms_bucket" && s.labels.target_cluster_name === "steady");
    expect(steadyBuckets.map((s) => s.labels.le)).toEqual(LINKERD_LE);
    expect(sumOf(all, "gateway_probe_latency_ms_count", { target_cluster_name: "steady" })).toBeGreaterThan(0);
    expect(steadyBuckets.at(-1)?.value).toBe(sumOf(all, "gateway_probe_latency_ms_count", { target_cluster_name: "steady" }));
  });

  it("keeps probing a cluster after a routing-table reload that lands while its probe is in flight", async () => {
    const h = await healthServer();
    // A long probe timeout, so the held probe is still in flight when the table is swapped.
    const gw = await gateway({ probeIntervalMs: 100, probeTimeoutMs: 5000, clusters: { flaky: { endpoint: h.url } } });
    await until("flaky alive", () => gw.prober.state("flaky")?.alive, (v) => v === true);
    // Reloads happen on every change notification and on the 30 s full resync.
    await h.holdNext();
    await gw.routing.reload();
    h.setStatus(503);
    h.release();
    const before = h.probes;
    await until("probes continue after the reload", () => h.probes - before, (v) => v >= 3, 3000);
    await until("flaky not alive", () => gw.prober.state("flaky")?.alive, (v) => v === false, 3000);
  });
});

// ------------------------------------------------------------------ store outage

describe("metrics while the store is down", () => {
  let redis: RedisServer | null = null;
  afterEach(async () => {
    await redis?.stop();
    redis = null;
  });

  it("traffic keeps flowing, flushes fail with one bounded backlog, and after the restart every request is counted exactly once", async () => {
    const [east, west] = await Promise.all([upstream("east"), upstream("west")]);
    redis = await startRedis({ persistent: true });
    const gw = await gateway({
      redisUrl: redis.url,
      redisPrefix: uniquePrefix("metrics-outage"),
      metricsFlushMs: 50,
      clusters: { east: { endpoint: east.url }, west: { endpoint: west.url } },
      routes: { checkout: openRoute(["checkout.shop"], [{ cluster: "east" }, { cluster: "west" }]) },
    });
    const storeTotal = async () => {
      const m = await gw.store.readMetrics().catch(() => null);
      if (!m) return null;
      return Object.entries(m.values)
        .filter(([k]) => k.startsWith("request_total{"))
        .reduce((a, [, v]) => a + v, 0);
    };

    let sent = 0;
    const batch = async (n: number) => {
      const r = await sendMany(n, 16, () => send(gw, "checkout.shop"));
      expect(r.every((x) => x.status === 200)).toBe(true);
      sent += n;
    };
    await batch(100);
    await until("the first 100 reach the store", storeTotal, (v) => v === 100);

    await redis.kill("SIGKILL");
    const failuresBefore = gw.flusher.failures;
    await batch(150);
    await until("flushes fail and a batch waits", () => ({ failures: gw.flusher.failures, backlog: gw.flusher.backlog }), (v) => v.failures >= failuresBefore + 3 && v.backlog);
    await batch(150);
    await until("more flushes fail", () => gw.flusher.failures, (v) => v >= failuresBefore + 6);
    expect(gw.flusher.backlog).toBe(true);
    // Bounded: one waiting batch, whose size is the number of series, not of requests.
    const pending = (gw.flusher as unknown as { pending: { id: string; batch: MetricBatch } | null }).pending;
    expect(pending).not.toBeNull();
    expect(Object.keys(pending?.batch.series ?? {}).length).toBeLessThanOrEqual(6);
    const scrapeDown = await admin(gw, "/metrics");
    expect(scrapeDown.status).toBe(503);

    await redis.restart();
    await until("the backlog drains", () => gw.flusher.backlog, (v) => v === false, 15_000);
    const total = await until("every request reached the store", storeTotal, (v) => v === sent, 10_000);
    expect(total).toBe(east.requests + west.requests);
    // Exactly once: further flushes and scrapes add nothing.
    await gw.flusher.flush();
    const samples = await scrape(gw);
    expect(sumOf(samples, "request_total")).toBe(sent);
    expect(sumOf(samples, "response_total")).toBe(sent);
    expect(sumOf(samples, "response_latency_ms_count")).toBe(sent);
    expect(await storeTotal()).toBe(sent);
  });
});
