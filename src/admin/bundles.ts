// GET /bundles: the trust bundles as this instance holds them (loaded, keys, refresh times, last
// error), so `isthmus check` can say which bundle is failing and why.
import type { Hono } from "hono";
import { notFound } from "./clusters.ts";
import type { AdminEnv } from "./deps.ts";

export function registerBundleStatusRoute(app: Hono<AdminEnv>, deps: { trust?: { status(): unknown[] } }): void {
  app.get("/bundles", (c) => (deps.trust ? c.json({ items: deps.trust.status() }) : notFound("endpoint", "bundles")));
}
