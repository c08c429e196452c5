// Admin API: canary rollouts (start, read, verbs, audit trail).
import type { Context, Hono } from "hono";
import { z } from "zod";
import { ValidationError, zodToFieldErrors } from "../config/errors.ts";
import { parseName } from "../config/validate.ts";
import { problem, problemType } from "../http/problem.ts";
import { rolloutSchema, type RolloutRecord } from "../rollout/schema.ts";
import { applyVerb, initialStatus, VerbConflictError, type Verb } from "../rollout/verbs.ts";
import { currentCanaryWeight, rolloutFitErrors } from "../rollout/weights.ts";
import { RolloutExistsError, RuleClaimedError } from "../store/types.ts";
import { claimRule, RuleBusyError } from "../rollout/rule-claim.ts";
import { notifyEvents } from "../rollout/webhooks.ts";
import { readJsonBody } from "./body.ts";
import { notFound } from "./clusters.ts";
import type { AdminDeps, AdminEnv } from "./deps.ts";

export interface RolloutView {
  name: string;
  spec: RolloutRecord["spec"];
  status: RolloutRecord["status"] & { weights: { stable: number; canary: number } };
  createdAt: string;
  updatedAt: string;
}

export const rolloutView = (r: RolloutRecord): RolloutView => {
  const { checkpoint: _checkpoint, ...status } = r.status;
  return { name: r.name, spec: r.spec, status: { ...status, checkpoint: null, weights: { stable: 100 - r.status.canaryWeight, canary: r.status.canaryWeight } }, createdAt: r.createdAt, updatedAt: r.updatedAt };
};

/** Body of POST /rollouts/{name}/promote (optional: no body is a one-step promote). */
export const promoteRequestSchema = z.strictObject({ full: z.boolean().optional() });

/** 409: another rollout holds the rule (found busy when claiming, or it took the claim while this one was being created). */
function ruleBusy(owner: string, route: string, rule: string): Response {
  return problem({ type: problemType("conflict"), title: "Conflict", status: 409, detail: `rollout "${owner}" is already running on route ${route} rule ${rule}` });
}

export function registerRolloutRoutes(app: Hono<AdminEnv>, deps: AdminDeps): void {
  const now = () => new Date();
  const after = () => deps.routing.reload();

  app.post("/rollouts", async (c) => {
    const parsed = rolloutSchema.safeParse(await readJsonBody(c.req.raw));
    if (!parsed.success) throw new ValidationError(zodToFieldErrors(parsed.error));
    const spec = parsed.data;
    const route = await deps.store.getRoute(spec.route);
    if (!route) return problem({ type: problemType("not-found"), title: "Not found", status: 404, detail: `route "${spec.route}" does not exist`, errors: [{ path: "route", message: "no such route" }] });
    const errors = rolloutFitErrors(route.spec, spec);
    const clusters = new Set((await deps.store.listClusters()).map((x) => x.name));
    for (const role of ["stable", "canary"] as const) if (!clusters.has(spec[role].cluster)) errors.push({ path: `${role}.cluster`, message: `unknown cluster "${spec[role].cluster}"` });
    if (errors.length > 0) throw new ValidationError(errors);
    if (await deps.store.getRollout(spec.name)) return problem({ type: problemType("conflict"), title: "Conflict", status: 409, detail: `rollout "${spec.name}" already exists` });
    try {
      await claimRule(deps.store, spec.route, spec.rule, spec.name);
    } catch (err) {
      if (err instanceof RuleBusyError) return ruleBusy(err.owner, spec.route, spec.rule);
      throw err;
    }
    const at = now();
    const actor = c.get("principal").actor;
    const record: RolloutRecord = { name: spec.name, spec, status: initialStatus(at, currentCanaryWeight(route.spec, spec), route.revision), version: 0, createdAt: at.toISOString(), updatedAt: at.toISOString() };
    try {
      const createdEvent = { at: at.toISOString(), actor, type: "Created", message: `rollout started by ${actor}`, phase: "Progressing" as const, step: 0, canaryWeight: record.status.canaryWeight, routeRevision: route.revision };
      const created = await deps.store.createRollout(record, createdEvent);
      deps.log.info("rollout started", { rollout: spec.name, route: spec.route, rule: spec.rule, actor });
      if (deps.fetch) void notifyEvents(deps.fetch, created, [createdEvent]);
      return c.json(rolloutView(created), 201);
    } catch (err) {
      if (err instanceof RolloutExistsError) return problem({ type: problemType("conflict"), title: "Conflict", status: 409, detail: err.message });
      // Another rollout took the rule while this one was being created (it saw no record yet): it runs, this one does not.
      if (err instanceof RuleClaimedError) return ruleBusy(err.owner, spec.route, spec.rule);
      throw err;
    }
  });

  app.get("/rollouts", async (c) => c.json({ items: (await deps.store.listRollouts()).map(rolloutView) }));

  app.get("/rollouts/:name", async (c) => {
    const name = parseName(c.req.param("name"));
    const r = await deps.store.getRollout(name);
    if (!r) return notFound("rollout", name);
    // What GET reports, this gateway already serves: catch the table up to the rollout's route revision.
    if ((deps.routing.current.routes.get(r.spec.route)?.revision ?? 0) < r.status.routeRevision) await deps.routing.reload();
    return c.json(rolloutView(r));
  });

  app.get("/rollouts/:name/events", async (c) => {
    const name = parseName(c.req.param("name"));
    if (!(await deps.store.getRollout(name))) return notFound("rollout", name);
    return c.json({ name, items: await deps.store.listRolloutEvents(name) });
  });

  const verb = (v: Verb) => async (c: Context<AdminEnv>) => {
    const name = parseName(c.req.param("name"));
    let full = false;
    if (v === "promote" && c.req.header("content-length") !== "0" && (c.req.header("content-type") || c.req.header("transfer-encoding"))) {
      const body = promoteRequestSchema.safeParse(await readJsonBody(c.req.raw));
      if (!body.success) throw new ValidationError(zodToFieldErrors(body.error));
      full = body.data.full ?? false;
    }
    try {
      const r = await applyVerb(deps.store, name, v, c.get("principal").actor, { full }, now, after, deps.fetch ? (rec, events) => void notifyEvents(deps.fetch as NonNullable<AdminDeps["fetch"]>, rec, events) : undefined);
      if (!r) return notFound("rollout", name);
      deps.log.info("rollout verb", { rollout: name, verb: v, actor: c.get("principal").actor, phase: r.status.phase });
      return c.json(rolloutView(r));
    } catch (err) {
      if (err instanceof VerbConflictError) return problem({ type: problemType("conflict"), title: "Conflict", status: 409, detail: err.message, phase: err.phase });
      if (err instanceof RuleBusyError) return problem({ type: problemType("conflict"), title: "Conflict", status: 409, detail: `cannot retry: ${err.message}` });
      throw err;
    }
  };
  for (const v of ["promote", "pause", "resume", "abort", "retry"] as const) app.post(`/rollouts/:name/${v}`, verb(v));
}
