// Unauthenticated health endpoints: healthz (process alive) and readyz (config loaded, store reachable).
import type { Hono } from "hono";
import type { RoutingState } from "../routing/routing-state.ts";
import type { Store } from "../store/types.ts";

export function registerHealthRoutes(app: Hono, deps: { store: Store; routing: RoutingState }): void {
  app.get("/healthz", (c) => c.json({ status: "ok" }));

  app.get("/readyz", (c) => {
    const { routing, store } = deps;
    const table = routing.current;
    const health = routing.health;
    // The memory store is in-process and always reachable.
    const reachable = store.kind === "memory" || health.reachable;
    const ready = routing.loaded && reachable && !health.storeReset && !routing.provisional;
    const body = {
      status: ready ? "ready" : "not-ready",
      store: {
        kind: store.kind,
        reachable,
        lastOkAt: health.lastOkAt,
        downSince: health.downSince,
        lastError: health.lastError,
        ...(health.storeReset ? { reset: true } : {}),
      },
      routingTable: {
        loaded: routing.loaded,
        version: table.version,
        builtAt: table.builtAt,
        routes: table.routes.size,
        clusters: table.clusters.size,
        warnings: table.warnings,
      },
      // Fail static: while the store is away the data plane keeps routing with the last good table.
      ...(routing.loaded && !reachable ? { note: `store unreachable; serving the last good routing table (version ${table.version})` } : {}),
      ...(health.storeReset ? { note: "the store lost its data (version went backwards, no routes); serving the last good routing table until routes are written again" } : {}),
      ...(routing.provisional ? { note: "serving routes from memory (ISTHMUS_CONFIG or the last snapshot file) until the store holds them" } : {}),
    };
    return c.json(body, ready ? 200 : 503);
  });
}
