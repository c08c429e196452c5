// Admin API: clusters CRUD.
import type { Hono } from "hono";
import { parseCluster, parseName } from "../config/validate.ts";
import { problem, problemType } from "../http/problem.ts";
import type { StoredCluster } from "../store/types.ts";
import { readJsonBody } from "./body.ts";
import type { AdminDeps } from "./deps.ts";
import { withoutReadOnly } from "./read-only.ts";

export const clusterView = (c: StoredCluster) => ({ name: c.name, ...c.spec, updatedAt: c.updatedAt });

export function registerClusterRoutes(app: Hono, deps: AdminDeps): void {
  app.get("/clusters", async (c) => c.json({ items: (await deps.store.listClusters()).map(clusterView) }));

  app.get("/clusters/:name", async (c) => {
    const name = parseName(c.req.param("name"));
    const cluster = await deps.store.getCluster(name);
    return cluster ? c.json(clusterView(cluster)) : notFound("cluster", name);
  });

  app.put("/clusters/:name", async (c) => {
    const name = parseName(c.req.param("name"));
    const spec = parseCluster(withoutReadOnly(await readJsonBody(c.req.raw), name, ["updatedAt"]));
    const others = (await deps.store.listClusters()).filter((o) => o.name !== name);
    const clash = others.find((o) => o.spec.trustDomain === spec.trustDomain);
    if (clash) {
      // Trust domains pick the bundle that verifies a caller: two clusters sharing one would blur identities.
      return problem({ type: problemType("conflict"), title: "Conflict", status: 409, detail: `trust domain "${spec.trustDomain}" is already used by cluster "${clash.name}"`, errors: [{ path: "trustDomain", message: `already used by cluster "${clash.name}"` }] });
    }
    const res = await deps.store.putCluster(name, spec);
    deps.log.info("cluster written", { cluster: name, created: res.created, changed: res.changed });
    return c.json(clusterView(res.cluster), res.created ? 201 : 200);
  });

  app.delete("/clusters/:name", async (c) => {
    const name = parseName(c.req.param("name"));
    const users = (await deps.store.listRoutes()).filter((r) => r.spec.rules.some((rule) => rule.backendRefs.some((b) => b.cluster === name)));
    if (users.length > 0) {
      return problem({ type: problemType("conflict"), title: "Conflict", status: 409, detail: `cluster "${name}" is a backend of route(s) ${users.map((u) => u.name).join(", ")}; change those routes first` });
    }
    if (!(await deps.store.deleteCluster(name))) return notFound("cluster", name);
    deps.log.info("cluster deleted", { cluster: name });
    return c.body(null, 204);
  });
}

export function notFound(kind: string, name: string): Response {
  return problem({ type: problemType("not-found"), title: "Not found", status: 404, detail: `${kind} "${name}" does not exist` });
}
