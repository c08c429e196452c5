// Admin API: clusters CRUD.
import type { Hono } from "hono";
import { parseCluster, parseName } from "../config/validate.ts";
import { problem, problemType } from "../http/problem.ts";
import type { StoredCluster } from "../store/types.ts";
import type { ProbeState } from "../telemetry/health-probes.ts";
import { readJsonBody } from "./body.ts";
import type { AdminDeps, AdminEnv } from "./deps.ts";
import { withoutReadOnly } from "./read-only.ts";

export type ClusterView = StoredCluster["spec"] & { name: string; updatedAt: string; status?: { health: ProbeState | null } };
export const clusterView = (c: StoredCluster, deps?: AdminDeps): ClusterView => ({
  name: c.name,
  ...c.spec,
  updatedAt: c.updatedAt,
  ...(deps?.telemetry ? { status: { health: deps.telemetry.probe(c.name) } } : {}),
});

export function registerClusterRoutes(app: Hono<AdminEnv>, deps: AdminDeps): void {
  app.get("/clusters", async (c) => c.json({ items: (await deps.store.listClusters()).map((x) => clusterView(x, deps)) }));

  app.get("/clusters/:name", async (c) => {
    const name = parseName(c.req.param("name"));
    const cluster = await deps.store.getCluster(name);
    return cluster ? c.json(clusterView(cluster, deps)) : notFound("cluster", name);
  });

  app.put("/clusters/:name", async (c) => {
    const name = parseName(c.req.param("name"));
    const spec = parseCluster(withoutReadOnly(await readJsonBody(c.req.raw), name, ["updatedAt", "status"]));
    // The store enforces one cluster per trust domain atomically (TrustDomainConflictError -> 409).
    const res = await deps.store.putCluster(name, spec);
    deps.log.info("cluster written", { cluster: name, created: res.created, changed: res.changed });
    return c.json(clusterView(res.cluster, deps), res.created ? 201 : 200);
  });

  app.delete("/clusters/:name", async (c) => {
    const name = parseName(c.req.param("name"));
    // Refused atomically while a route names the cluster (ClusterInUseError -> 409).
    if (!(await deps.store.deleteCluster(name))) return notFound("cluster", name);
    deps.log.info("cluster deleted", { cluster: name });
    return c.body(null, 204);
  });
}

export function notFound(kind: string, name: string): Response {
  return problem({ type: problemType("not-found"), title: "Not found", status: 404, detail: `${kind} "${name}" does not exist` });
}
