import { type z } from "zod";
import { ValidationError, zodToFieldErrors } from "./errors.ts";
import { clusterSchema, resourceName, routeSchema, type Cluster, type Route } from "./schemas.ts";

function parseWith<S extends z.ZodType>(schema: S, input: unknown, prefix: PropertyKey[] = []): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) throw new ValidationError(zodToFieldErrors(result.error, prefix));
  return result.data;
}

/** Validates a cluster document; throws ValidationError listing every problem. */
export const parseCluster = (input: unknown, prefix: PropertyKey[] = []): Cluster => parseWith(clusterSchema, input, prefix);
/** Validates a route document; throws ValidationError listing every problem. */
export const parseRoute = (input: unknown, prefix: PropertyKey[] = []): Route => parseWith(routeSchema, input, prefix);
/** Validates a resource name (path segment); throws ValidationError with path `name`. */
export const parseName = (input: unknown): string => parseWith(resourceName, input, ["name"]);

/** Route checks that need the registered clusters: every backend must name a known cluster. */
export function checkRouteReferences(route: Route, knownClusters: ReadonlySet<string>): void {
  const errors = route.rules.flatMap((rule, r) =>
    rule.backendRefs.flatMap((b, i) => [
      ...(knownClusters.has(b.cluster) ? [] : [{ path: `rules[${r}].backendRefs[${i}].cluster`, message: `unknown cluster "${b.cluster}"` }]),
      ...(b.failover ?? []).flatMap((c, k) => (knownClusters.has(c) ? [] : [{ path: `rules[${r}].backendRefs[${i}].failover[${k}]`, message: `unknown cluster "${c}"` }])),
    ]),
  );
  if (errors.length > 0) throw new ValidationError(errors);
}
