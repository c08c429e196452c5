// Small builders for valid resources. Everything goes through parseRoute/parseCluster, so the
// result carries the schema defaults exactly as a stored spec would.
import type { Cluster, ClusterInput, Route, RouteInput } from "../../src/config/schemas.ts";
import { parseCluster, parseRoute } from "../../src/config/validate.ts";

export const baseClusterInput = {
  endpoint: "https://east.example.com",
  trustDomain: "east.example.com",
} as const satisfies ClusterInput;

export const baseRouteInput = {
  hostnames: ["shop.example.com"],
  rules: [{ backendRefs: [{ cluster: "east", service: "checkout.shop.svc.cluster.local", port: 8080 }] }],
} as const satisfies RouteInput;

/** A valid cluster; top-level fields of `overrides` replace the defaults. */
export function cluster(overrides: Partial<ClusterInput> = {}): Cluster {
  return parseCluster({ ...baseClusterInput, ...overrides });
}

/** A valid route; top-level fields of `overrides` replace the defaults. */
export function route(overrides: Partial<RouteInput> = {}): Route {
  return parseRoute({ ...structuredClone(baseRouteInput), ...overrides });
}

/** The n-th of a family of distinct routes (they differ in their hostname). */
export function routeN(n: number, overrides: Partial<RouteInput> = {}): Route {
  return route({ hostnames: [`host-${n}.example.com`], ...overrides });
}

/**
 * A valid cluster named `name`, with an endpoint and a trust domain of its own
 * (`https://<name>.example.com`, `<name>.example.com`): `clusterNamed("east")` equals `cluster()`.
 */
export function clusterNamed(name: string, overrides: Partial<ClusterInput> = {}): Cluster {
  return cluster({ endpoint: `https://${name}.example.com`, trustDomain: `${name}.example.com`, ...overrides });
}

/** A valid route with one rule whose backends are one service in each of `clusters`, in that order. */
export function routeVia(clusters: string[], overrides: Partial<RouteInput> = {}): Route {
  return route({
    rules: [{ backendRefs: clusters.map((c) => ({ cluster: c, service: "checkout.shop.svc.cluster.local", port: 8080 })) }],
    ...overrides,
  });
}
