// Compiles clusters and routes into an immutable routing table (the translation step between
// "what the user said" and "what the data plane runs").
import { parseDuration } from "../config/duration.ts";
import type { Cluster, RouteRule } from "../config/schemas.ts";
import type { RolloutRecord } from "../rollout/schema.ts";
import type { StoredCluster, StoredRoute } from "../store/types.ts";
import { StickyChooser } from "./choose.ts";
import type { CompiledBackend, CompiledCluster, CompiledMatch, CompiledRollout, CompiledRule, HostEntry, RoutingTable, SessionKey } from "./table.ts";

/** Used when a rule sets no request timeout: every outbound call has a bound (Envoy's default route timeout). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 15_000;

export interface CompileInput {
  version: number;
  clusters: readonly StoredCluster[];
  routes: readonly StoredRoute[];
  rollouts?: readonly RolloutRecord[];
}

const backendId = (b: { cluster: string; service: string; port?: number | undefined }) => `${b.cluster}/${b.service}:${b.port ?? ""}`;

export function compileCluster(name: string, spec: Cluster): CompiledCluster {
  const url = new URL(spec.endpoint);
  const basePath = url.pathname.replace(/\/+$/, "");
  return { name, base: `${url.origin}${basePath}`, origin: url.origin, basePath, trustDomain: spec.trustDomain, spec };
}

export function compileTable(input: CompileInput, now: Date = new Date()): RoutingTable {
  const warnings: string[] = [];
  const clusters = new Map<string, CompiledCluster>();
  for (const c of input.clusters) clusters.set(c.name, compileCluster(c.name, c.spec));

  const exact = new Map<string, CompiledMatch[]>();
  const wildcard = new Map<string, CompiledMatch[]>();
  const catchAll: CompiledMatch[] = [];
  const routes = new Map<string, { revision: number; hostnames: string[] }>();

  // Route name order is the tie-breaker of last resort (Gateway API: oldest, then alphabetical).
  const active = new Map<string, CompiledRollout>();
  for (const r of input.rollouts ?? []) {
    if (r.status.phase !== "Progressing" && r.status.phase !== "Paused") continue;
    active.set(`${r.spec.route}/${r.spec.rule}`, { name: r.name, stableId: backendId(r.spec.stable), canaryId: backendId(r.spec.canary), canary: { cluster: r.spec.canary.cluster, service: r.spec.canary.service, port: r.spec.canary.port }, headerOverride: r.spec.headerOverride ? { name: r.spec.headerOverride.name.toLowerCase(), value: r.spec.headerOverride.value } : null });
  }
  const sorted = [...input.routes].sort((a, b) => a.name.localeCompare(b.name));
  for (const route of sorted) {
    routes.set(route.name, { revision: route.revision, hostnames: route.spec.hostnames });
    const matches = route.spec.rules.flatMap((rule, i) => {
      const compiled = compileRule(route, rule, i, clusters, warnings);
      compiled.rollout = active.get(`${route.name}/${compiled.name}`) ?? null;
      const ro = compiled.rollout;
      if (ro && !compiled.backends.some((b) => b.id === ro.canaryId)) {
        // The canary is reachable by the header override before its first weight is written.
        const c = ro.canary;
        compiled.backends.push({ id: ro.canaryId, cluster: c.cluster, service: c.service, port: c.port, weight: 0, authority: c.port === undefined || c.port === 80 ? c.service : `${c.service}:${c.port}`, target: clusters.get(c.cluster) ?? null, failover: [] });
      }
      return rule.matches.map((m, j): CompiledMatch => ({
        rule: compiled,
        index: j,
        pathType: m.path?.type ?? "PathPrefix",
        pathValue: m.path?.value ?? "/",
        method: m.method,
        headers: (m.headers ?? []).map((h) => [h.name.toLowerCase(), h.value] as const),
        query: (m.queryParams ?? []).map((q) => [q.name, q.value] as const),
      }));
    });
    const hostnames = route.spec.hostnames.length > 0 ? route.spec.hostnames : ["*"];
    for (const h of hostnames) {
      if (h === "*") catchAll.push(...matches);
      else if (h.startsWith("*.")) push(wildcard, h.slice(1), matches);
      else push(exact, h, matches);
    }
  }

  const entries = (m: Map<string, CompiledMatch[]>, label: (k: string) => string) =>
    new Map([...m].map(([k, v]): [string, HostEntry] => [k, { hostname: label(k), matches: sortByPrecedence(v) }]));
  return {
    version: input.version,
    builtAt: now.toISOString(),
    exact: entries(exact, (k) => k),
    wildcard: entries(wildcard, (k) => `*${k}`),
    catchAll: catchAll.length > 0 ? { hostname: "*", matches: sortByPrecedence(catchAll) } : null,
    routes,
    clusters,
    warnings,
  };
}

function compileRule(route: StoredRoute, rule: RouteRule, index: number, clusters: Map<string, CompiledCluster>, warnings: string[]): CompiledRule {
  const name = rule.name ?? `rule-${index}`;
  const backends = rule.backendRefs.map((b): CompiledBackend => {
    const target = clusters.get(b.cluster) ?? null;
    if (!target) warnings.push(`route ${route.name} rule ${name}: backend cluster "${b.cluster}" is not registered`);
    return {
      id: backendId(b),
      cluster: b.cluster,
      service: b.service,
      port: b.port,
      weight: b.weight,
      authority: b.port === undefined || b.port === 80 ? b.service : `${b.service}:${b.port}`,
      target,
      failover: b.failover ?? [],
    };
  });
  const requestTimeoutMs = timeout(rule.timeouts?.request) ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const backendTimeoutMs = Math.min(timeout(rule.timeouts?.backendRequest) ?? requestTimeoutMs, requestTimeoutMs);
  const sessionKeys = (rule.sessionPersistence?.key ?? []).map((k): SessionKey => {
    if (k.header !== undefined) return { header: k.header.toLowerCase() };
    if (k.cookie !== undefined) return { cookie: k.cookie };
    return { jwtClaim: k.jwtClaim as string };
  });
  return {
    route: route.name,
    revision: route.revision,
    name,
    index,
    backends,
    totalWeight: backends.reduce((s, b) => s + b.weight, 0),
    requestTimeoutMs,
    backendTimeoutMs,
    sessionKeys,
    sticky: sessionKeys.length > 0 ? new StickyChooser(backends) : null,
    authorization: route.spec.authorization,
    retry:
      rule.retry && (rule.retry.attempts ?? 1) > 0
        ? { maxTries: 1 + (rule.retry.attempts ?? 1), codes: new Set(rule.retry.codes ?? [502, 503, 504]), backoffMs: parseDuration(rule.retry.backoff ?? "25ms") ?? 25 }
        : null,
    rollout: null,
  };
}

/** "0s" disables a timeout (Gateway API); we map it to the longest allowed instead of "forever". */
function timeout(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  return ms === 0 ? 3_600_000 : ms;
}

function push(map: Map<string, CompiledMatch[]>, key: string, items: CompiledMatch[]): void {
  const list = map.get(key);
  if (list) list.push(...items);
  else map.set(key, [...items]);
}

/**
 * Gateway API precedence: Exact path before prefix, longer prefix first, then a method match,
 * then more header matches, then more query matches; ties keep route-name and rule order (stable sort).
 */
export function sortByPrecedence(matches: CompiledMatch[]): CompiledMatch[] {
  return [...matches].sort((a, b) => {
    if (a.pathType !== b.pathType) return a.pathType === "Exact" ? -1 : 1;
    if (a.pathValue.length !== b.pathValue.length) return b.pathValue.length - a.pathValue.length;
    if ((a.method === undefined) !== (b.method === undefined)) return a.method === undefined ? 1 : -1;
    if (a.headers.length !== b.headers.length) return b.headers.length - a.headers.length;
    return b.query.length - a.query.length;
  });
}
