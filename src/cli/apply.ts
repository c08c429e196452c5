// isthmus apply -f FILE [--dry-run]: the ISTHMUS_CONFIG document ({clusters, routes}) written
// through the admin API, clusters first (routes name them), each resource reported as created,
// changed or unchanged. Like `kubectl apply` without --prune: what the file omits is left alone.
// --dry-run writes nothing and prints, per resource, a unified diff of its JSON against the gateway's.
import { z } from "zod";
import { zodToFieldErrors } from "../config/errors.ts";
import { clusterSchema, resourceName, routeSchema } from "../config/schemas.ts";
import { DocumentError, readDocument } from "./args.ts";
import { ApiError } from "./client.ts";
import type { ClusterView, Command, Ctx, RolloutView, RouteView } from "./context.ts";
import { TERMINAL_PHASES } from "./context.ts";
import { stableJson, unifiedDiff } from "./diff.ts";
import { describeError, errorJson } from "./output.ts";

const documentSchema = z.strictObject({
  clusters: z.record(resourceName, clusterSchema).default({}),
  routes: z.record(resourceName, routeSchema).default({}),
});

type Kind = "cluster" | "route";
type Outcome = "created" | "changed" | "unchanged";

interface Resource {
  kind: Kind;
  name: string;
  /** As written in the file (sent as is: the gateway validates and defaults it). */
  raw: unknown;
  /** After the schema's defaults, comparable with what the gateway answers. */
  desired: unknown;
}

interface Result {
  kind: Kind;
  name: string;
  outcome?: Outcome;
  revision?: number;
  diff?: string[];
  error?: unknown;
}

/** The document, validated with the gateway's own schemas: every problem with its path. */
export function parseApplyDocument(doc: unknown): Resource[] {
  const parsed = documentSchema.safeParse(doc ?? {});
  if (!parsed.success) throw new DocumentError("the file is not a valid isthmus config", zodToFieldErrors(parsed.error));
  const raw = (doc ?? {}) as { clusters?: Record<string, unknown>; routes?: Record<string, unknown> };
  return [
    ...Object.entries(parsed.data.clusters).map(([name, desired]) => ({ kind: "cluster" as const, name, raw: raw.clusters?.[name], desired })),
    ...Object.entries(parsed.data.routes).map(([name, desired]) => ({ kind: "route" as const, name, raw: raw.routes?.[name], desired })),
  ];
}

/** The spec part of what the gateway answers (read-only fields dropped). */
function specOf(kind: Kind, view: ClusterView | RouteView): unknown {
  if (kind === "cluster") {
    const { name: _n, updatedAt: _u, status: _s, ...spec } = view as ClusterView;
    return spec;
  }
  const { name: _n, updatedAt: _u, revision: _r, ...spec } = view as RouteView;
  return spec;
}

async function apply(ctx: Ctx): Promise<number> {
  const file = ctx.flags.file;
  const dryRun = !!ctx.flags["dry-run"];
  let resources: Resource[];
  try {
    resources = parseApplyDocument(await readDocument(file, "apply"));
  } catch (err) {
    if (!(err instanceof DocumentError)) throw err;
    if (ctx.out.json) ctx.out.emit({ error: { title: err.message, errors: err.errors } });
    else {
      ctx.out.err.write(`error: ${err.message}\n`);
      for (const e of err.errors) ctx.out.err.write(`  ${e.path}: ${e.message}\n`);
    }
    return 1;
  }

  const [clusters, routes] = await Promise.all([
    ctx.client.admin<{ items: ClusterView[] }>("GET", "/clusters").then((r) => new Map(r.items.map((c) => [c.name, c]))),
    ctx.client.admin<{ items: RouteView[] }>("GET", "/routes").then((r) => new Map(r.items.map((c) => [c.name, c]))),
  ]);

  // Every backend must name a cluster of this file or of the gateway: checked before anything is written.
  const knownClusters = new Set([...clusters.keys(), ...resources.filter((r) => r.kind === "cluster").map((r) => r.name)]);
  const refErrors = resources.flatMap((r) =>
    r.kind !== "route"
      ? []
      : (r.desired as RouteView).rules.flatMap((rule, i) =>
          rule.backendRefs.flatMap((b, j) => [
            ...(knownClusters.has(b.cluster) ? [] : [{ path: `routes.${r.name}.rules[${i}].backendRefs[${j}].cluster`, message: `unknown cluster "${b.cluster}" (not in this file, not on the gateway)` }]),
            ...(b.failover ?? []).flatMap((c, k) => (knownClusters.has(c) ? [] : [{ path: `routes.${r.name}.rules[${i}].backendRefs[${j}].failover[${k}]`, message: `unknown cluster "${c}"` }])),
          ]),
        ),
  );
  if (refErrors.length > 0) {
    if (ctx.out.json) ctx.out.emit({ error: { title: "the file names clusters that do not exist", errors: refErrors } });
    else {
      ctx.out.err.write("error: the file names clusters that do not exist; nothing was written\n");
      for (const e of refErrors) ctx.out.err.write(`  ${e.path}: ${e.message}\n`);
    }
    return 1;
  }

  const results = dryRun ? plan(resources, clusters, routes, file ?? "-") : await write(ctx, resources, clusters, routes);
  const failed = results.some((r) => r.error !== undefined);
  if (ctx.out.json) {
    ctx.out.emit({ dryRun, items: results.map((r) => (r.error === undefined ? r : { ...r, error: errorJson(r.error) })) });
    return failed ? 1 : 0;
  }
  const o = ctx.out;
  for (const r of results) {
    if (r.error !== undefined) {
      for (const l of describeError(r.error, `${r.kind}/${r.name}`)) o.err.write(`${l}\n`);
      continue;
    }
    const outcome = r.outcome === "unchanged" ? o.dim("unchanged") : r.outcome === "created" ? o.green("created") : o.yellow("changed");
    o.line(`${r.kind}/${r.name} ${outcome}${r.revision !== undefined && r.outcome !== "unchanged" && !dryRun ? ` (revision ${r.revision})` : ""}${dryRun && r.outcome !== "unchanged" ? " (dry run)" : ""}`);
    for (const l of r.diff ?? []) o.line(l.startsWith("+") && !l.startsWith("+++") ? o.green(l) : l.startsWith("-") && !l.startsWith("---") ? o.red(l) : l.startsWith("@@") ? o.paint("dim", l) : l);
  }
  const count = (x: Outcome) => results.filter((r) => r.outcome === x).length;
  const errors = results.filter((r) => r.error !== undefined).length;
  o.line(`${dryRun ? "dry run, nothing written: would create" : "created"} ${count("created")}, ${dryRun ? "change" : "changed"} ${count("changed")}, unchanged ${count("unchanged")}${errors > 0 ? `, ${o.red(`${errors} failed`)}` : ""}`);
  return failed ? 1 : 0;
}

function plan(resources: Resource[], clusters: Map<string, ClusterView>, routes: Map<string, RouteView>, file: string): Result[] {
  return resources.map((r) => {
    const current = r.kind === "cluster" ? clusters.get(r.name) : routes.get(r.name);
    const before = current ? stableJson(specOf(r.kind, current)) : "";
    const after = stableJson(r.desired);
    const outcome: Outcome = !current ? "created" : before === after ? "unchanged" : "changed";
    const from = current ? `${r.kind}/${r.name} (gateway${r.kind === "route" ? `, revision ${(current as RouteView).revision}` : ""})` : `${r.kind}/${r.name} (absent)`;
    const diff = outcome === "unchanged" ? [] : unifiedDiff(before, after, { from, to: `${r.kind}/${r.name} (${file})` });
    return { kind: r.kind, name: r.name, outcome, diff, ...(r.kind === "route" && current ? { revision: (current as RouteView).revision } : {}) };
  });
}

async function write(ctx: Ctx, resources: Resource[], clusters: Map<string, ClusterView>, routes: Map<string, RouteView>): Promise<Result[]> {
  const running = await ctx.client
    .admin<{ items: RolloutView[] }>("GET", "/rollouts")
    .then((r) => r.items.filter((x) => !TERMINAL_PHASES.has(x.status.phase)))
    .catch(() => [] as RolloutView[]);
  const results: Result[] = [];
  // Clusters first: the routes of the same file may name them.
  for (const r of resources) {
    const path = `/${r.kind === "cluster" ? "clusters" : "routes"}/${encodeURIComponent(r.name)}`;
    try {
      const res = await ctx.client.adminWithHeaders<ClusterView | RouteView>("PUT", path, r.raw);
      if (r.kind === "cluster") {
        const before = clusters.get(r.name);
        const outcome: Outcome = res.status === 201 ? "created" : before && before.updatedAt === (res.body as ClusterView).updatedAt ? "unchanged" : "changed";
        results.push({ kind: r.kind, name: r.name, outcome });
      } else {
        const before = routes.get(r.name);
        const revision = (res.body as RouteView).revision;
        const outcome: Outcome = res.status === 201 ? "created" : before && before.revision === revision ? "unchanged" : "changed";
        results.push({ kind: r.kind, name: r.name, outcome, revision });
        const rollout = running.find((x) => x.spec.route === r.name);
        if (outcome === "changed" && rollout) ctx.out.warn(`route/${r.name} has a running rollout (${rollout.name}): its weights are managed by the rollout`);
      }
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      results.push({ kind: r.kind, name: r.name, error: err });
    }
  }
  return results;
}

export const applyCommands: Command[] = [
  {
    path: ["apply"],
    args: [],
    synopsis: "-f FILE [--dry-run]",
    flags: ["file", "dry-run"],
    summary: "create or update clusters and routes from a JSON/YAML file ({clusters, routes})",
    help: "Idempotent: clusters are written first, then routes; unchanged resources are reported unchanged and get\nno new revision. Nothing is deleted. --dry-run writes nothing and prints a diff per resource.",
    run: apply,
  },
];
