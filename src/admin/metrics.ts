// GET /metrics: fleet-wide totals in Prometheus text format, all or one cluster's slice.
import type { Hono } from "hono";
import { ValidationError } from "../config/errors.ts";
import { resourceName } from "../config/schemas.ts";
import { involves, renderText } from "../telemetry/exposition.ts";
import type { AdminDeps, AdminEnv } from "./deps.ts";
import { notFound } from "./clusters.ts";

export function registerMetricsRoute(app: Hono<AdminEnv>, deps: AdminDeps): void {
  app.get("/metrics", async (c) => {
    const t = deps.telemetry;
    if (!t) return notFound("endpoint", "metrics");
    const cluster = c.req.query("cluster");
    if (cluster !== undefined) {
      if (!resourceName.safeParse(cluster).success) throw new ValidationError([{ path: "query.cluster", message: "must be a cluster name" }]);
      if (!deps.routing.current.clusters.has(cluster)) return notFound("cluster", cluster);
    }
    // This instance's latest samples first, so a scrape right after traffic sees it.
    await t.flush();
    const totals = await deps.store.readMetrics();
    const body = renderText([totals, t.localMetrics()], cluster === undefined ? undefined : (s) => involves(s, cluster));
    return c.body(body, 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
  });
}
