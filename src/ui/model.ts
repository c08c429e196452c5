// What the dashboard shows, gathered in one place: clusters with their probe state and routes with
// their live split come from the routing table this instance serves (no store round trip, and still
// there while the store is down); rollouts come from the store.
import type { AdminDeps } from "../admin/deps.ts";
import type { RolloutEvent, RolloutRecord } from "../rollout/schema.ts";
import type { CompiledRule, HostEntry, RoutingTable } from "../routing/table.ts";
import type { StoreHealth } from "../routing/routing-state.ts";
import type { ProbeState } from "../telemetry/health-probes.ts";
import { errorMessage } from "../util/log.ts";

export interface ClusterModel {
  name: string;
  endpoint: string;
  trustDomain: string;
  health: ProbeState | null;
}

export interface BackendModel {
  /** cluster/service:port */
  id: string;
  cluster: string;
  service: string;
  port: number | undefined;
  weight: number;
  /** Share of the rule's traffic, 0..1 (0 when the rule's total weight is 0). */
  share: number;
  /** The cluster is not registered: requests to this backend fail. */
  unknownCluster: boolean;
  failover: readonly string[];
  role: "stable" | "canary" | null;
}

export interface RuleModel {
  name: string;
  index: number;
  totalWeight: number;
  backends: BackendModel[];
  rollout: string | null;
}

export interface RouteModel {
  name: string;
  revision: number;
  hostnames: string[];
  rules: RuleModel[];
}

export interface RolloutModel {
  record: RolloutRecord;
  /** Newest last; only for rollouts still running. */
  events: RolloutEvent[];
}

export interface DashboardModel {
  generatedAt: string;
  table: { version: number; builtAt: string; warnings: string[] };
  store: StoreHealth;
  clusters: ClusterModel[];
  routes: RouteModel[];
  rollouts: RolloutModel[];
  /** Set when the rollouts could not be read (store unreachable). */
  rolloutsError: string | null;
}

/** Rollouts shown: every running one, then the most recently updated finished ones up to this many in all. */
export const MAX_ROLLOUTS_SHOWN = 12;
/** Events shown per running rollout. */
export const MAX_EVENTS_SHOWN = 8;

export const isRunning = (r: RolloutRecord): boolean => r.status.phase === "Progressing" || r.status.phase === "Paused";

export async function loadDashboard(deps: AdminDeps): Promise<DashboardModel> {
  const table = deps.routing.current;
  let rollouts: RolloutModel[] = [];
  let rolloutsError: string | null = null;
  try {
    const all = await deps.store.listRollouts();
    const shown = all
      .sort((a, b) => Number(isRunning(b)) - Number(isRunning(a)) || b.updatedAt.localeCompare(a.updatedAt) || a.name.localeCompare(b.name))
      .slice(0, Math.max(MAX_ROLLOUTS_SHOWN, all.filter(isRunning).length));
    rollouts = await Promise.all(shown.map(async (record) => ({ record, events: isRunning(record) ? (await deps.store.listRolloutEvents(record.name)).slice(-MAX_EVENTS_SHOWN) : [] })));
  } catch (err) {
    rolloutsError = errorMessage(err);
  }
  return {
    generatedAt: new Date().toISOString(),
    table: { version: table.version, builtAt: table.builtAt, warnings: table.warnings },
    store: { ...deps.routing.health },
    clusters: [...table.clusters.values()]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((c) => ({ name: c.name, endpoint: c.spec.endpoint, trustDomain: c.trustDomain, health: deps.telemetry?.probe(c.name) ?? null })),
    routes: routesOf(table),
    rollouts,
    rolloutsError,
  };
}

/** The routes of a compiled table with their rules in order, rebuilt from its host entries. */
export function routesOf(table: RoutingTable): RouteModel[] {
  const rules = new Map<string, Map<number, CompiledRule>>();
  const entries: Array<HostEntry | null> = [...table.exact.values(), ...table.wildcard.values(), table.catchAll];
  for (const entry of entries) {
    for (const m of entry?.matches ?? []) {
      let byIndex = rules.get(m.rule.route);
      if (!byIndex) rules.set(m.rule.route, (byIndex = new Map()));
      byIndex.set(m.rule.index, m.rule);
    }
  }
  return [...table.routes]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, r]) => ({
      name,
      revision: r.revision,
      hostnames: r.hostnames,
      rules: [...(rules.get(name)?.values() ?? [])].sort((a, b) => a.index - b.index).map(ruleModel),
    }));
}

function ruleModel(rule: CompiledRule): RuleModel {
  const ro = rule.rollout;
  return {
    name: rule.name,
    index: rule.index,
    totalWeight: rule.totalWeight,
    rollout: ro?.name ?? null,
    backends: rule.backends.map((b) => ({
      id: b.id,
      cluster: b.cluster,
      service: b.service,
      port: b.port,
      weight: b.weight,
      share: rule.totalWeight > 0 ? b.weight / rule.totalWeight : 0,
      unknownCluster: b.target === null,
      failover: b.failover,
      role: ro ? (b.id === ro.canaryId ? "canary" : b.id === ro.stableId ? "stable" : null) : null,
    })),
  };
}
