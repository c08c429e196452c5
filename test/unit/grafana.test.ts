// The Grafana dashboards in infra/grafana: they parse, they are what infra/grafana/dashboards.ts
// builds, every panel queries something, and every PromQL expression (panels and variables) names
// only series the gateway exports and only labels those series carry. The exported series and
// their labels are taken from the real recorder and prober, not from a list written here.
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { buildDashboards, dashboardText, GRAFANA_SCHEMA_VERSION } from "../../infra/grafana/dashboards.ts";
import { parseCluster } from "../../src/config/validate.ts";
import type { CompiledCluster } from "../../src/routing/table.ts";
import { toSamples } from "../../src/telemetry/exposition.ts";
import { HealthProber } from "../../src/telemetry/health-probes.ts";
import { MetricsRecorder } from "../../src/telemetry/recorder.ts";

const DIR = path.join(import.meta.dirname, "../../infra/grafana");

interface Target {
  refId: string;
  expr: string;
  legendFormat?: string;
  datasource: { type: string; uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type: string; uid: string };
  targets?: Target[];
}
interface Variable {
  name: string;
  type: string;
  definition?: string;
  query?: { query: string } | string;
  datasource?: { type: string; uid: string };
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  __inputs: Array<{ name: string; type: string; pluginId: string }>;
  panels: Panel[];
  templating: { list: Variable[] };
}

// ------------------------------------------------------------------ what the gateway exports

/** Series name -> label names, from samples the real recorder and prober produce. */
async function exportedSeries(): Promise<Map<string, Set<string>>> {
  const rec = new MetricsRecorder();
  const traffic = { route_name: "checkout", dst_target_cluster: "east", dst_target_service: "checkout.shop", src_cluster: "west", rollout: "checkout-v2", rollout_role: "canary" as const };
  rec.recordRequest(traffic);
  rec.recordResponse(traffic, 503, 12);
  rec.recordDenied("checkout", "forbidden");

  const spec = parseCluster({ endpoint: "http://east.invalid", trustDomain: "east.example" });
  const cluster: CompiledCluster = { name: "east", base: "http://east.invalid", origin: "http://east.invalid", basePath: "", trustDomain: "east.example", spec };
  const prober = new HealthProber(async () => new Response("ok"));
  prober.sync(new Map([["east", cluster]]));
  await prober.probeDue();

  const out = new Map<string, Set<string>>();
  for (const s of [...toSamples(rec.drain()), ...toSamples(prober.metrics())]) {
    const labels = out.get(s.name) ?? new Set<string>();
    for (const l of Object.keys(s.labels)) labels.add(l);
    // Remote write adds the external label `gateway` (ISTHMUS_GATEWAY_NAME) to every series it pushes.
    labels.add("gateway");
    out.set(s.name, labels);
  }
  return out;
}

// ------------------------------------------------------------------ a small PromQL tokenizer

type Token = { kind: "ident" | "string" | "number" | "var" | "op" | "punct"; value: string };

function tokenize(expr: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < expr.length) {
    const c = expr[i] as string;
    const rest = expr.slice(i);
    if (/\s/.test(c)) {
      i++;
    } else if (c === "#") {
      while (i < expr.length && expr[i] !== "\n") i++;
    } else if (c === '"' || c === "'" || c === "`") {
      let j = i + 1;
      while (j < expr.length && expr[j] !== c) j += expr[j] === "\\" && c !== "`" ? 2 : 1;
      if (j >= expr.length) throw new Error(`unterminated string in ${expr}`);
      out.push({ kind: "string", value: expr.slice(i + 1, j) });
      i = j + 1;
    } else if (c === "[") {
      // A range or subquery (`[$__rate_interval]`, `[5m:1m]`): no names inside.
      const j = expr.indexOf("]", i);
      if (j < 0) throw new Error(`unterminated range in ${expr}`);
      if (!/^\[(\$\{?\w+\}?|\d+[smhdwy])(:(\$\{?\w+\}?|\d+[smhdwy])?)?\]$/.test(expr.slice(i, j + 1))) throw new Error(`bad range ${expr.slice(i, j + 1)}`);
      i = j + 1;
    } else if (c === "$") {
      const m = /^\$(\{\w+\}|\w+)/.exec(rest);
      if (!m) throw new Error(`bad variable in ${expr}`);
      out.push({ kind: "var", value: m[1]?.replace(/[{}]/g, "") as string });
      i += m[0].length;
    } else {
      const num = /^(\d+(\.\d+)?([eE][+-]?\d+)?|0x[0-9a-fA-F]+|Inf|NaN)/.exec(rest);
      const ident = /^[A-Za-z_:][A-Za-z0-9_:]*/.exec(rest);
      const op = /^(=~|!~|!=|==|<=|>=|[=<>+\-*/%^])/.exec(rest);
      if (ident && !/^(Inf|NaN)$/.test(ident[0])) {
        out.push({ kind: "ident", value: ident[0] });
        i += ident[0].length;
      } else if (num) {
        out.push({ kind: "number", value: num[0] });
        i += num[0].length;
      } else if (op) {
        out.push({ kind: "op", value: op[0] });
        i += op[0].length;
      } else if ("(){},".includes(c)) {
        out.push({ kind: "punct", value: c });
        i++;
      } else throw new Error(`unexpected "${c}" in ${expr}`);
    }
  }
  return out;
}

const FUNCTIONS = new Set(["rate", "irate", "increase", "delta", "histogram_quantile", "label_values", "vector", "scalar", "clamp_min", "clamp_max", "abs", "time", "absent", "max_over_time", "min_over_time", "avg_over_time"]);
const AGGREGATIONS = new Set(["sum", "min", "max", "avg", "count", "topk", "bottomk", "quantile", "stddev", "count_values", "group"]);
const GROUPING = new Set(["by", "without", "on", "ignoring", "group_left", "group_right"]);
const KEYWORDS = new Set(["and", "or", "unless", "bool", "offset", "atan2"]);

interface Analysis {
  /** Every series selector: its metric name and the label names it matches on. */
  selectors: Array<{ metric: string; labels: string[] }>;
  /** Label names in by/without/on/ignoring/group_left/group_right clauses. */
  grouping: string[];
  variables: string[];
}

function analyse(expr: string): Analysis {
  const t = tokenize(expr);
  // Grafana variables sit anywhere: in matcher values, ranges, or bare.
  const variables = [...expr.matchAll(/\$(?:\{(\w+)(?::\w+)?\}|(\w+))/g)].map((m) => (m[1] ?? m[2]) as string);
  const out: Analysis = { selectors: [], grouping: [], variables };
  const labelList = (i: number): [string[], number] => {
    // t[i] is "(": names separated by commas up to ")".
    const names: string[] = [];
    let j = i + 1;
    for (; j < t.length && t[j]?.value !== ")"; j++) {
      const tok = t[j] as Token;
      if (tok.kind === "ident") names.push(tok.value);
      else if (tok.value !== ",") throw new Error(`unexpected ${tok.value} in a label list of ${expr}`);
    }
    return [names, j];
  };
  const matchers = (i: number): [string[], number] => {
    // t[i] is "{": `name op "value"` separated by commas up to "}".
    const names: string[] = [];
    let j = i + 1;
    while (t[j]?.value !== "}") {
      const [name, op, value] = [t[j], t[j + 1], t[j + 2]];
      if (name?.kind !== "ident" || !["=", "!=", "=~", "!~"].includes(op?.value ?? "") || value?.kind !== "string") throw new Error(`bad matcher at ${name?.value} in ${expr}`);
      names.push(name.value);
      j += 3;
      if (t[j]?.value === ",") j++;
    }
    return [names, j];
  };
  for (let i = 0; i < t.length; i++) {
    const tok = t[i] as Token;
    const next = t[i + 1];
    if (tok.kind === "punct" && tok.value === "{") throw new Error(`a selector without a metric name in ${expr}`);
    if (tok.kind !== "ident") continue;
    if (GROUPING.has(tok.value)) {
      if (next?.value === "(") {
        const [names, j] = labelList(i + 1);
        out.grouping.push(...names);
        i = j;
      } else if (tok.value !== "group_left" && tok.value !== "group_right") throw new Error(`${tok.value} without labels in ${expr}`);
    } else if (KEYWORDS.has(tok.value)) {
      continue;
    } else if (next?.value === "(") {
      if (!FUNCTIONS.has(tok.value) && !AGGREGATIONS.has(tok.value)) throw new Error(`unknown function ${tok.value} in ${expr}`);
    } else if (next?.value === "{") {
      const [names, j] = matchers(i + 1);
      out.selectors.push({ metric: tok.value, labels: names });
      i = j;
    } else if (AGGREGATIONS.has(tok.value) && (next?.value === "by" || next?.value === "without")) {
      continue;
    } else {
      out.selectors.push({ metric: tok.value, labels: [] });
    }
  }
  return out;
}

// ------------------------------------------------------------------ the files

async function loadDashboards(): Promise<Map<string, Dashboard>> {
  const files = (await readdir(DIR)).filter((f) => f.endsWith(".json")).sort();
  const out = new Map<string, Dashboard>();
  for (const f of files) out.set(f, JSON.parse(await readFile(path.join(DIR, f), "utf8")) as Dashboard);
  return out;
}

const varQuery = (v: Variable): string => (typeof v.query === "string" ? v.query : (v.query?.query ?? ""));
const BUILTIN_VARS = new Set(["__rate_interval", "__interval", "__range", "DS_PROMETHEUS"]);

/** Every PromQL expression of a dashboard with where it is; label_values(selector, label) gives its selector and label. */
function expressions(d: Dashboard): Array<{ where: string; expr: string; legend?: string; label?: string }> {
  const out: Array<{ where: string; expr: string; legend?: string; label?: string }> = [];
  for (const p of d.panels) for (const t of p.targets ?? []) out.push({ where: `${d.uid} panel "${p.title}" ${t.refId}`, expr: t.expr, ...(t.legendFormat ? { legend: t.legendFormat } : {}) });
  for (const v of d.templating.list.filter((x) => x.type === "query")) {
    const m = /^label_values\((.+),\s*([A-Za-z_][A-Za-z0-9_]*)\)$/s.exec(varQuery(v).trim());
    if (!m) throw new Error(`${d.uid} variable ${v.name}: not label_values(selector, label): ${varQuery(v)}`);
    out.push({ where: `${d.uid} variable ${v.name}`, expr: m[1] as string, label: m[2] as string });
  }
  return out;
}

describe("the tokenizer", () => {
  it("finds metrics, matcher labels and grouping labels, and skips functions, strings and ranges", () => {
    const a = analyse('histogram_quantile(0.99, sum by (le, route_name) (rate(response_latency_ms_bucket{gateway=~"$gateway", x="a{b}"}[$__rate_interval])))\n/ ignoring (rollout_role) group_left\nsum(request_total) or vector(0)');
    expect(a.selectors).toEqual([
      { metric: "response_latency_ms_bucket", labels: ["gateway", "x"] },
      { metric: "request_total", labels: [] },
    ]);
    expect(a.grouping).toEqual(["le", "route_name", "rollout_role"]);
    expect(a.variables).toEqual(["gateway", "__rate_interval"]);
    expect(() => analyse("sum(rate(nope{a=1}[5m]))")).toThrow(/bad matcher/);
    expect(() => analyse('frobnicate(request_total{a="b"})')).toThrow(/unknown function/);
    expect(() => analyse('{__name__="request_total"}')).toThrow(/without a metric name/);
  });
});

describe("Grafana dashboards", () => {
  it("are the files infra/grafana/dashboards.ts builds (npx tsx infra/grafana/generate.ts)", async () => {
    const built = buildDashboards();
    const files = (await readdir(DIR)).filter((f) => f.endsWith(".json")).sort();
    expect(files).toEqual(Object.keys(built).sort());
    for (const [file, d] of Object.entries(built)) expect(await readFile(path.join(DIR, file), "utf8"), file).toBe(dashboardText(d));
  });

  it("parse, take the Prometheus data source as an input, and every panel queries it", async () => {
    const dashboards = await loadDashboards();
    expect(dashboards.size).toBeGreaterThanOrEqual(3);
    const uids = new Set<string>();
    for (const [file, d] of dashboards) {
      expect(uids.has(d.uid), `${file}: uid ${d.uid} used twice`).toBe(false);
      uids.add(d.uid);
      expect(d.schemaVersion, file).toBe(GRAFANA_SCHEMA_VERSION);
      expect(d.__inputs, file).toEqual([expect.objectContaining({ name: "DS_PROMETHEUS", type: "datasource", pluginId: "prometheus" })]);
      const variables = new Set(d.templating.list.map((v) => v.name));
      expect(variables.has("gateway"), `${file}: a gateway variable`).toBe(true);
      for (const v of d.templating.list) expect(v.datasource?.uid, `${file} variable ${v.name}`).toBe("${DS_PROMETHEUS}");

      const ids = new Set<number>();
      const graphs = d.panels.filter((p) => p.type !== "row");
      expect(graphs.length, file).toBeGreaterThan(3);
      for (const p of d.panels) {
        expect(ids.has(p.id), `${file}: panel id ${p.id} twice`).toBe(false);
        ids.add(p.id);
        expect(p.gridPos.x + p.gridPos.w, `${file} "${p.title}" fits the 24-column grid`).toBeLessThanOrEqual(24);
      }
      for (const p of graphs) {
        expect(p.datasource?.uid, `${file} "${p.title}"`).toBe("${DS_PROMETHEUS}");
        expect(p.targets?.length, `${file} "${p.title}" has targets`).toBeGreaterThan(0);
        const refIds = (p.targets ?? []).map((t) => t.refId);
        expect(new Set(refIds).size, `${file} "${p.title}" refIds`).toBe(refIds.length);
        for (const t of p.targets ?? []) {
          expect(t.expr.trim(), `${file} "${p.title}" ${t.refId}`).not.toBe("");
          expect(t.datasource.uid).toBe("${DS_PROMETHEUS}");
        }
      }
      // Every variable an expression uses is defined (or one of Grafana's own).
      for (const e of expressions(d)) for (const v of analyse(e.expr).variables) expect(variables.has(v) || BUILTIN_VARS.has(v), `${e.where}: $${v} is not defined`).toBe(true);
    }
  });

  it("query only series the gateway exports, by labels those series carry", async () => {
    const exported = await exportedSeries();
    // The recorder and prober export exactly what docs/metrics.md lists.
    expect([...exported.keys()].sort()).toEqual(
      [
        "request_total",
        "response_total",
        "response_latency_ms_bucket",
        "response_latency_ms_sum",
        "response_latency_ms_count",
        "isthmus_denied_total",
        "gateway_alive",
        "gateway_probe_latency_ms_bucket",
        "gateway_probe_latency_ms_sum",
        "gateway_probe_latency_ms_count",
      ].sort(),
    );

    const used = new Set<string>();
    for (const [file, d] of await loadDashboards()) {
      for (const e of expressions(d)) {
        const a = analyse(e.expr);
        expect(a.selectors.length, `${file} ${e.where}: names a series`).toBeGreaterThan(0);
        const available = new Set<string>();
        for (const s of a.selectors) {
          const labels = exported.get(s.metric);
          expect(labels, `${file} ${e.where}: ${s.metric} is not exported by the gateway`).toBeDefined();
          used.add(s.metric);
          for (const l of s.labels) expect(labels?.has(l), `${file} ${e.where}: ${s.metric} has no label ${l}`).toBe(true);
          for (const l of labels ?? []) available.add(l);
        }
        for (const l of a.grouping) expect(available.has(l), `${file} ${e.where}: grouping label ${l} is on none of its series`).toBe(true);
        for (const [, l] of (e.legend ?? "").matchAll(/\{\{\s*(\w+)\s*\}\}/g)) expect(a.grouping.includes(l as string) || available.has(l as string), `${file} ${e.where}: legend label ${l}`).toBe(true);
        if (e.label) expect(available.has(e.label), `${file} ${e.where}: label_values of ${e.label}`).toBe(true);
      }
    }
    // What the dashboards are for: traffic, success, latency, rollouts, probes.
    for (const m of ["request_total", "response_total", "response_latency_ms_bucket", "isthmus_denied_total", "gateway_alive", "gateway_probe_latency_ms_bucket"]) expect(used.has(m), m).toBe(true);
  });

  it("cover traffic by route and cluster, success rate, latency quantiles, rollout progress and probes", async () => {
    const all = [...(await loadDashboards()).values()].flatMap((d) => expressions(d).map((e) => e.expr.replace(/\s+/g, " ")));
    const has = (re: RegExp) => expect(all.some((e) => re.test(e)), String(re)).toBe(true);
    has(/sum by \(route_name, dst_target_cluster\) \(rate\(request_total\{/);
    has(/classification="success"[^/]*\/ sum/);
    for (const q of ["0.5", "0.95", "0.99"]) has(new RegExp(`histogram_quantile\\(${q.replace(".", "\\.")}, sum by \\(le\\) \\(rate\\(response_latency_ms_bucket`));
    has(/rollout_role="canary"/);
    has(/by \(rollout, rollout_role\)/);
    has(/gateway_alive\{/);
    has(/histogram_quantile\(0\.99, sum by \(le\) \(rate\(gateway_probe_latency_ms_bucket/);
  });
});
