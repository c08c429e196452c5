// Embedded store: the default for a single Node process, development and tests.
// Every method runs to completion synchronously, so each write is atomic.
import type { Cluster, Route } from "../config/schemas.ts";
import type { RolloutEvent, RolloutRecord } from "../rollout/schema.ts";
import { emptyBatch, mergeInto, type MetricBatch } from "../telemetry/metric-batch.ts";
import { canonicalJson } from "../util/canonical-json.ts";
import {
  ClusterInUseError,
  DEFAULT_MAX_REVISIONS,
  MAX_ROLLOUT_EVENTS,
  RolloutConflictError,
  RolloutExistsError,
  RuleClaimedError,
  IssuerConflictError,
  PreconditionFailedError,
  referencedClusters,
  TrustDomainConflictError,
  UnknownClusterError,
  type ChangeEvent,
  type Precondition,
  type PutResult,
  type RevisionRecord,
  type Store,
  type StoredCluster,
  type StoredRoute,
  type StoreSnapshot,
  type WriteMeta,
} from "./types.ts";

interface RouteState {
  current: StoredRoute | null;
  seq: number;
  history: RevisionRecord[]; // newest first
}

export class MemoryStore implements Store {
  readonly kind = "memory" as const;
  private clusters = new Map<string, StoredCluster>();
  private routes = new Map<string, RouteState>();
  private ver = 0;
  private listeners = new Set<(e: ChangeEvent) => void>();
  private metrics: MetricBatch = emptyBatch();
  private appliedFlushes = new Set<string>();
  private locks = new Map<string, { owner: string; until: number }>();
  private rollouts = new Map<string, { record: RolloutRecord; events: RolloutEvent[] }>();
  private ruleClaims = new Map<string, string>();

  constructor(private readonly opts: { maxRevisions?: number; now?: () => Date } = {}) {}

  private now(): string {
    return (this.opts.now?.() ?? new Date()).toISOString();
  }

  private changed(kind: ChangeEvent["kind"], name: string): void {
    this.ver += 1;
    const event = { kind, name, version: this.ver };
    // Deliver asynchronously, as pub/sub would, so listeners never run inside a write.
    for (const l of this.listeners) queueMicrotask(() => l(event));
  }

  async listClusters(): Promise<StoredCluster[]> {
    return [...this.clusters.values()].sort((a, b) => a.name.localeCompare(b.name)).map(clone);
  }
  async getCluster(name: string): Promise<StoredCluster | null> {
    const c = this.clusters.get(name);
    return c ? clone(c) : null;
  }
  async putCluster(name: string, spec: Cluster): Promise<{ cluster: StoredCluster; created: boolean; changed: boolean }> {
    const prev = this.clusters.get(name);
    if (prev && canonicalJson(prev.spec) === canonicalJson(spec)) return { cluster: clone(prev), created: false, changed: false };
    const owner = [...this.clusters.values()].find((c) => c.name !== name && c.spec.trustDomain === spec.trustDomain);
    if (owner) throw new TrustDomainConflictError(spec.trustDomain, owner.name);
    const issuer = spec.bundle?.kubernetes?.issuer;
    const issuerOwner = issuer && [...this.clusters.values()].find((c) => c.name !== name && c.spec.bundle?.kubernetes?.issuer === issuer);
    if (issuer && issuerOwner) throw new IssuerConflictError(issuer, issuerOwner.name);
    const cluster = { name, spec: clone(spec), updatedAt: this.now() };
    this.clusters.set(name, cluster);
    this.changed("cluster", name);
    return { cluster: clone(cluster), created: !prev, changed: true };
  }
  async deleteCluster(name: string): Promise<boolean> {
    const users = [...this.routes.entries()].filter(([, s]) => s.current && referencedClusters(s.current.spec).includes(name)).map(([n]) => n);
    if (users.length > 0 && this.clusters.has(name)) throw new ClusterInUseError(name, users.sort());
    if (!this.clusters.delete(name)) return false;
    this.changed("cluster", name);
    return true;
  }

  async listRoutes(): Promise<StoredRoute[]> {
    return [...this.routes.values()]
      .flatMap((s) => (s.current ? [clone(s.current)] : []))
      .sort((a, b) => a.name.localeCompare(b.name));
  }
  async getRoute(name: string): Promise<StoredRoute | null> {
    const cur = this.routes.get(name)?.current;
    return cur ? clone(cur) : null;
  }

  async putRoute(name: string, spec: Route, pre: Precondition, meta: WriteMeta): Promise<PutResult> {
    return this.putRouteNow(name, spec, pre, meta);
  }

  /** Synchronous, so a caller can combine it with other changes in one atomic step. */
  private putRouteNow(name: string, spec: Route, pre: Precondition, meta: WriteMeta): PutResult {
    const state = this.routes.get(name) ?? { current: null, seq: 0, history: [] };
    const missing = referencedClusters(spec).filter((c) => !this.clusters.has(c));
    if (missing.length > 0) throw new UnknownClusterError(missing);
    checkPrecondition(pre, state.current?.revision ?? 0);
    if (state.current && meta.action !== "rollback" && canonicalJson(state.current.spec) === canonicalJson(spec))
      return { outcome: "unchanged", route: clone(state.current) };
    const created = state.current === null;
    const revision = state.seq + 1;
    const at = this.now();
    const route: StoredRoute = { name, revision, spec: clone(spec), updatedAt: at };
    const action = meta.action ?? (created ? "create" : "update");
    const record: RevisionRecord = { revision, action, at, actor: meta.actor, spec: clone(spec) };
    if (meta.restoredFrom !== undefined) record.restoredFrom = meta.restoredFrom;
    this.routes.set(name, { current: route, seq: revision, history: [record, ...state.history].slice(0, this.maxRevisions) });
    this.changed("route", name);
    return { outcome: created ? "created" : "updated", route: clone(route) };
  }

  async deleteRoute(name: string, pre: Precondition, meta: WriteMeta): Promise<number | null> {
    const state = this.routes.get(name);
    checkPrecondition(pre, state?.current?.revision ?? 0);
    if (!state?.current) return null;
    const last = state.current.revision;
    const revision = state.seq + 1;
    const record: RevisionRecord = { revision, action: "delete", at: this.now(), actor: meta.actor };
    this.routes.set(name, { current: null, seq: revision, history: [record, ...state.history].slice(0, this.maxRevisions) });
    this.changed("route", name);
    return last;
  }

  async listRevisions(name: string): Promise<RevisionRecord[]> {
    return (this.routes.get(name)?.history ?? []).map(clone);
  }
  async getRevision(name: string, revision: number): Promise<RevisionRecord | null> {
    const r = this.routes.get(name)?.history.find((h) => h.revision === revision);
    return r ? clone(r) : null;
  }

  async version(): Promise<number> {
    return this.ver;
  }
  async snapshot(): Promise<StoreSnapshot> {
    return { version: this.ver, clusters: await this.listClusters(), routes: await this.listRoutes(), rollouts: await this.listRollouts() };
  }
  async subscribe(listener: (event: ChangeEvent) => void): Promise<() => Promise<void>> {
    this.listeners.add(listener);
    return async () => {
      this.listeners.delete(listener);
    };
  }
  async createRollout(record: RolloutRecord, event: RolloutEvent): Promise<RolloutRecord> {
    if (this.rollouts.has(record.name)) throw new RolloutExistsError(record.name);
    const owner = this.ruleClaims.get(`${record.spec.route}/${record.spec.rule}`);
    if (owner !== record.name) throw new RuleClaimedError(owner ?? "");
    const stored = { ...clone(record), version: 1 };
    this.rollouts.set(record.name, { record: stored, events: [clone(event)] });
    this.changed("rollout", record.name);
    return clone(stored);
  }
  async getRollout(name: string): Promise<RolloutRecord | null> {
    const r = this.rollouts.get(name);
    return r ? clone(r.record) : null;
  }
  async listRollouts(): Promise<RolloutRecord[]> {
    return [...this.rollouts.values()].map((r) => clone(r.record)).sort((a, b) => a.name.localeCompare(b.name));
  }
  async updateRollout(name: string, expectedVersion: number, next: RolloutRecord, events: RolloutEvent[], route?: { spec: Route; ifMatch: number; actor: string }): Promise<RolloutRecord> {
    const r = this.rollouts.get(name);
    if (!r || r.record.version !== expectedVersion) throw new RolloutConflictError(name);
    let routeRevision = next.status.routeRevision;
    if (route) {
      const res = this.putRouteNow(next.spec.route, route.spec, { ifMatch: route.ifMatch }, { actor: route.actor });
      routeRevision = res.route.revision;
    }
    const stored: RolloutRecord = { ...clone(next), version: expectedVersion + 1, status: { ...clone(next.status), routeRevision } };
    r.record = stored;
    r.events.push(...events.map((e) => ({ ...clone(e), ...(route && e.routeRevision === undefined ? { routeRevision } : {}) })));
    if (r.events.length > MAX_ROLLOUT_EVENTS) r.events.splice(0, r.events.length - MAX_ROLLOUT_EVENTS);
    if (!route) this.changed("rollout", name);
    return clone(stored);
  }
  async claimRolloutRule(route: string, rule: string, name: string, replace?: string): Promise<string> {
    const key = `${route}/${rule}`;
    const cur = this.ruleClaims.get(key);
    // A claim whose owner is no rollout was left by a creation that failed: it may be taken.
    if (cur === undefined || cur === name || (replace !== undefined && cur === replace) || !this.rollouts.has(cur)) {
      this.ruleClaims.set(key, name);
      return name;
    }
    return cur;
  }
  async listRolloutEvents(name: string): Promise<RolloutEvent[]> {
    return clone(this.rollouts.get(name)?.events ?? []);
  }

  async applyMetricDeltas(flushId: string, batch: MetricBatch): Promise<boolean> {
    if (this.appliedFlushes.has(flushId)) return false;
    this.appliedFlushes.add(flushId);
    if (this.appliedFlushes.size > 10_000) this.appliedFlushes.delete(this.appliedFlushes.values().next().value as string);
    mergeInto(this.metrics, batch);
    return true;
  }
  async readMetrics(): Promise<MetricBatch> {
    return structuredClone(this.metrics);
  }
  async tryLock(name: string, owner: string, ttlMs: number): Promise<boolean> {
    const now = this.opts.now?.().getTime() ?? Date.now();
    const held = this.locks.get(name);
    if (held && held.owner !== owner && held.until > now) return false;
    this.locks.set(name, { owner, until: now + ttlMs });
    return true;
  }

  async ping(): Promise<void> {}
  async close(): Promise<void> {
    this.listeners.clear();
  }

  private get maxRevisions(): number {
    return this.opts.maxRevisions ?? DEFAULT_MAX_REVISIONS;
  }
}

/** Shared by both stores so they agree on what a precondition means. */
export function checkPrecondition(pre: Precondition, current: number): void {
  if (pre.ifNoneMatch === "*" && current !== 0) throw new PreconditionFailedError(current);
  if (pre.ifMatch === "*" && current === 0) throw new PreconditionFailedError(current);
  if (typeof pre.ifMatch === "number" && pre.ifMatch !== current) throw new PreconditionFailedError(current);
}

function clone<T>(v: T): T {
  return structuredClone(v);
}
