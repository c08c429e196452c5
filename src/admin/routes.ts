// Admin API: routes CRUD with ETag/If-Match, revisions and rollback.
import type { Context, Hono } from "hono";
import { z } from "zod";
import { ValidationError, zodToFieldErrors } from "../config/errors.ts";
import { checkRouteReferences, parseName, parseRoute } from "../config/validate.ts";
import { problem, problemType } from "../http/problem.ts";
import { UnknownClusterError, type Precondition, type StoredRoute, type WriteMeta } from "../store/types.ts";
import type { Route } from "../config/schemas.ts";
import { readJsonBody } from "./body.ts";
import { notFound } from "./clusters.ts";
import { etag, preconditionFrom } from "./conditional.ts";
import type { AdminDeps, AdminEnv } from "./deps.ts";
import { withoutReadOnly } from "./read-only.ts";

export type RouteView = Route & { name: string; revision: number; updatedAt: string };
export const routeView = (r: StoredRoute): RouteView => ({ name: r.name, revision: r.revision, updatedAt: r.updatedAt, ...r.spec });

/** Body of POST /routes/{name}/rollback. */
export const rollbackRequestSchema = z.strictObject({ toRevision: z.int("must be an integer").min(1, "must be at least 1") });

export function registerRouteRoutes(app: Hono<AdminEnv>, deps: AdminDeps): void {
  /** putRoute, with a cluster deleted in the meantime reported like any unknown cluster: 400 with paths. */
  const put = async (name: string, spec: Route, pre: Precondition, meta: WriteMeta) => {
    try {
      return await deps.store.putRoute(name, spec, pre, meta);
    } catch (err) {
      if (!(err instanceof UnknownClusterError)) throw err;
      const known = new Set(spec.rules.flatMap((r) => r.backendRefs.flatMap((b) => [b.cluster, ...(b.failover ?? [])])).filter((c) => !err.clusters.includes(c)));
      checkRouteReferences(spec, known);
      throw err;
    }
  };
  const knownClusters = async () => new Set((await deps.store.listClusters()).map((c) => c.name));
  const withEtag = (c: Context<AdminEnv>, r: StoredRoute, status: 200 | 201 = 200) => {
    c.header("ETag", etag(r.revision));
    return c.json(routeView(r), status);
  };

  app.get("/routes", async (c) => c.json({ items: (await deps.store.listRoutes()).map(routeView) }));

  app.get("/routes/:name", async (c) => {
    const name = parseName(c.req.param("name"));
    const route = await deps.store.getRoute(name);
    return route ? withEtag(c, route) : notFound("route", name);
  });

  app.put("/routes/:name", async (c) => {
    const name = parseName(c.req.param("name"));
    const pre = preconditionFrom(c.req.raw.headers);
    const spec = parseRoute(withoutReadOnly(await readJsonBody(c.req.raw), name, ["revision", "updatedAt"]));
    checkRouteReferences(spec, await knownClusters());
    const res = await put(name, spec, pre, { actor: c.get("principal").actor });
    deps.log.info("route written", { route: name, outcome: res.outcome, revision: res.route.revision });
    return withEtag(c, res.route, res.outcome === "created" ? 201 : 200);
  });

  app.delete("/routes/:name", async (c) => {
    const name = parseName(c.req.param("name"));
    const last = await deps.store.deleteRoute(name, preconditionFrom(c.req.raw.headers), { actor: c.get("principal").actor });
    if (last === null) return notFound("route", name);
    deps.log.info("route deleted", { route: name, lastRevision: last });
    return c.body(null, 204);
  });

  app.get("/routes/:name/revisions", async (c) => {
    const name = parseName(c.req.param("name"));
    const revisions = await deps.store.listRevisions(name);
    if (revisions.length === 0) return notFound("route", name);
    return c.json({ name, items: revisions });
  });

  app.post("/routes/:name/rollback", async (c) => {
    const name = parseName(c.req.param("name"));
    const pre = preconditionFrom(c.req.raw.headers);
    const parsed = rollbackRequestSchema.safeParse(await readJsonBody(c.req.raw));
    if (!parsed.success) throw new ValidationError(zodToFieldErrors(parsed.error));
    const target = await deps.store.getRevision(name, parsed.data.toRevision);
    if (!target) {
      return problem({ type: problemType("not-found"), title: "Not found", status: 404, detail: `route "${name}" has no revision ${parsed.data.toRevision} (it never existed or was trimmed from history)` });
    }
    if (!target.spec) throw new ValidationError([{ path: "toRevision", message: `revision ${target.revision} is a ${target.action}; pick a revision that holds a route` }]);
    checkRouteReferences(target.spec, await knownClusters());
    const res = await put(name, target.spec, pre, { actor: c.get("principal").actor, action: "rollback", restoredFrom: target.revision });
    deps.log.info("route rolled back", { route: name, restoredFrom: target.revision, revision: res.route.revision });
    return withEtag(c, res.route, res.outcome === "created" ? 201 : 200);
  });
}
