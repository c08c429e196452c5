// Every PromQL expression of the Grafana dashboards (infra/grafana), run against a real Prometheus
// that a real gateway has pushed its federated series to by remote write: with traffic, failures,
// refusals, a canary rollout and health probes, each query must be accepted and return data.
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildDashboards } from "../../infra/grafana/dashboards.ts";
import { parseCluster, parseRoute } from "../../src/config/validate.ts";
import { startNodeGateway, type RunningGateway } from "../../src/runtime/node.ts";
import { silentLogger } from "../../src/util/log.ts";
import { startPrometheus, type PrometheusServer } from "../helpers/prometheus.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

const TOKEN = "grafana-queries-token-0123456789";
const G = `grafana-${Date.now().toString(36)}`;
const SERVICE = "checkout.shop.svc.cluster.local";
const CANARY = "checkout-v2.shop.svc.cluster.local";

/** What Grafana substitutes for the dashboards' variables when "All" is selected (and this gateway). */
const VALUES: Record<string, string> = {
  gateway: G,
  route_name: ".*",
  dst_target_cluster: ".*",
  rollout: ".+",
  target_cluster: ".*",
  __rate_interval: "1m",
};
const substitute = (expr: string, values = VALUES): string =>
  expr.replace(/\$(?:\{(\w+)\}|(\w+))/g, (whole, a: string | undefined, b: string | undefined) => {
    const v = values[(a ?? b) as string];
    if (v === undefined) throw new Error(`no value for ${whole}`);
    return v;
  });

let prom: PrometheusServer;
let gw: RunningGateway;
let east: Upstream;

async function until(what: string, probe: () => Promise<boolean>, deadlineMs = 15_000): Promise<void> {
  const start = performance.now();
  while (!(await probe())) {
    if (performance.now() - start > deadlineMs) throw new Error(`not within ${deadlineMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function send(host: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await (await request(`${gw.url}/`, { headers: { host } })).body.text();
}

async function admin(method: "GET" | "POST", path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const res = await request(`${gw.url}/_isthmus/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.body.text();
  return { status: res.statusCode, json: text ? (JSON.parse(text) as unknown) : null };
}

beforeAll(async () => {
  prom = await startPrometheus();
  east = await startUpstream("east");
  gw = await startNodeGateway({
    port: 0,
    hostname: "127.0.0.1",
    adminToken: TOKEN,
    log: silentLogger,
    gatewayName: G,
    metricsFlushMs: 3_600_000,
    remoteWriteIntervalMs: 3_600_000,
    probeIntervalMs: 100,
    rolloutTickMs: 100,
    config: {
      clusters: { east: parseCluster({ endpoint: east.url, trustDomain: "east.example", metrics: { remoteWrite: { url: prom.remoteWriteUrl } } }) },
      routes: {
        checkout: parseRoute({ hostnames: ["checkout.shop"], authorization: { unauthenticated: true }, rules: [{ name: "default", backendRefs: [{ cluster: "east", service: SERVICE, port: 8080 }] }] }),
        private: parseRoute({ hostnames: ["private.shop"], rules: [{ backendRefs: [{ cluster: "east", service: SERVICE }] }] }),
      },
    },
  });
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await east?.close();
  await prom?.stop();
});

type DashboardJson = { panels: Array<{ title: string; targets?: Array<{ refId: string; expr: string }> }>; templating: { list: Array<{ name: string; definition: string }> } };
const dashboards = () => Object.entries(buildDashboards()) as Array<[string, DashboardJson]>;

describe("the dashboards' queries", () => {
  it("are all accepted by a Prometheus fed by remote write, and return data", async () => {
    // A canary in the same cluster (so this cluster's Prometheus sees both roles), at 50%.
    const started = await admin("POST", "/rollouts", {
      name: "checkout-v2",
      route: "checkout",
      rule: "default",
      stable: { cluster: "east", service: SERVICE, port: 8080 },
      canary: { cluster: "east", service: CANARY, port: 8080 },
      steps: [{ setWeight: 50 }, { pause: {} }],
      analysis: { onNoData: "hold" },
    });
    expect(started.status, JSON.stringify(started.json)).toBe(201);
    await until("the canary weight is 50", async () => ((await admin("GET", "/rollouts/checkout-v2")).json as { status: { canaryWeight: number } }).status.canaryWeight === 50);
    await gw.routing.reload();
    await until("east probed alive", async () => gw.prober.state("east")?.alive === true);

    // Two rounds of traffic (successes, failures, refusals), each pushed: rate() needs two samples.
    for (let round = 0; round < 2; round++) {
      await send("checkout.shop", 40);
      east.setBehaviour({ status: 500 });
      await send("checkout.shop", 6);
      east.setBehaviour({});
      await send("private.shop", 3);
      const probes = gw.prober.state("east")?.lastProbeAt;
      await until("a new probe", async () => gw.prober.state("east")?.lastProbeAt !== probes);
      await gw.pushMetrics();
      expect(gw.federation.lastResults.get("east")).toMatchObject({ ok: true });
    }
    await until("Prometheus has the second push", async () => (await prom.query(`count(count_over_time(request_total{gateway="${G}"}[5m]) >= 2)`)).length > 0);

    let queries = 0;
    for (const [file, d] of dashboards()) {
      for (const p of d.panels) {
        for (const t of p.targets ?? []) {
          const q = substitute(t.expr);
          const v = await prom.query(q);
          if (q.includes("isthmus_denied_total")) {
            // Refusals name no cluster, so no cluster's slice has them (docs/metrics.md): the query
            // is valid, and empty here; those panels show data where the fleet-wide endpoint is scraped.
            expect(v, `${file} "${p.title}" ${t.refId}: ${q}`).toEqual([]);
          } else expect(v.length, `${file} "${p.title}" ${t.refId} returned nothing: ${q}`).toBeGreaterThan(0);
          queries++;
        }
      }
      for (const variable of d.templating.list) {
        const m = /^label_values\((.+),\s*(\w+)\)$/s.exec(variable.definition) as RegExpExecArray;
        const q = `count by (${m[2]}) (${substitute(m[1] as string)})`;
        const v = await prom.query(q);
        expect(
          v.filter((s) => s.metric[m[2] as string]),
          `${file} variable ${variable.name} lists nothing: ${q}`,
        ).not.toEqual([]);
        queries++;
      }
    }
    expect(queries).toBeGreaterThan(40);

    // The rollout panels see both roles, at about the weight.
    const share = await prom.query(
      substitute(
        'sum by (rollout) (rate(request_total{gateway=~"$gateway", rollout=~"$rollout", rollout_role="canary"}[$__rate_interval])) / sum by (rollout) (rate(request_total{gateway=~"$gateway", rollout=~"$rollout"}[$__rate_interval]))',
      ),
    );
    expect(share[0]?.value).toBeGreaterThan(0.2);
    expect(share[0]?.value).toBeLessThan(0.8);
  }, 60_000);

  it("return data, refusals included, from a Prometheus that scrapes the fleet-wide endpoint", async () => {
    // Runs after the remote-write test: the store holds its traffic. A scrape carries no `gateway`
    // label (infra/grafana/README.md: add one in the scrape config), so "All" matches any.
    const scraper = await startPrometheus({ scrape: { target: `127.0.0.1:${gw.port}`, bearerToken: TOKEN } });
    try {
      await send("checkout.shop", 10);
      await send("private.shop", 2);
      await gw.tasks.flushMetrics();
      await until("two scrapes with refusals", async () => (await scraper.query('count_over_time(isthmus_denied_total{job="isthmus"}[5m]) >= 2')).length > 0);
      const values = { ...VALUES, gateway: ".*" };
      for (const [file, d] of dashboards()) {
        for (const p of d.panels) {
          for (const t of p.targets ?? []) {
            const q = substitute(t.expr, values);
            expect((await scraper.query(q)).length, `${file} "${p.title}" ${t.refId} returned nothing: ${q}`).toBeGreaterThan(0);
          }
        }
      }
    } finally {
      await scraper.stop();
    }
  }, 60_000);
});
