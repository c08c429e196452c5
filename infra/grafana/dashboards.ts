// The Grafana dashboards of infra/grafana/*.json, as code: `npx tsx infra/grafana/generate.ts`
// writes the JSON files, and test/unit/grafana.test.ts checks that they are what this builds and that
// every PromQL expression in them names only series and labels the gateway exports.
//
// They read the series the gateway federates to each cluster's Prometheus (docs/metrics.md):
// Linkerd's request_total / response_total / response_latency_ms, isthmus_denied_total, and the
// health probes' gateway_alive / gateway_probe_latency_ms, with the `gateway` external label that
// remote write adds.

type Json = Record<string, unknown>;

export const GRAFANA_SCHEMA_VERSION = 39;
const DS = { type: "prometheus", uid: "${DS_PROMETHEUS}" } as const;
const RATE = "[$__rate_interval]";

// ------------------------------------------------------------------ PromQL helpers

/** `metric{matchers}`; matchers are joined with ", ". */
const sel = (metric: string, ...matchers: Array<string | undefined>): string => `${metric}{${matchers.filter((m) => m).join(", ")}}`;
const rate = (selector: string): string => `rate(${selector}${RATE})`;
const sumBy = (labels: string[], expr: string): string => (labels.length > 0 ? `sum by (${labels.join(", ")}) (${expr})` : `sum(${expr})`);
const quantile = (q: number, metric: string, by: string[], matchers: string): string => `histogram_quantile(${q}, ${sumBy(["le", ...by], rate(`${metric}{${matchers}}`))})`;
/** Share of successful responses: success / all, per `by`. */
const successRate = (by: string[], matchers: string): string =>
  `${sumBy(by, rate(sel("response_total", matchers, 'classification="success"')))}\n/\n${sumBy(by, rate(sel("response_total", matchers)))}`;

/** isthmus_denied_total names no cluster, so remote write sends it to none: it shows where the fleet-wide endpoint is scraped. */
const DENIED_NOTE = "Refusals name no cluster, so remote write pushes them to no cluster's Prometheus: this panel shows data where /_isthmus/v1/metrics is scraped without ?cluster.";

const TRAFFIC = 'gateway=~"$gateway", route_name=~"$route_name", dst_target_cluster=~"$dst_target_cluster"';
const DENIED = 'gateway=~"$gateway", route_name=~"$route_name"';
const ROLLOUT = 'gateway=~"$gateway", route_name=~"$route_name", rollout=~"$rollout"';
const PROBES = 'gateway=~"$gateway", target_cluster_name=~"$target_cluster"';

// ------------------------------------------------------------------ panels

interface Target {
  expr: string;
  legend?: string;
}

interface PanelSpec {
  title: string;
  description: string;
  type?: "timeseries" | "stat" | "state-timeline";
  unit?: string;
  targets: Target[];
  w?: number;
  h?: number;
  min?: number;
  max?: number;
  /** Stat/timeseries thresholds: [color, from] pairs after the base color. */
  thresholds?: { base: string; steps: Array<[string, number]> };
  mappings?: unknown[];
  stack?: "normal" | "percent";
}

type Item = PanelSpec | { row: string };

function targetsOf(p: PanelSpec): Json[] {
  return p.targets.map((t, i) => ({
    refId: String.fromCharCode(65 + i),
    datasource: DS,
    expr: t.expr,
    legendFormat: t.legend ?? "__auto",
    range: true,
    instant: false,
    editorMode: "code",
  }));
}

function panel(p: PanelSpec, id: number, gridPos: Json): Json {
  const type = p.type ?? "timeseries";
  const thresholds = p.thresholds ?? { base: "green", steps: [] };
  const defaults: Json = {
    unit: p.unit ?? "short",
    ...(p.min !== undefined ? { min: p.min } : {}),
    ...(p.max !== undefined ? { max: p.max } : {}),
    color: { mode: type === "timeseries" ? "palette-classic" : "thresholds" },
    thresholds: { mode: "absolute", steps: [{ color: thresholds.base, value: null }, ...thresholds.steps.map(([color, value]) => ({ color, value }))] },
    mappings: p.mappings ?? [],
  };
  if (type === "timeseries") {
    defaults.custom = {
      drawStyle: "line",
      lineWidth: 1,
      fillOpacity: p.stack ? 30 : 10,
      showPoints: "never",
      spanNulls: false,
      stacking: { mode: p.stack ?? "none", group: "A" },
      axisSoftMin: 0,
    };
  }
  if (type === "state-timeline") defaults.custom = { fillOpacity: 80, lineWidth: 0 };
  const options: Json =
    type === "stat"
      ? { reduceOptions: { calcs: ["lastNotNull"], fields: "", values: false }, colorMode: "value", graphMode: "area", justifyMode: "auto", orientation: "auto", textMode: "auto" }
      : type === "state-timeline"
        ? { showValue: "never", mergeValues: true, alignValue: "left", rowHeight: 0.9, legend: { displayMode: "list", placement: "bottom", showLegend: true }, tooltip: { mode: "single", sort: "none" } }
        : { legend: { displayMode: "table", placement: "bottom", showLegend: true, calcs: ["mean", "max", "lastNotNull"] }, tooltip: { mode: "multi", sort: "desc" } };
  return { id, type, title: p.title, description: p.description, datasource: DS, gridPos, fieldConfig: { defaults, overrides: [] }, options, targets: targetsOf(p) };
}

/** Lays out rows and panels on Grafana's 24-column grid. */
function layout(items: Item[]): Json[] {
  const out: Json[] = [];
  let id = 1;
  let x = 0;
  let y = 0;
  let rowHeight = 0;
  for (const item of items) {
    if ("row" in item) {
      if (x > 0) y += rowHeight;
      out.push({ id: id++, type: "row", title: item.row, collapsed: false, panels: [], gridPos: { h: 1, w: 24, x: 0, y } });
      y += 1;
      x = 0;
      rowHeight = 0;
      continue;
    }
    const w = item.w ?? 12;
    const h = item.h ?? 8;
    if (x + w > 24) {
      y += rowHeight;
      x = 0;
      rowHeight = 0;
    }
    out.push(panel(item, id++, { h, w, x, y }));
    x += w;
    rowHeight = Math.max(rowHeight, h);
  }
  return out;
}

// ------------------------------------------------------------------ variables

function queryVariable(name: string, label: string, query: string, allValue: string, description: string): Json {
  return {
    name,
    label,
    description,
    type: "query",
    datasource: DS,
    definition: query,
    query: { query, refId: "PrometheusVariableQueryEditor-VariableQuery" },
    refresh: 2,
    includeAll: true,
    multi: true,
    allValue,
    current: { selected: true, text: ["All"], value: ["$__all"] },
    options: [],
    regex: "",
    sort: 1,
    hide: 0,
    skipUrlSync: false,
  };
}

const gatewayVar = (metric: string): Json =>
  queryVariable("gateway", "Gateway", `label_values(${metric}, gateway)`, ".*", "The gateway that pushed the series (ISTHMUS_GATEWAY_NAME, the `gateway` label remote write adds)");
const routeVar = queryVariable("route_name", "Route", 'label_values(request_total{gateway=~"$gateway"}, route_name)', ".*", "isthmus route");
const dstClusterVar = queryVariable(
  "dst_target_cluster",
  "Destination cluster",
  'label_values(request_total{gateway=~"$gateway", route_name=~"$route_name"}, dst_target_cluster)',
  ".*",
  "The cluster the gateway forwarded to",
);
const rolloutVar = queryVariable(
  "rollout",
  "Rollout",
  'label_values(request_total{gateway=~"$gateway", route_name=~"$route_name", rollout!=""}, rollout)',
  ".+",
  "Canary rollout (only traffic labelled with a rollout)",
);
const targetClusterVar = queryVariable("target_cluster", "Probed cluster", 'label_values(gateway_alive{gateway=~"$gateway"}, target_cluster_name)', ".*", "The cluster whose endpoint is probed");

// ------------------------------------------------------------------ dashboards

interface DashboardSpec {
  uid: string;
  title: string;
  description: string;
  variables: Json[];
  items: Item[];
}

const PANEL_PLUGINS: Record<string, string> = { timeseries: "Time series", stat: "Stat", "state-timeline": "State timeline" };

function dashboard(d: DashboardSpec): Json {
  const panels = layout(d.items);
  const types = [...new Set(panels.map((p) => p.type as string).filter((t) => t !== "row"))].sort();
  return {
    __inputs: [{ name: "DS_PROMETHEUS", label: "Prometheus", description: "The Prometheus that receives this cluster's slice of the isthmus metrics", type: "datasource", pluginId: "prometheus", pluginName: "Prometheus" }],
    __elements: {},
    __requires: [
      { type: "grafana", id: "grafana", name: "Grafana", version: "10.4.0" },
      { type: "datasource", id: "prometheus", name: "Prometheus", version: "1.0.0" },
      ...types.map((t) => ({ type: "panel", id: t, name: PANEL_PLUGINS[t] ?? t, version: "" })),
    ],
    annotations: {
      list: [{ builtIn: 1, datasource: { type: "grafana", uid: "-- Grafana --" }, enable: true, hide: true, iconColor: "rgba(0, 211, 255, 1)", name: "Annotations & Alerts", type: "dashboard" }],
    },
    description: d.description,
    editable: true,
    fiscalYearStartMonth: 0,
    graphTooltip: 1,
    id: null,
    links: [{ title: "isthmus", type: "dashboards", tags: ["isthmus"], asDropdown: true, includeVars: true, keepTime: true, icon: "external link", targetBlank: false, tooltip: "", url: "" }],
    panels,
    refresh: "30s",
    schemaVersion: GRAFANA_SCHEMA_VERSION,
    tags: ["isthmus", "multicluster"],
    templating: { list: d.variables },
    time: { from: "now-1h", to: "now" },
    timepicker: {},
    timezone: "browser",
    title: d.title,
    uid: d.uid,
    version: 1,
    weekStart: "",
  };
}

const SUCCESS_THRESHOLDS = { base: "red", steps: [["orange", 0.95], ["green", 0.99]] as Array<[string, number]> };
const LATENCY_THRESHOLDS = { base: "green", steps: [["orange", 500], ["red", 1000]] as Array<[string, number]> };

const traffic: DashboardSpec = {
  uid: "isthmus-traffic",
  title: "isthmus / Cross-cluster traffic",
  description: "Traffic the isthmus gateway forwarded across clusters, as this cluster's Prometheus receives it: rates, success and latency by route and cluster.",
  variables: [gatewayVar("request_total"), routeVar, dstClusterVar],
  items: [
    { row: "Overview" },
    { type: "stat", w: 6, h: 5, title: "Requests / s", unit: "reqps", description: "Every try counts (retries included).", targets: [{ expr: sumBy([], rate(sel("request_total", TRAFFIC))) }] },
    { type: "stat", w: 6, h: 5, title: "Success rate", unit: "percentunit", min: 0, max: 1, thresholds: SUCCESS_THRESHOLDS, description: "Responses classified success (not 5xx, not a gateway error) over all responses.", targets: [{ expr: successRate([], TRAFFIC) }] },
    { type: "stat", w: 6, h: 5, title: "p99 latency", unit: "ms", thresholds: LATENCY_THRESHOLDS, description: "Time from the request to the response headers, 99th percentile.", targets: [{ expr: quantile(0.99, "response_latency_ms_bucket", [], TRAFFIC) }] },
    { type: "stat", w: 6, h: 5, title: "Denied / s", unit: "reqps", thresholds: { base: "green", steps: [["orange", 0.1]] }, description: `Callers refused before any upstream call (unauthenticated or forbidden). ${DENIED_NOTE}`, targets: [{ expr: sumBy([], rate(sel("isthmus_denied_total", DENIED))) }] },

    { row: "Traffic" },
    {
      title: "Requests / s by route and destination cluster",
      unit: "reqps",
      description: "rate(request_total) by route_name and dst_target_cluster.",
      targets: [{ expr: sumBy(["route_name", "dst_target_cluster"], rate(sel("request_total", TRAFFIC))), legend: "{{route_name}} → {{dst_target_cluster}}" }],
    },
    {
      title: "Requests / s by source and destination cluster",
      unit: "reqps",
      description: "Cross-cluster flows: the verified caller's cluster (empty for unauthenticated routes) to the destination.",
      targets: [{ expr: sumBy(["src_cluster", "dst_target_cluster"], rate(sel("request_total", TRAFFIC))), legend: "{{src_cluster}} → {{dst_target_cluster}}" }],
    },
    {
      title: "Requests / s by destination service",
      unit: "reqps",
      stack: "normal",
      description: "rate(request_total) by dst_target_cluster and dst_target_service.",
      targets: [{ expr: sumBy(["dst_target_cluster", "dst_target_service"], rate(sel("request_total", TRAFFIC))), legend: "{{dst_target_service}} ({{dst_target_cluster}})" }],
    },
    {
      title: "Responses / s by status code",
      unit: "reqps",
      stack: "normal",
      description: "rate(response_total) by status_code (0: the gateway got no answer).",
      targets: [{ expr: sumBy(["status_code"], rate(sel("response_total", TRAFFIC))), legend: "{{status_code}}" }],
    },

    { row: "Success" },
    {
      title: "Success rate by route",
      unit: "percentunit",
      max: 1,
      thresholds: SUCCESS_THRESHOLDS,
      description: "response_total{classification=\"success\"} over all responses, by route.",
      targets: [{ expr: successRate(["route_name"], TRAFFIC), legend: "{{route_name}}" }],
    },
    {
      title: "Success rate by destination cluster",
      unit: "percentunit",
      max: 1,
      thresholds: SUCCESS_THRESHOLDS,
      description: "response_total{classification=\"success\"} over all responses, by destination cluster.",
      targets: [{ expr: successRate(["dst_target_cluster"], TRAFFIC), legend: "{{dst_target_cluster}}" }],
    },
    {
      title: "Failures / s by route and status code",
      unit: "reqps",
      description: "Responses classified failure: 5xx from upstream, and the gateway's own 502/503/504.",
      targets: [{ expr: sumBy(["route_name", "dst_target_cluster", "status_code"], rate(sel("response_total", TRAFFIC, 'classification="failure"'))), legend: "{{route_name}} → {{dst_target_cluster}} {{status_code}}" }],
    },
    {
      title: "Denied / s by route and reason",
      unit: "reqps",
      description: `isthmus_denied_total: callers without a valid identity (unauthenticated) or not admitted by the route (forbidden). ${DENIED_NOTE}`,
      targets: [{ expr: sumBy(["route_name", "reason"], rate(sel("isthmus_denied_total", DENIED))), legend: "{{route_name}} {{reason}}" }],
    },

    { row: "Latency" },
    {
      title: "Latency p50 / p95 / p99",
      unit: "ms",
      description: "histogram_quantile over response_latency_ms_bucket (Linkerd's buckets): time to the response headers.",
      targets: [
        { expr: quantile(0.5, "response_latency_ms_bucket", [], TRAFFIC), legend: "p50" },
        { expr: quantile(0.95, "response_latency_ms_bucket", [], TRAFFIC), legend: "p95" },
        { expr: quantile(0.99, "response_latency_ms_bucket", [], TRAFFIC), legend: "p99" },
      ],
    },
    {
      title: "p99 latency by route and destination cluster",
      unit: "ms",
      description: "99th percentile per route and destination cluster.",
      targets: [{ expr: quantile(0.99, "response_latency_ms_bucket", ["route_name", "dst_target_cluster"], TRAFFIC), legend: "{{route_name}} → {{dst_target_cluster}}" }],
    },
    {
      title: "p95 latency by destination cluster",
      unit: "ms",
      description: "95th percentile per destination cluster.",
      targets: [{ expr: quantile(0.95, "response_latency_ms_bucket", ["dst_target_cluster"], TRAFFIC), legend: "{{dst_target_cluster}}" }],
    },
    {
      title: "Mean latency by route",
      unit: "ms",
      description: "response_latency_ms_sum over response_latency_ms_count.",
      targets: [
        {
          expr: `${sumBy(["route_name"], rate(sel("response_latency_ms_sum", TRAFFIC)))}\n/\n${sumBy(["route_name"], rate(sel("response_latency_ms_count", TRAFFIC)))}`,
          legend: "{{route_name}}",
        },
      ],
    },
  ],
};

const rollouts: DashboardSpec = {
  uid: "isthmus-rollouts",
  title: "isthmus / Canary rollouts",
  description:
    "Canary rollouts run by the isthmus gateway: the canary's share of requests against stable, and the success rate and latency of each role (series labelled rollout and rollout_role).",
  // No destination-cluster filter here: stable and canary may sit in different clusters, and a
  // share needs both sides.
  variables: [gatewayVar("request_total"), routeVar, rolloutVar],
  items: [
    { row: "Progress" },
    {
      type: "stat",
      w: 8,
      h: 5,
      title: "Canary share of requests",
      unit: "percentunit",
      min: 0,
      max: 1,
      description: "The canary's share of the rollout's requests over the last interval: follows its weight.",
      targets: [{ expr: `${sumBy(["rollout"], rate(sel("request_total", ROLLOUT, 'rollout_role="canary"')))}\n/\n${sumBy(["rollout"], rate(sel("request_total", ROLLOUT)))}`, legend: "{{rollout}}" }],
    },
    {
      type: "stat",
      w: 8,
      h: 5,
      title: "Canary success rate",
      unit: "percentunit",
      min: 0,
      max: 1,
      thresholds: SUCCESS_THRESHOLDS,
      description: "What the rollout's analysis judges (over its own interval).",
      targets: [{ expr: successRate(["rollout"], `${ROLLOUT}, rollout_role="canary"`), legend: "{{rollout}}" }],
    },
    {
      type: "stat",
      w: 8,
      h: 5,
      title: "Canary p99 latency",
      unit: "ms",
      thresholds: LATENCY_THRESHOLDS,
      description: "99th percentile of the canary's responses.",
      targets: [{ expr: quantile(0.99, "response_latency_ms_bucket", ["rollout"], `${ROLLOUT}, rollout_role="canary"`), legend: "{{rollout}}" }],
    },
    {
      title: "Share of requests: canary vs stable",
      unit: "percentunit",
      max: 1,
      stack: "normal",
      description: "Each role's share of the rollout's requests: the canary's rises with its weight, steps and pauses show.",
      targets: [
        {
          expr: `${sumBy(["rollout", "rollout_role"], rate(sel("request_total", ROLLOUT)))}\n/ ignoring (rollout_role) group_left\n${sumBy(["rollout"], rate(sel("request_total", ROLLOUT)))}`,
          legend: "{{rollout}} {{rollout_role}}",
        },
      ],
    },
    {
      title: "Requests / s by role",
      unit: "reqps",
      description: "rate(request_total) by rollout and rollout_role.",
      targets: [{ expr: sumBy(["rollout", "rollout_role", "dst_target_cluster"], rate(sel("request_total", ROLLOUT))), legend: "{{rollout}} {{rollout_role}} → {{dst_target_cluster}}" }],
    },

    { row: "Canary analysis" },
    {
      title: "Success rate: canary vs stable",
      unit: "percentunit",
      max: 1,
      thresholds: SUCCESS_THRESHOLDS,
      description: "The rollout's analysis compares these (successRate.min, compareWithStable.maxSuccessRateDrop).",
      targets: [{ expr: successRate(["rollout", "rollout_role"], ROLLOUT), legend: "{{rollout}} {{rollout_role}}" }],
    },
    {
      title: "p99 latency: canary vs stable",
      unit: "ms",
      description: "The rollout's analysis compares these (latencyP99Ms.max, compareWithStable.maxLatencyP99Ratio).",
      targets: [{ expr: quantile(0.99, "response_latency_ms_bucket", ["rollout", "rollout_role"], ROLLOUT), legend: "{{rollout}} {{rollout_role}}" }],
    },
    {
      title: "p50 latency: canary vs stable",
      unit: "ms",
      description: "Median latency of each role.",
      targets: [{ expr: quantile(0.5, "response_latency_ms_bucket", ["rollout", "rollout_role"], ROLLOUT), legend: "{{rollout}} {{rollout_role}}" }],
    },
    {
      title: "Failures / s by role and status code",
      unit: "reqps",
      description: "Responses classified failure, per role: a fast abort (fastAbort.errorRate) watches the canary's.",
      targets: [{ expr: sumBy(["rollout", "rollout_role", "status_code"], rate(sel("response_total", ROLLOUT, 'classification="failure"'))), legend: "{{rollout}} {{rollout_role}} {{status_code}}" }],
    },
  ],
};

const ALIVE_MAPPINGS = [{ type: "value", options: { "0": { text: "down", color: "red", index: 0 }, "1": { text: "alive", color: "green", index: 1 } } }];

const health: DashboardSpec = {
  uid: "isthmus-gateway-probes",
  title: "isthmus / Gateway probes",
  description: "The isthmus gateway's health probes of each cluster's endpoint (gateway_alive, gateway_probe_latency_ms), beside the traffic sent to each cluster.",
  variables: [gatewayVar("gateway_alive"), targetClusterVar],
  items: [
    { row: "Probes" },
    {
      type: "stat",
      w: 6,
      h: 5,
      title: "Clusters alive",
      description: "Clusters whose probe passes (gateway_alive 1).",
      targets: [{ expr: `sum(min by (target_cluster_name) (${sel("gateway_alive", PROBES)}))` }],
    },
    {
      type: "stat",
      w: 6,
      h: 5,
      title: "Clusters down",
      thresholds: { base: "green", steps: [["red", 1]] },
      description: "Clusters marked not alive after 3 consecutive failed probes: their share fails over.",
      targets: [{ expr: `count(min by (target_cluster_name) (${sel("gateway_alive", PROBES)}) == 0) or vector(0)` }],
    },
    {
      type: "stat",
      w: 12,
      h: 5,
      title: "Probe p99 latency",
      unit: "ms",
      thresholds: LATENCY_THRESHOLDS,
      description: "99th percentile of successful probes, all clusters.",
      targets: [{ expr: quantile(0.99, "gateway_probe_latency_ms_bucket", [], PROBES) }],
    },
    {
      type: "state-timeline",
      w: 24,
      title: "Probe state by cluster",
      mappings: ALIVE_MAPPINGS,
      thresholds: { base: "red", steps: [["green", 1]] },
      description: "gateway_alive per probed cluster (the lowest any gateway instance reports).",
      targets: [{ expr: `min by (target_cluster_name) (${sel("gateway_alive", PROBES)})`, legend: "{{target_cluster_name}}" }],
    },
    {
      title: "Probe latency p50 / p95 / p99",
      unit: "ms",
      description: "histogram_quantile over gateway_probe_latency_ms_bucket.",
      targets: [
        { expr: quantile(0.5, "gateway_probe_latency_ms_bucket", [], PROBES), legend: "p50" },
        { expr: quantile(0.95, "gateway_probe_latency_ms_bucket", [], PROBES), legend: "p95" },
        { expr: quantile(0.99, "gateway_probe_latency_ms_bucket", [], PROBES), legend: "p99" },
      ],
    },
    {
      title: "Probe p95 latency by cluster",
      unit: "ms",
      description: "95th percentile of successful probes, per probed cluster.",
      targets: [{ expr: quantile(0.95, "gateway_probe_latency_ms_bucket", ["target_cluster_name"], PROBES), legend: "{{target_cluster_name}}" }],
    },
    {
      title: "Successful probes / s by cluster",
      unit: "reqps",
      description: "rate(gateway_probe_latency_ms_count): drops to 0 while a cluster fails its probes.",
      targets: [{ expr: sumBy(["target_cluster_name"], rate(sel("gateway_probe_latency_ms_count", PROBES))), legend: "{{target_cluster_name}}" }],
    },
    {
      title: "Mean probe latency by cluster",
      unit: "ms",
      description: "gateway_probe_latency_ms_sum over gateway_probe_latency_ms_count.",
      targets: [
        {
          expr: `${sumBy(["target_cluster_name"], rate(sel("gateway_probe_latency_ms_sum", PROBES)))}\n/\n${sumBy(["target_cluster_name"], rate(sel("gateway_probe_latency_ms_count", PROBES)))}`,
          legend: "{{target_cluster_name}}",
        },
      ],
    },

    { row: "Traffic to the probed clusters" },
    {
      title: "Requests / s to each cluster",
      unit: "reqps",
      description: "Traffic forwarded to each probed cluster: a cluster that goes down should see its share move to its failover clusters.",
      targets: [{ expr: sumBy(["dst_target_cluster"], rate(sel("request_total", 'gateway=~"$gateway"', 'dst_target_cluster=~"$target_cluster"'))), legend: "{{dst_target_cluster}}" }],
    },
    {
      title: "Success rate to each cluster",
      unit: "percentunit",
      max: 1,
      thresholds: SUCCESS_THRESHOLDS,
      description: "Success rate of the responses from each probed cluster.",
      targets: [{ expr: successRate(["dst_target_cluster"], 'gateway=~"$gateway", dst_target_cluster=~"$target_cluster"'), legend: "{{dst_target_cluster}}" }],
    },
  ],
};

/** File name -> dashboard JSON. */
export function buildDashboards(): Record<string, Json> {
  return {
    "isthmus-traffic.json": dashboard(traffic),
    "isthmus-rollouts.json": dashboard(rollouts),
    "isthmus-gateway-probes.json": dashboard(health),
  };
}

/** The text of a dashboard file as generate.ts writes it. */
export const dashboardText = (d: Json): string => `${JSON.stringify(d, null, 2)}\n`;
