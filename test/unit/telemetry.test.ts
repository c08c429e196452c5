// Telemetry building blocks without a network: the text exposition, the recorder's series bound,
// the hand-written remote-write protobuf (checked against hand-computed bytes and decoded by an
// independent decoder below), snappy framing, the flusher's retry-with-the-same-id semantics,
// federation's per-cluster slices and retries, and the health prober's state machine.
import { uncompress } from "snappyjs";
import { describe, expect, it } from "vitest";
import { parseCluster } from "../../src/config/validate.ts";
import { compileCluster, compileTable } from "../../src/routing/compile.ts";
import type { CompiledCluster } from "../../src/routing/table.ts";
import { MemoryStore } from "../../src/store/memory.ts";
import { involves, renderText, toSamples } from "../../src/telemetry/exposition.ts";
import { MetricsFederation } from "../../src/telemetry/federation.ts";
import { MetricsFlusher } from "../../src/telemetry/flusher.ts";
import { HealthProber } from "../../src/telemetry/health-probes.ts";
import { LATENCY_BUCKETS_MS, escapeLabel, mergeInto, seriesKey, type MetricBatch } from "../../src/telemetry/metric-batch.ts";
import { MAX_SERIES, MetricsRecorder, type TrafficLabels } from "../../src/telemetry/recorder.ts";
import { encodeWriteRequest, snappy } from "../../src/telemetry/remote-write.ts";
import { parseExposition } from "../helpers/prometheus.ts";

const EAST: TrafficLabels = { route_name: "checkout", dst_target_cluster: "east", dst_target_service: "checkout.shop.svc.cluster.local", src_cluster: "unknown" };
const WEST: TrafficLabels = { ...EAST, dst_target_cluster: "west" };
const EAST_TO_WEST: TrafficLabels = { ...EAST, dst_target_cluster: "west", src_cluster: "east" };
const LE = [...LATENCY_BUCKETS_MS.map(String), "+Inf"];

// ------------------------------------------------------------------ an independent protobuf decoder

interface DecodedSeries {
  labels: Array<[string, string]>;
  samples: Array<{ value: number; timestamp: number }>;
}

/** Reads protobuf fields (wire types 0, 1, 2, 5) into [field, wire, value] triples. */
function fields(buf: Uint8Array): Array<[number, number, bigint | Uint8Array]> {
  const out: Array<[number, number, bigint | Uint8Array]> = [];
  let pos = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (pos >= buf.length) throw new Error("truncated varint");
      const b = buf[pos++] as number;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
      if (shift > 63n) throw new Error("varint too long");
    }
  };
  while (pos < buf.length) {
    const key = Number(varint());
    const field = key >> 3;
    const wire = key & 7;
    if (wire === 0) out.push([field, wire, varint()]);
    else if (wire === 1 || wire === 5) {
      const n = wire === 1 ? 8 : 4;
      if (pos + n > buf.length) throw new Error("truncated fixed field");
      out.push([field, wire, buf.slice(pos, pos + n)]);
      pos += n;
    } else if (wire === 2) {
      const len = Number(varint());
      if (pos + len > buf.length) throw new Error("truncated length-delimited field");
      out.push([field, wire, buf.slice(pos, pos + len)]);
      pos += len;
    } else throw new Error(`unsupported wire type ${wire}`);
  }
  return out;
}

function decodeWriteRequest(buf: Uint8Array): DecodedSeries[] {
  const text = new TextDecoder("utf-8", { fatal: true });
  return fields(buf).map(([field, wire, ts]) => {
    expect([field, wire]).toEqual([1, 2]); // WriteRequest.timeseries
    const series: DecodedSeries = { labels: [], samples: [] };
    for (const [f, w, v] of fields(ts as Uint8Array)) {
      expect(w).toBe(2);
      if (f === 1) {
        // Label {string name = 1; string value = 2;}
        let name = "";
        let value = "";
        for (const [lf, lw, lv] of fields(v as Uint8Array)) {
          expect(lw).toBe(2);
          if (lf === 1) name = text.decode(lv as Uint8Array);
          else if (lf === 2) value = text.decode(lv as Uint8Array);
          else throw new Error(`unexpected Label field ${lf}`);
        }
        series.labels.push([name, value]);
      } else if (f === 2) {
        // Sample {double value = 1; int64 timestamp = 2;}
        let value = NaN;
        let timestamp = NaN;
        for (const [sf, sw, sv] of fields(v as Uint8Array)) {
          if (sf === 1 && sw === 1) value = new DataView((sv as Uint8Array).buffer, (sv as Uint8Array).byteOffset, 8).getFloat64(0, true);
          else if (sf === 2 && sw === 0) timestamp = Number(BigInt.asIntN(64, sv as bigint));
          else throw new Error(`unexpected Sample field ${sf}/${sw}`);
        }
        series.samples.push({ value, timestamp });
      } else throw new Error(`unexpected TimeSeries field ${f}`);
    }
    return series;
  });
}

const labelsOf = (s: DecodedSeries) => Object.fromEntries(s.labels);

// ------------------------------------------------------------------ exposition

describe("text exposition", () => {
  it("renders counters and histograms with cumulative buckets, +Inf, sum and count", () => {
    const r = new MetricsRecorder();
    for (let i = 0; i < 5; i++) r.recordRequest(EAST);
    const latencies = [0.5, 1, 1.5, 7, 60_000];
    latencies.forEach((ms, i) => r.recordResponse(EAST, i === 4 ? 503 : 200, ms));
    const text = renderText([r.drain()]);
    const base = 'direction="outbound",dst_target_cluster="east",dst_target_service="checkout.shop.svc.cluster.local",route_name="checkout",src_cluster="unknown"';
    const lines = text.split("\n");

    expect(lines).toContain("# TYPE request_total counter");
    expect(lines).toContain(`request_total{${base}} 5`);
    expect(lines).toContain("# TYPE response_total counter");
    expect(lines).toContain(`response_total{classification="success",${base},status_code="200"} 4`);
    expect(lines).toContain(`response_total{classification="failure",${base},status_code="503"} 1`);
    expect(lines).toContain("# TYPE response_latency_ms histogram");
    expect(lines.filter((l) => l.startsWith("# HELP "))).toHaveLength(3);

    // le is inclusive: 0.5 and 1 -> le=1; 1.5 -> le=2; 7 -> le=10; 60000 -> +Inf only.
    const want: Record<string, number> = {};
    for (const le of LE) want[le] = 0;
    for (const ms of latencies) for (const le of LE) if (le === "+Inf" || ms <= Number(le)) want[le] = (want[le] ?? 0) + 1;
    const bucketLines = lines.filter((l) => l.startsWith("response_latency_ms_bucket{"));
    const labels = { direction: "outbound", ...EAST };
    expect(bucketLines).toEqual(LE.map((le) => `${seriesKey("response_latency_ms_bucket", { ...labels, le })} ${want[le]}`));
    expect(bucketLines[0]).toBe(`response_latency_ms_bucket{direction="outbound",dst_target_cluster="east",dst_target_service="checkout.shop.svc.cluster.local",le="1",route_name="checkout",src_cluster="unknown"} 2`);
    expect(want).toMatchObject({ "1": 2, "2": 3, "5": 3, "10": 4, "50000": 4, "+Inf": 5 });
    // Buckets, then sum and count, contiguous within the family.
    const first = lines.indexOf(bucketLines[0] as string);
    expect(lines.slice(first + LE.length, first + LE.length + 2)).toEqual([`response_latency_ms_sum{${base}} 60010`, `response_latency_ms_count{${base}} 5`]);
    expect(text.endsWith("\n")).toBe(true);

    // And our own strict parser reads it back.
    const parsed = parseExposition(text);
    expect(parsed.types.get("response_latency_ms")).toBe("histogram");
    expect(parsed.samples.filter((s) => s.name === "response_latency_ms_bucket").map((s) => s.value)).toEqual(LE.map((le) => want[le]));
  });

  it("escapes quotes, backslashes and newlines in label values (and the parser reads them back)", () => {
    const nasty = 'a"b\\c\nd\\n"';
    expect(escapeLabel(nasty)).toBe('a\\"b\\\\c\\nd\\\\n\\"');
    const r = new MetricsRecorder();
    r.inc("request_total", { route_name: nasty, z: "plain" });
    const text = renderText([r.drain()]);
    expect(text).toContain('request_total{route_name="a\\"b\\\\c\\nd\\\\n\\"",z="plain"} 1\n');
    expect(text.split("\n").filter((l) => l.startsWith("request_total"))).toHaveLength(1); // no raw newline
    const [sample] = parseExposition(text).samples;
    expect(sample?.labels).toEqual({ route_name: nasty, z: "plain" });
  });

  it("sorts label names in the series key and renders an unlabelled series without braces", () => {
    expect(seriesKey("m", { b: "2", a: "1" })).toBe('m{a="1",b="2"}');
    const batch: MetricBatch = { series: { "m{}": { name: "m", kind: "gauge", labels: {} } }, values: { "m{}\t": 3 } };
    expect(renderText([batch])).toBe("# TYPE m gauge\nm 3\n");
  });

  it("merges a family present in several batches under one TYPE line, and renders special values", () => {
    const a = new MetricsRecorder();
    a.recordRequest(EAST);
    const b = new MetricsRecorder();
    b.recordRequest(WEST);
    const g: MetricBatch = { series: {}, values: {} };
    for (const [cluster, v] of [["east", 1], ["west", Infinity], ["north", NaN]] as const) {
      const labels = { target_cluster_name: cluster };
      const k = seriesKey("gateway_alive", labels);
      g.series[k] = { name: "gateway_alive", kind: "gauge", labels };
      g.values[`${k}\t`] = v;
    }
    const text = renderText([a.drain(), b.drain(), g]);
    expect(text.match(/^# TYPE request_total /gm)).toHaveLength(1);
    expect(text.match(/^request_total\{/gm)).toHaveLength(2);
    expect(text).toContain('gateway_alive{target_cluster_name="west"} +Inf\n');
    expect(text).toContain('gateway_alive{target_cluster_name="north"} NaN\n');
    // Families sorted by name.
    const types = [...text.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]);
    expect(types).toEqual(["gateway_alive", "request_total"]);
  });

  it("a cluster's slice: the series where it is source, destination or probe target", () => {
    const r = new MetricsRecorder();
    r.recordRequest(EAST);
    r.recordRequest(WEST);
    r.recordRequest(EAST_TO_WEST);
    r.recordDenied("checkout", "forbidden");
    const batch = r.drain();
    const probe: MetricBatch = { series: {}, values: {} };
    const k = seriesKey("gateway_alive", { target_cluster_name: "east" });
    probe.series[k] = { name: "gateway_alive", kind: "gauge", labels: { target_cluster_name: "east" } };
    probe.values[`${k}\t`] = 1;
    mergeInto(batch, probe);
    const east = toSamples(batch, (s) => involves(s, "east"));
    expect(east.map((s) => [s.name, s.labels.src_cluster, s.labels.dst_target_cluster, s.labels.target_cluster_name])).toEqual([
      ["gateway_alive", undefined, undefined, "east"],
      ["request_total", "unknown", "east", undefined],
      ["request_total", "east", "west", undefined],
    ]);
    const west = toSamples(batch, (s) => involves(s, "west"));
    expect(west.map((s) => s.labels.dst_target_cluster)).toEqual(["west", "west"]);
    // Denials carry no cluster: in nobody's slice.
    expect(toSamples(batch).some((s) => s.name === "isthmus_denied_total")).toBe(true);
    expect([...east, ...west].some((s) => s.name === "isthmus_denied_total")).toBe(false);
  });
});

// ------------------------------------------------------------------ recorder

describe("recorder", () => {
  it(`holds at most MAX_SERIES (${MAX_SERIES}) series between drains, counting what it drops`, () => {
    const r = new MetricsRecorder();
    for (let i = 0; i < MAX_SERIES + 5; i++) r.inc("request_total", { route_name: `r${i}` });
    expect(r.droppedSamples).toBe(5);
    // Series already held keep counting.
    r.inc("request_total", { route_name: "r0" }, 2);
    r.observe("response_latency_ms", { route_name: "new" }, 3); // a new series: dropped
    expect(r.droppedSamples).toBe(6);
    const batch = r.drain();
    expect(Object.keys(batch.series)).toHaveLength(MAX_SERIES);
    expect(batch.values[`${seriesKey("request_total", { route_name: "r0" })}\t`]).toBe(3);
    expect(batch.values[`${seriesKey("request_total", { route_name: `r${MAX_SERIES}` })}\t`]).toBeUndefined();
    // A drain frees the room.
    r.inc("request_total", { route_name: "after" });
    expect(Object.keys(r.drain().series)).toEqual([seriesKey("request_total", { route_name: "after" })]);
  });

  it("classifies 5xx and gateway errors (status 0) as failures, everything else as success", () => {
    const r = new MetricsRecorder();
    for (const s of [200, 302, 404, 429, 499, 500, 502, 504, 599, 0, 700]) r.recordResponse(EAST, s, 1);
    const samples = toSamples(r.drain()).filter((s) => s.name === "response_total");
    const by = Object.fromEntries(samples.map((s) => [s.labels.status_code, s.labels.classification]));
    expect(by).toEqual({ "200": "success", "302": "success", "404": "success", "429": "success", "499": "success", "500": "failure", "502": "failure", "504": "failure", "599": "failure", "0": "failure" });
    // 700 is no HTTP status: recorded as code 0 (a failure), never as a new label value.
    expect(samples.find((s) => s.labels.status_code === "0")?.value).toBe(2);
  });
});

// ------------------------------------------------------------------ remote write

describe("remote-write encoding", () => {
  it("encodes a one-sample request to the exact protobuf bytes", () => {
    const bytes = encodeWriteRequest([{ name: "a", labels: {}, value: 1 }], 1);
    const name = [...new TextEncoder().encode("__name__")];
    const label = [0x0a, 8, ...name, 0x12, 1, 0x61]; // Label{name="__name__", value="a"}: 13 bytes
    const sample = [0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x10, 0x01]; // Sample{value=1.0, timestamp=1}: 11 bytes
    const ts = [0x0a, label.length, ...label, 0x12, sample.length, ...sample];
    expect([...bytes]).toEqual([0x0a, ts.length, ...ts]);
    expect(bytes.length).toBe(30);
  });

  it("decodes back: sorted labels with __name__ first, external labels, values and millisecond timestamps", () => {
    const r = new MetricsRecorder();
    r.recordRequest(EAST);
    r.recordRequest(EAST);
    r.recordResponse(EAST, 200, 42.25);
    r.inc("request_total", { route_name: "empty-label", dst_target_cluster: "" });
    const samples = toSamples(r.drain());
    const now = 1_700_000_000_123;
    const decoded = decodeWriteRequest(encodeWriteRequest(samples, now, { gateway: "edge-1" }));
    expect(decoded).toHaveLength(samples.length);
    decoded.forEach((d, i) => {
      const s = samples[i] as (typeof samples)[number];
      const names = d.labels.map(([n]) => n);
      expect(names[0]).toBe("__name__");
      expect(names).toEqual([...names].sort());
      expect(new Set(names).size).toBe(names.length);
      // An empty value means "no label" in Prometheus: not sent.
      expect(labelsOf(d)).toEqual({ __name__: s.name, gateway: "edge-1", ...Object.fromEntries(Object.entries(s.labels).filter(([, v]) => v !== "")) });
      expect(d.samples).toEqual([{ value: s.value, timestamp: now }]);
    });
    const sum = decoded.find((d) => labelsOf(d).__name__ === "response_latency_ms_sum");
    expect(sum?.samples[0]?.value).toBe(42.25);
    const inf = decoded.find((d) => labelsOf(d).__name__ === "response_latency_ms_bucket" && labelsOf(d).le === "+Inf");
    expect(inf?.samples[0]?.value).toBe(1);
  });

  it("a series label wins over an external label of the same name; non-ASCII and special values survive", () => {
    const decoded = decodeWriteRequest(
      encodeWriteRequest(
        [
          { name: "m", labels: { gateway: "own", x: "ünïcødé ✓" }, value: -1.5 },
          { name: "m", labels: { x: "nan" }, value: NaN },
          { name: "m", labels: { x: "inf" }, value: Infinity },
          { name: "m", labels: { x: "tiny" }, value: 0.1 },
        ],
        0,
        { gateway: "external" },
      ),
    );
    expect(labelsOf(decoded[0] as DecodedSeries)).toEqual({ __name__: "m", gateway: "own", x: "ünïcødé ✓" });
    expect(decoded.map((d) => d.samples[0]?.value)).toEqual([-1.5, NaN, Infinity, 0.1]);
    expect(decoded.map((d) => d.samples[0]?.timestamp)).toEqual([0, 0, 0, 0]);
  });

  it("grows its buffer for large requests and long label values", () => {
    const long = "x".repeat(5000);
    const samples = Array.from({ length: 2000 }, (_, i) => ({ name: "request_total", labels: { route_name: `r${i}`, blob: i % 100 === 0 ? long : "s" }, value: i }));
    const bytes = encodeWriteRequest(samples, 1_700_000_000_000);
    expect(bytes.length).toBeGreaterThan(100_000);
    const decoded = decodeWriteRequest(bytes);
    expect(decoded).toHaveLength(2000);
    expect(labelsOf(decoded[1000] as DecodedSeries)).toEqual({ __name__: "request_total", route_name: "r1000", blob: long });
    expect(decoded.map((d) => d.samples[0]?.value)).toEqual(samples.map((s) => s.value));
  });

  it("snappy block compression round-trips through snappyjs.uncompress", () => {
    for (const input of [
      new Uint8Array(0),
      new TextEncoder().encode("hello"),
      encodeWriteRequest(toSamples(recorded()), 1_700_000_000_000, { gateway: "g" }),
      Uint8Array.from({ length: 300_000 }, (_, i) => (i * 2654435761) >>> 24), // > 64 KiB, poorly compressible
    ]) {
      const packed = snappy(input);
      expect(uncompress(packed)).toEqual(input);
    }
    const repetitive = new TextEncoder().encode("request_total{".repeat(10_000));
    expect(snappy(repetitive).length).toBeLessThan(repetitive.length / 10);
  });
});

function recorded(): MetricBatch {
  const r = new MetricsRecorder();
  for (let i = 0; i < 10; i++) {
    r.recordRequest(i % 2 ? EAST : WEST);
    r.recordResponse(i % 2 ? EAST : WEST, i % 3 ? 200 : 500, i * 3.7);
  }
  return r.drain();
}

// ------------------------------------------------------------------ flusher

/** A MemoryStore behind a switch: `failNext` makes the next call throw, before or after applying. */
function flakyStore() {
  const store = new MemoryStore();
  const calls: Array<{ id: string; batch: MetricBatch }> = [];
  const s = {
    failNext: null as null | "before" | "after",
    calls,
    store,
    async applyMetricDeltas(id: string, batch: MetricBatch): Promise<boolean> {
      calls.push({ id, batch: structuredClone(batch) });
      const mode = s.failNext;
      s.failNext = null;
      if (mode === "before") throw new Error("store unreachable");
      const applied = await store.applyMetricDeltas(id, batch);
      if (mode === "after") throw new Error("reply lost"); // applied, but the caller cannot know
      return applied;
    },
  };
  return s;
}

async function requestTotal(store: MemoryStore): Promise<number> {
  const m = await store.readMetrics();
  return Object.entries(m.values)
    .filter(([k]) => k.startsWith("request_total{"))
    .reduce((a, [, v]) => a + v, 0);
}

describe("flusher", () => {
  it("a failed flush is retried with the same id and content before anything newer, and applied once", async () => {
    const r = new MetricsRecorder();
    const s = flakyStore();
    const f = new MetricsFlusher(r, s);
    for (let i = 0; i < 3; i++) r.recordRequest(EAST);
    s.failNext = "before";
    expect(await f.flush()).toBe(false);
    expect(f.failures).toBe(1);
    expect(f.backlog).toBe(true);
    for (let i = 0; i < 2; i++) r.recordRequest(EAST);
    expect(await f.flush()).toBe(true);
    expect(f.backlog).toBe(false);
    expect(f.flushes).toBe(2);
    expect(s.calls).toHaveLength(3);
    expect(s.calls[1]?.id).toBe(s.calls[0]?.id);
    expect(s.calls[1]?.batch).toEqual(s.calls[0]?.batch);
    expect(s.calls[2]?.id).not.toBe(s.calls[0]?.id);
    expect(await requestTotal(s.store)).toBe(5);
  });

  it("a flush that was applied but whose answer was lost is not counted twice", async () => {
    const r = new MetricsRecorder();
    const s = flakyStore();
    const f = new MetricsFlusher(r, s);
    for (let i = 0; i < 4; i++) r.recordRequest(EAST);
    s.failNext = "after";
    expect(await f.flush()).toBe(false);
    expect(await requestTotal(s.store)).toBe(4);
    expect(await f.flush()).toBe(true); // the store answers "already applied"
    expect(s.calls.map((c) => c.id)).toEqual([s.calls[0]?.id, s.calls[0]?.id]);
    expect(await requestTotal(s.store)).toBe(4);
    expect(f.backlog).toBe(false);
  });

  it("keeps one waiting batch during an outage; new samples merge in memory (bounded by series)", async () => {
    const r = new MetricsRecorder();
    const s = flakyStore();
    const f = new MetricsFlusher(r, s);
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 100; i++) r.recordRequest(i % 2 ? EAST : WEST);
      s.failNext = "before";
      expect(await f.flush()).toBe(false);
    }
    // Always the same waiting batch: it was never replaced or grown.
    expect(new Set(s.calls.map((c) => c.id)).size).toBe(1);
    expect(Object.keys(s.calls[9]?.batch.series ?? {})).toHaveLength(2);
    expect(await f.flush()).toBe(true);
    expect(await requestTotal(s.store)).toBe(1000);
  });

  it("concurrent flushes share one store call; nothing recorded means no call", async () => {
    const r = new MetricsRecorder();
    const s = flakyStore();
    const f = new MetricsFlusher(r, s);
    expect(await f.flush()).toBe(true);
    expect(s.calls).toHaveLength(0);
    r.recordRequest(EAST);
    const [a, b] = await Promise.all([f.flush(), f.flush()]);
    expect([a, b]).toEqual([true, true]);
    expect(s.calls).toHaveLength(1);
  });
});

// ------------------------------------------------------------------ federation

function table(clusters: Record<string, string | null>) {
  return compileTable({
    version: 1,
    clusters: Object.entries(clusters).map(([name, url]) => ({
      name,
      spec: parseCluster({ endpoint: `https://gw.${name}.example`, trustDomain: `${name}.example`, ...(url ? { metrics: { remoteWrite: { url } } } : {}) }),
      updatedAt: "",
    })),
    routes: [],
  });
}

interface Posted {
  url: string;
  init: RequestInit;
  series: DecodedSeries[];
}

function fakeReceiver(answer: (url: string, n: number) => Response | Promise<Response>) {
  const posted: Posted[] = [];
  const counts = new Map<string, number>();
  const fetchFn = async (url: string, init: RequestInit): Promise<Response> => {
    const n = (counts.get(url) ?? 0) + 1;
    counts.set(url, n);
    posted.push({ url, init, series: decodeWriteRequest(uncompress(init.body as Uint8Array)) });
    return answer(url, n);
  };
  return { posted, fetchFn };
}

describe("federation", () => {
  it("posts each cluster with a remote-write URL its own slice, snappy protobuf with the remote-write headers", async () => {
    const { posted, fetchFn } = fakeReceiver(() => new Response(null, { status: 204 }));
    const fed = new MetricsFederation(fetchFn, { gatewayName: "edge", now: () => 1_700_000_000_000 });
    const r = new MetricsRecorder();
    r.recordRequest(EAST);
    r.recordRequest(EAST_TO_WEST);
    r.recordRequest(WEST);
    r.recordResponse(WEST, 200, 3);
    const results = await fed.pushAll(table({ east: "http://prom-east/api/v1/write", west: "http://prom-west/api/v1/write", north: null }), [r.drain()]);
    expect(results.map((x) => [x.cluster, x.ok, x.attempts])).toEqual([
      ["east", true, 1],
      ["west", true, 1],
    ]);
    expect(posted.map((p) => p.url).sort()).toEqual(["http://prom-east/api/v1/write", "http://prom-west/api/v1/write"]);
    for (const p of posted) {
      expect(p.init.method).toBe("POST");
      const h = new Headers(p.init.headers);
      expect(h.get("content-type")).toBe("application/x-protobuf");
      expect(h.get("content-encoding")).toBe("snappy");
      expect(h.get("x-prometheus-remote-write-version")).toBe("0.1.0");
      const cluster = p.url.includes("east") ? "east" : "west";
      for (const s of p.series) {
        const l = labelsOf(s);
        expect(l.gateway).toBe("edge");
        expect([l.src_cluster, l.dst_target_cluster, l.target_cluster_name]).toContain(cluster);
        expect(s.samples).toEqual([{ value: expect.any(Number), timestamp: 1_700_000_000_000 }]);
      }
    }
    const east = posted.find((p) => p.url.includes("east"));
    expect(east?.series.map((s) => `${labelsOf(s).src_cluster}->${labelsOf(s).dst_target_cluster}`).sort()).toEqual(["east->west", "unknown->east"]);
    expect(fed.lastResults.get("west")).toMatchObject({ ok: true, at: "2023-11-14T22:13:20.000Z" });
  });

  it("a cluster with nothing to send gets no request", async () => {
    const { posted, fetchFn } = fakeReceiver(() => new Response(null, { status: 204 }));
    const fed = new MetricsFederation(fetchFn, { gatewayName: "edge" });
    const r = new MetricsRecorder();
    r.recordRequest(EAST);
    const results = await fed.pushAll(table({ east: "http://prom-east/w", west: "http://prom-west/w" }), [r.drain()]);
    expect(results.find((x) => x.cluster === "west")).toEqual({ cluster: "west", ok: true, attempts: 0, samples: 0 });
    expect(posted.map((p) => p.url)).toEqual(["http://prom-east/w"]);
  });

  it("retries 5xx, 429 and network errors with backoff, up to 3 attempts", async () => {
    const sleeps: number[] = [];
    const { posted, fetchFn } = fakeReceiver((url, n) => {
      if (url.includes("flaky")) return n === 1 ? new Response("busy", { status: 503 }) : n === 2 ? new Response("slow down", { status: 429 }) : new Response(null, { status: 204 });
      if (url.includes("refused")) throw new TypeError("fetch failed");
      return new Response(null, { status: 204 });
    });
    const fed = new MetricsFederation(fetchFn, { gatewayName: "edge", backoffMs: 100, sleep: async (ms) => void sleeps.push(ms) });
    const r = new MetricsRecorder();
    r.recordRequest({ ...EAST, dst_target_cluster: "flaky" });
    r.recordRequest({ ...EAST, dst_target_cluster: "refused" });
    const results = await fed.pushAll(table({ flaky: "http://flaky/w", refused: "http://refused/w" }), [r.drain()]);
    expect(results.find((x) => x.cluster === "flaky")).toMatchObject({ ok: true, attempts: 3 });
    expect(results.find((x) => x.cluster === "refused")).toMatchObject({ ok: false, attempts: 3, error: "fetch failed" });
    expect(posted.filter((p) => p.url.includes("flaky"))).toHaveLength(3);
    expect(posted.filter((p) => p.url.includes("refused"))).toHaveLength(3);
    // Jittered exponential backoff: 100 * 2^(i-1) * [0.5, 1.5).
    expect(sleeps).toHaveLength(4);
    for (const ms of sleeps) expect(ms).toBeGreaterThanOrEqual(50);
    expect(Math.max(...sleeps)).toBeLessThan(300);
  });

  it("does not retry a 4xx other than 429, and reports the attempts actually made", async () => {
    const { posted, fetchFn } = fakeReceiver(() => new Response("out of order sample", { status: 400 }));
    const fed = new MetricsFederation(fetchFn, { gatewayName: "edge", sleep: async () => undefined });
    const r = new MetricsRecorder();
    r.recordRequest(EAST);
    const [result] = await fed.pushAll(table({ east: "http://prom-east/w" }), [r.drain()]);
    expect(posted).toHaveLength(1);
    expect(result?.ok).toBe(false);
    expect(result?.error).toMatch(/HTTP 400 out of order sample/);
    expect(result?.attempts).toBe(1);
  });
});

// ------------------------------------------------------------------ health probes

function cluster(name: string, endpoint = `http://${name}.test:8080`, health?: Record<string, string>): CompiledCluster {
  return compileCluster(name, parseCluster({ endpoint, trustDomain: `${name}.example`, ...(health ? { health } : {}) }));
}

/** A prober on a fake clock, whose fetch answers from `next` (a status, an error, or a pending promise). */
function proberRig(opts: { intervalMs?: number } = {}) {
  let clock = 1_000_000;
  const urls: string[] = [];
  const changes: Array<[string, boolean]> = [];
  let next: () => Promise<Response> = async () => new Response("ok");
  const prober = new HealthProber(
    async (url) => {
      urls.push(url);
      return next();
    },
    { now: () => clock, defaultIntervalMs: opts.intervalMs ?? 1000, onChange: (c, a) => changes.push([c, a]) },
  );
  const rig = {
    prober,
    urls,
    changes,
    status(s: number) {
      next = async () => new Response(s === 200 ? "ok" : "no", { status: s });
    },
    fail(err: Error) {
      next = async () => {
        throw err;
      };
    },
    respondWith(fn: () => Promise<Response>) {
      next = fn;
    },
    advance(ms: number) {
      clock += ms;
    },
    /** Lets every probe become due (interval plus the 10% jitter) and runs them. */
    async tick() {
      clock += (opts.intervalMs ?? 1000) * 1.1 + 1;
      await prober.probeDue();
    },
  };
  return rig;
}

describe("health prober", () => {
  it("unknown until the first answer; 3 consecutive failures mark a cluster not alive; one success heals it", async () => {
    const rig = proberRig();
    rig.prober.sync(new Map([["east", cluster("east")]]));
    expect(rig.prober.state("east")?.alive).toBeNull();
    expect(rig.prober.metrics().series).toEqual({});

    rig.status(200);
    await rig.tick();
    expect(rig.prober.state("east")).toMatchObject({ alive: true, consecutiveFailures: 0, lastError: null, url: "http://east.test:8080/ready" });
    expect(rig.urls).toEqual(["http://east.test:8080/ready"]);

    rig.status(503);
    await rig.tick();
    await rig.tick();
    expect(rig.prober.state("east")).toMatchObject({ alive: true, consecutiveFailures: 2, lastError: "HTTP 503" });
    rig.status(200);
    await rig.tick(); // interleaved success resets the count
    rig.status(503);
    await rig.tick();
    await rig.tick();
    expect(rig.prober.state("east")?.alive).toBe(true);
    await rig.tick();
    expect(rig.prober.state("east")).toMatchObject({ alive: false, consecutiveFailures: 3, lastError: "HTTP 503" });
    const k = seriesKey("gateway_alive", { target_cluster_name: "east" });
    expect(rig.prober.metrics().values[`${k}\t`]).toBe(0);
    rig.status(200);
    await rig.tick();
    expect(rig.prober.state("east")).toMatchObject({ alive: true, consecutiveFailures: 0, lastError: null });
    expect(rig.prober.metrics().values[`${k}\t`]).toBe(1);
    expect(rig.changes).toEqual([
      ["east", true],
      ["east", false],
      ["east", true],
    ]);
  });

  it("a cluster that never answered stays unknown for 2 failures, then is not alive", async () => {
    const rig = proberRig();
    rig.prober.sync(new Map([["east", cluster("east")]]));
    rig.fail(Object.assign(new TypeError("fetch failed"), { cause: { code: "ECONNREFUSED" } }));
    await rig.tick();
    await rig.tick();
    expect(rig.prober.state("east")).toMatchObject({ alive: null, consecutiveFailures: 2, lastError: "ECONNREFUSED" });
    await rig.tick();
    expect(rig.prober.state("east")?.alive).toBe(false);
  });

  it("reports timeouts, redirects and other statuses as reasons", async () => {
    const rig = proberRig();
    rig.prober.sync(new Map([["east", cluster("east", "http://east.test:8080", { path: "/healthz", timeout: "250ms" })]]));
    rig.fail(new DOMException("The operation was aborted due to timeout", "TimeoutError"));
    await rig.tick();
    expect(rig.prober.state("east")?.lastError).toBe("timeout after 250ms");
    rig.status(302);
    await rig.tick();
    expect(rig.prober.state("east")?.lastError).toBe("HTTP 302");
    expect(rig.urls.at(-1)).toBe("http://east.test:8080/healthz");
  });

  it("probes on its interval, and records successful probe latency in Linkerd's buckets", async () => {
    const rig = proberRig({ intervalMs: 1000 });
    rig.prober.sync(new Map([["east", cluster("east")]]));
    rig.respondWith(async () => {
      rig.advance(7); // the probe takes 7 ms on the fake clock
      return new Response("ok");
    });
    await rig.tick();
    await rig.prober.probeDue(); // not due yet
    expect(rig.urls).toHaveLength(1);
    rig.advance(999);
    await rig.prober.probeDue(); // 999 ms after the last probe ended: not due (the interval is 1000-1100 ms)
    expect(rig.urls).toHaveLength(1);
    await rig.tick();
    await rig.tick();
    const m = rig.prober.metrics();
    const k = seriesKey("gateway_probe_latency_ms", { target_cluster_name: "east" });
    const count = m.values[`${k}\tcount`] as number;
    expect(count).toBe(rig.urls.length);
    expect(m.values[`${k}\tsum`]).toBe(7 * count);
    expect(m.values[`${k}\tb5`]).toBe(count); // 7 ms -> le=10
    expect(toSamples(m).filter((s) => s.name === "gateway_probe_latency_ms_bucket").map((s) => s.labels.le)).toEqual(LE);
  });

  it("keeps probing a cluster whose probe was in flight when the routing table was swapped", async () => {
    const rig = proberRig();
    rig.prober.sync(new Map([["east", cluster("east")]]));
    rig.status(200);
    await rig.tick();
    // The next probe hangs until we answer it...
    let answer: (r: Response) => void = () => undefined;
    rig.respondWith(() => new Promise<Response>((resolve) => (answer = resolve)));
    rig.advance(1101);
    const inflight = rig.prober.probeDue();
    expect(rig.urls).toHaveLength(2);
    // ...while a routing-table swap re-syncs the same, unchanged cluster (a new compiled object).
    rig.prober.sync(new Map([["east", cluster("east")]]));
    answer(new Response("ok"));
    await inflight;
    rig.status(503);
    for (let i = 0; i < 3; i++) await rig.tick();
    expect(rig.urls).toHaveLength(5);
    expect(rig.prober.state("east")?.alive).toBe(false);
  });

  it("a changed endpoint or health path starts afresh; a removed cluster is forgotten", async () => {
    const rig = proberRig();
    rig.prober.sync(new Map([["east", cluster("east")], ["west", cluster("west")]]));
    rig.status(200);
    await rig.tick();
    expect(rig.prober.state("east")?.alive).toBe(true);
    rig.prober.sync(new Map([["east", cluster("east", "http://east-2.test:8080")]]));
    expect(rig.prober.state("east")).toMatchObject({ alive: null, url: "http://east-2.test:8080/ready" });
    expect(rig.prober.state("west")).toBeNull();
    expect(Object.values(rig.prober.metrics().series).map((s) => s.labels.target_cluster_name)).toEqual([]);
  });
});
