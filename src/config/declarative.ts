// Declarative configuration (ISTHMUS_CONFIG): clusters and routes in one JSON or YAML document,
// applied at start. Applying the same document twice changes nothing (no new revisions).
import { parse as parseYaml, YAMLParseError } from "yaml";
import { z } from "zod";
import type { Store } from "../store/types.ts";
import { ValidationError, zodToFieldErrors } from "./errors.ts";
import { clusterSchema, resourceName, routeSchema, type Cluster, type Route } from "./schemas.ts";
import { checkRouteReferences } from "./validate.ts";

const configSchema = z.strictObject({
  clusters: z.record(resourceName, clusterSchema).default({}),
  routes: z.record(resourceName, routeSchema).default({}),
});

export interface DeclarativeConfig {
  clusters: Record<string, Cluster>;
  routes: Record<string, Route>;
}

/** Parses and validates a config document (YAML 1.2, so JSON too); every problem is reported with its path. */
export function parseConfigText(text: string): DeclarativeConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text, { maxAliasCount: 100, uniqueKeys: true });
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos ? ` at line ${err.linePos[0].line}` : "";
    throw new ValidationError([{ path: "config", message: `not valid JSON or YAML${where}: ${(err as Error).message.split("\n")[0]}` }]);
  }
  const parsed = configSchema.safeParse(doc ?? {});
  if (!parsed.success) throw new ValidationError(zodToFieldErrors(parsed.error));
  const config = parsed.data;
  const unique: Array<{ path: string; message: string }> = [];
  const seenTd = new Map<string, string>();
  const seenIss = new Map<string, string>();
  for (const [name, c] of Object.entries(config.clusters)) {
    const td = seenTd.get(c.trustDomain);
    if (td) unique.push({ path: `clusters.${name}.trustDomain`, message: `already used by cluster "${td}"` });
    else seenTd.set(c.trustDomain, name);
    const iss = c.bundle?.kubernetes?.issuer;
    const owner = iss ? seenIss.get(iss) : undefined;
    if (iss && owner) unique.push({ path: `clusters.${name}.bundle.kubernetes.issuer`, message: `already used by cluster "${owner}"` });
    else if (iss) seenIss.set(iss, name);
  }
  if (unique.length > 0) throw new ValidationError(unique);
  const known = new Set(Object.keys(config.clusters));
  const errors = Object.entries(config.routes).flatMap(([name, route]) => {
    try {
      checkRouteReferences(route, known);
      return [];
    } catch (err) {
      return (err as ValidationError).errors.map((e) => ({ path: `routes.${name}.${e.path}`, message: `${e.message} (not in this file's clusters)` }));
    }
  });
  if (errors.length > 0) throw new ValidationError(errors);
  return config;
}

export interface ApplySummary {
  clusters: { created: string[]; updated: string[]; unchanged: string[] };
  routes: { created: string[]; updated: string[]; unchanged: string[] };
}

/** Writes clusters first (routes reference them), then routes. Does not delete what the file omits. */
export async function applyConfig(store: Store, config: DeclarativeConfig, actor: string): Promise<ApplySummary> {
  const summary: ApplySummary = { clusters: { created: [], updated: [], unchanged: [] }, routes: { created: [], updated: [], unchanged: [] } };
  for (const [name, spec] of Object.entries(config.clusters)) {
    const r = await store.putCluster(name, spec);
    summary.clusters[r.created ? "created" : r.changed ? "updated" : "unchanged"].push(name);
  }
  for (const [name, spec] of Object.entries(config.routes)) {
    const r = await store.putRoute(name, spec, {}, { actor });
    summary.routes[r.outcome].push(name);
  }
  return summary;
}
