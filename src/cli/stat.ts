// isthmus stat [ROUTE] [--cluster NAME] [--window 5s]: golden metrics per route and backend
// cluster, like `linkerd viz stat`, from two scrapes of GET /_isthmus/v1/metrics a window apart.
// The gateway's counters are fleet-wide, so the delta is the whole fleet's traffic in the window.
import { durationFlag } from "./args.ts";
import type { Command, Ctx, RouteView } from "./context.ts";
import { ms, percent } from "./output.ts";
import { deltas, histogramQuantile, parsePrometheusText, type PromSample } from "./prom.ts";

export interface StatRow {
  route: string;
  cluster: string;
  requests: number;
  successes: number;
  failures: number;
  successRate: number | null;
  rps: number;
  latencyMsP50: number | null;
  latencyMsP95: number | null;
  latencyMsP99: number | null;
}

/** Rows per (route, destination cluster) from the counter deltas of a window of `seconds`. */
export function statRows(delta: PromSample[], seconds: number, known: Array<{ route: string; cluster: string }> = []): StatRow[] {
  const groups = new Map<string, { route: string; cluster: string; requests: number; ok: number; failed: number; buckets: Map<number, number> }>();
  const group = (route: string, cluster: string) => {
    const k = `${route}\t${cluster}`;
    let g = groups.get(k);
    if (!g) groups.set(k, (g = { route, cluster, requests: 0, ok: 0, failed: 0, buckets: new Map() }));
    return g;
  };
  for (const { route, cluster } of known) group(route, cluster);
  for (const s of delta) {
    const route = s.labels.route_name;
    const cluster = s.labels.dst_target_cluster;
    if (route === undefined || cluster === undefined) continue;
    const g = group(route, cluster);
    if (s.name === "request_total") g.requests += s.value;
    else if (s.name === "response_total") {
      if (s.labels.classification === "failure") g.failed += s.value;
      else g.ok += s.value;
    } else if (s.name === "response_latency_ms_bucket") {
      const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
      if (!Number.isNaN(le)) g.buckets.set(le, (g.buckets.get(le) ?? 0) + s.value);
    }
  }
  return [...groups.values()]
    .sort((a, b) => a.route.localeCompare(b.route) || a.cluster.localeCompare(b.cluster))
    .map((g) => {
      const responses = g.ok + g.failed;
      const buckets = [...g.buckets].map(([le, count]) => ({ le, count }));
      return {
        route: g.route,
        cluster: g.cluster,
        requests: g.requests,
        successes: g.ok,
        failures: g.failed,
        successRate: responses > 0 ? g.ok / responses : null,
        rps: seconds > 0 ? g.requests / seconds : 0,
        latencyMsP50: histogramQuantile(0.5, buckets),
        latencyMsP95: histogramQuantile(0.95, buckets),
        latencyMsP99: histogramQuantile(0.99, buckets),
      };
    });
}

async function stat(ctx: Ctx): Promise<number> {
  const windowMs = durationFlag(ctx.flags, "window", "5s", { minMs: 100, maxMs: 600_000 });
  const onlyRoute = ctx.args[0];
  const onlyCluster = ctx.flags.cluster;
  const { items: routes } = await ctx.client.admin<{ items: RouteView[] }>("GET", "/routes");
  if (onlyRoute && !routes.some((r) => r.name === onlyRoute)) {
    ctx.out.error(new Error(`route "${onlyRoute}" does not exist`));
    return 1;
  }
  const known = routes.flatMap((r) => [...new Set(r.rules.flatMap((rule) => rule.backendRefs.map((b) => b.cluster)))].map((cluster) => ({ route: r.name, cluster })));

  const scrape = async () => ({ at: Date.now(), samples: parsePrometheusText(await ctx.client.adminText("/metrics")) });
  const first = await scrape();
  if (!ctx.out.json && ctx.out.tty) ctx.out.err.write(`sampling for ${windowMs / 1000}s...\r`);
  await new Promise((r) => setTimeout(r, windowMs));
  const second = await scrape();
  if (!ctx.out.json && ctx.out.tty) ctx.out.err.write("\x1b[2K");
  const seconds = (second.at - first.at) / 1000;
  const rows = statRows(deltas(first.samples, second.samples), seconds, known).filter((r) => (!onlyRoute || r.route === onlyRoute) && (!onlyCluster || r.cluster === onlyCluster));

  if (ctx.out.json) {
    ctx.out.emit({ windowSeconds: Number(seconds.toFixed(3)), items: rows });
    return 0;
  }
  if (rows.length === 0) {
    ctx.out.line("No routes to show.");
    return 0;
  }
  const o = ctx.out;
  o.table(
    ["ROUTE", "CLUSTER", "SUCCESS", "RPS", "LATENCY_P50", "LATENCY_P95", "LATENCY_P99"],
    rows.map((r) => {
      const sr = r.successRate === null ? "-" : r.successRate >= 0.99 ? o.green(percent(r.successRate, 2)) : r.successRate >= 0.95 ? o.yellow(percent(r.successRate, 2)) : o.red(percent(r.successRate, 2));
      return [r.route, r.cluster, sr, r.requests > 0 ? `${r.rps.toFixed(1)}rps` : "-", ms(r.latencyMsP50), ms(r.latencyMsP95), ms(r.latencyMsP99)];
    }),
  );
  return 0;
}

export const statCommands: Command[] = [
  {
    path: ["stat"],
    args: ["ROUTE?"],
    synopsis: "[ROUTE] [--window 5s] [--cluster NAME]",
    flags: ["window", "cluster"],
    summary: "success rate, RPS and latency per route and backend cluster over a window (default 5s)",
    help: "Scrapes GET /_isthmus/v1/metrics twice, --window apart (default 5s), and computes from the\nfleet-wide counters: success rate, requests per second, and p50/p95/p99 from response_latency_ms buckets.",
    run: stat,
  },
];
