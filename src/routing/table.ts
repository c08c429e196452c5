// The compiled, immutable routing table: what the data plane runs. Built from the store's
// snapshot by compile.ts, swapped in one pointer move, never mutated after.
import type { Cluster, Route } from "../config/schemas.ts";
import type { StickyChooser } from "./choose.ts";

export interface CompiledCluster {
  name: string;
  /** Endpoint origin plus optional base path, without a trailing slash. */
  base: string;
  /** Scheme, host and port of the endpoint. */
  origin: string;
  /** The endpoint's path without a trailing slash ("" for none): it prefixes every forwarded path. */
  basePath: string;
  trustDomain: string;
  spec: Cluster;
}

export interface CompiledBackend {
  /** cluster/service:port, stable across revisions: sticky choice hashes it. */
  id: string;
  cluster: string;
  service: string;
  port: number | undefined;
  weight: number;
  /** Host header sent upstream: service[:port]. */
  authority: string;
  /** Null when the backend names a cluster that is not registered (yet): requests to it fail with 503. */
  target: CompiledCluster | null;
  /** Clusters that take this backend's share while it is unavailable, in order. */
  failover: readonly string[];
}

export interface CompiledRollout {
  name: string;
  stableId: string;
  canaryId: string;
  canary: { cluster: string; service: string; port: number | undefined };
  headerOverride: { name: string; value: string } | null;
}

export interface CompiledRetry {
  /** First try included. */
  maxTries: number;
  codes: ReadonlySet<number>;
  backoffMs: number;
}

export type SessionKey = { header: string } | { cookie: string } | { jwtClaim: string };

export interface CompiledRule {
  route: string;
  revision: number;
  /** The rule's name, or `rule-<index>` when it has none. */
  name: string;
  index: number;
  backends: CompiledBackend[];
  totalWeight: number;
  requestTimeoutMs: number;
  backendTimeoutMs: number;
  sessionKeys: SessionKey[];
  sticky: StickyChooser | null;
  authorization: Route["authorization"];
  retry: CompiledRetry | null;
  /** The active rollout on this rule: its traffic is labelled, and its header override honoured. */
  rollout: CompiledRollout | null;
}

export interface CompiledMatch {
  rule: CompiledRule;
  /** Index of the match within its rule, for explain. */
  index: number;
  pathType: "Exact" | "PathPrefix";
  pathValue: string;
  method: string | undefined;
  /** Lower-cased header names with their exact values. */
  headers: ReadonlyArray<readonly [string, string]>;
  query: ReadonlyArray<readonly [string, string]>;
}

export interface HostEntry {
  /** The hostname as written in the routes (`*.example.com`, `checkout.shop`, or `*` for routes without hostnames). */
  hostname: string;
  /** Sorted by Gateway API precedence: the first that fits wins. */
  matches: CompiledMatch[];
}

export interface RoutingTable {
  /** The store version this table was built from. */
  version: number;
  builtAt: string;
  exact: ReadonlyMap<string, HostEntry>;
  /** Keyed by the suffix including its leading dot (".example.com"). */
  wildcard: ReadonlyMap<string, HostEntry>;
  catchAll: HostEntry | null;
  routes: ReadonlyMap<string, { revision: number; hostnames: string[] }>;
  clusters: ReadonlyMap<string, CompiledCluster>;
  /** Problems found while compiling (unknown clusters, invalid stored routes): surfaced in readyz. */
  warnings: string[];
}
