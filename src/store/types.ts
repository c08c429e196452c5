// The store port: where clusters and routes live. Two implementations share one contract
// (test/integration/store-contract.test.ts): an embedded in-memory store and a Redis store.
import type { Cluster, Route } from "../config/schemas.ts";
import type { MetricBatch } from "../telemetry/metric-batch.ts";
import type { RolloutEvent, RolloutRecord } from "../rollout/schema.ts";

export interface StoredCluster {
  name: string;
  spec: Cluster;
  updatedAt: string;
}

export interface StoredRoute {
  name: string;
  /** Monotonic per route, never reused, also across delete and re-create. */
  revision: number;
  spec: Route;
  updatedAt: string;
}

export type RevisionAction = "create" | "update" | "rollback" | "delete";

export interface RevisionRecord {
  revision: number;
  action: RevisionAction;
  at: string;
  actor: string;
  /** The route as of this revision; absent for a delete, or when the snapshot was trimmed. */
  spec?: Route;
  /** For a rollback: the revision whose spec was restored. */
  restoredFrom?: number;
}

/**
 * A conditional write. `ifMatch` is the revision the caller last saw (HTTP If-Match);
 * `ifNoneMatch: "*"` means create only; `ifMatch: "*"` means the route must exist.
 */
export interface Precondition {
  ifMatch?: number | "*";
  ifNoneMatch?: "*";
}

export interface WriteMeta {
  actor: string;
  action?: "rollback";
  restoredFrom?: number;
}

export type PutResult =
  | { outcome: "created" | "updated"; route: StoredRoute }
  /** The spec equals the current one: no new revision (declarative apply is idempotent). */
  | { outcome: "unchanged"; route: StoredRoute };

export interface ChangeEvent {
  /** `resync`: notifications may have been missed (e.g. the subscriber reconnected); reload everything. */
  kind: "route" | "cluster" | "rollout" | "resync";
  name: string;
  version: number;
}

export interface StoreSnapshot {
  version: number;
  clusters: StoredCluster[];
  routes: StoredRoute[];
  /** Rollouts, so the table can label their traffic and honour their header override. */
  rollouts?: RolloutRecord[];
}

export interface Store {
  readonly kind: "memory" | "redis";

  listClusters(): Promise<StoredCluster[]>;
  getCluster(name: string): Promise<StoredCluster | null>;
  /**
   * Creates or replaces a cluster; `changed` is false when the spec was already stored.
   * Throws TrustDomainConflictError when another cluster has the same trust domain.
   */
  putCluster(name: string, spec: Cluster): Promise<{ cluster: StoredCluster; created: boolean; changed: boolean }>;
  /** Throws ClusterInUseError while a route names the cluster. */
  deleteCluster(name: string): Promise<boolean>;

  listRoutes(): Promise<StoredRoute[]>;
  getRoute(name: string): Promise<StoredRoute | null>;
  /**
   * Atomic and revisioned: checks the precondition, writes an immutable snapshot, moves the pointer,
   * records history. Throws UnknownClusterError when a backend names an unregistered cluster (checked
   * so that a concurrent cluster delete cannot leave the route dangling).
   */
  putRoute(name: string, spec: Route, pre: Precondition, meta: WriteMeta): Promise<PutResult>;
  /** Returns the deleted route's last revision, or null when there was none. */
  deleteRoute(name: string, pre: Precondition, meta: WriteMeta): Promise<number | null>;
  /** Newest first. Bounded: only the last `maxRevisions` are kept. */
  listRevisions(name: string): Promise<RevisionRecord[]>;
  getRevision(name: string, revision: number): Promise<RevisionRecord | null>;

  /** Changes on every effective write; readers compare it to know whether to reload. */
  version(): Promise<number>;
  snapshot(): Promise<StoreSnapshot>;
  /** Change notifications (pub/sub for Redis). Delivery is best effort: readers also poll version(). */
  subscribe(listener: (event: ChangeEvent) => void): Promise<() => Promise<void>>;
  /**
   * Creates a rollout (version 1); throws RolloutExistsError when the name is taken, and
   * RuleClaimedError when its rule's claim (claimRolloutRule, taken first) is no longer the
   * rollout's: checked in the same atomic step that records the name, so of rollouts racing for
   * one rule exactly one is created.
   */
  createRollout(record: RolloutRecord, event: RolloutEvent): Promise<RolloutRecord>;
  getRollout(name: string): Promise<RolloutRecord | null>;
  listRollouts(): Promise<RolloutRecord[]>;
  /**
   * One atomic rollout step: checks the rollout's version (RolloutConflictError when another writer
   * got there first), writes its next state and events, and when `route` is given writes that route
   * revision too, with `ifMatch` on the route (PreconditionFailedError when the route moved).
   * Returns the stored rollout, whose status.routeRevision is the route's revision after the step.
   */
  updateRollout(name: string, expectedVersion: number, next: RolloutRecord, events: RolloutEvent[], route?: { spec: Route; ifMatch: number; actor: string }): Promise<RolloutRecord>;
  /** Oldest first, the last 500. */
  listRolloutEvents(name: string): Promise<RolloutEvent[]>;
  /**
   * Claims a route rule for a rollout: one rollout per rule at a time, atomically. Succeeds when the
   * rule is free, already `name`'s, still held by `replace` (a finished rollout being replaced), or
   * held by a name that no rollout has (a claim left by a creation that failed); a rollout being
   * created keeps its claim from the moment its name is recorded.
   * Returns the rule's owner after the call (`name` when claimed).
   */
  claimRolloutRule(route: string, rule: string, name: string, replace?: string): Promise<string>;

  /**
   * Adds an instance's metric deltas to the fleet totals. Idempotent per `flushId`: a retried flush
   * (same id) is applied once. Returns false when that id was already applied.
   */
  applyMetricDeltas(flushId: string, batch: MetricBatch): Promise<boolean>;
  /** Fleet-wide metric totals. */
  readMetrics(): Promise<MetricBatch>;
  /** A lease: true when `owner` holds `name` for the next `ttlMs` (taken, or renewed by its holder). */
  tryLock(name: string, owner: string, ttlMs: number): Promise<boolean>;

  ping(): Promise<void>;
  close(): Promise<void>;
}

/** The precondition did not hold; `current` is the route's current revision (0 when absent). */
export class PreconditionFailedError extends Error {
  constructor(readonly current: number) {
    super(current === 0 ? "the route does not exist" : `the route is at revision ${current}`);
    this.name = "PreconditionFailedError";
  }
}

/** A route names clusters that are not registered (checked atomically with the write). */
export class UnknownClusterError extends Error {
  constructor(readonly clusters: string[]) {
    super(`unknown cluster(s): ${clusters.join(", ")}`);
    this.name = "UnknownClusterError";
  }
}

/** A cluster cannot be deleted while routes name it as a backend. */
export class ClusterInUseError extends Error {
  constructor(
    readonly cluster: string,
    readonly routes: string[],
  ) {
    super(`cluster "${cluster}" is a backend of route(s) ${routes.join(", ")}`);
    this.name = "ClusterInUseError";
  }
}

/** Each trust domain belongs to one cluster: it picks the bundle that verifies a caller. */
export class TrustDomainConflictError extends Error {
  constructor(
    readonly trustDomain: string,
    readonly owner: string,
  ) {
    super(`trust domain "${trustDomain}" is already used by cluster "${owner}"`);
    this.name = "TrustDomainConflictError";
  }
}

/** A Kubernetes service-account issuer belongs to exactly one cluster. */
export class IssuerConflictError extends Error {
  constructor(
    readonly issuer: string,
    readonly owner: string,
  ) {
    super(`Kubernetes issuer "${issuer}" is already used by cluster "${owner}"`);
    this.name = "IssuerConflictError";
  }
}

/** createRollout: the rule is claimed by another rollout (it took over while this one was being created). */
export class RuleClaimedError extends Error {
  constructor(readonly owner: string) {
    super(`rollout "${owner}" is already running on this rule`);
    this.name = "RuleClaimedError";
  }
}

export class RolloutExistsError extends Error {
  constructor(readonly rollout: string) {
    super(`rollout "${rollout}" already exists`);
    this.name = "RolloutExistsError";
  }
}

/** Another writer moved the rollout since it was read: re-read and decide again. */
export class RolloutConflictError extends Error {
  constructor(readonly rollout: string) {
    super(`rollout "${rollout}" changed since it was read`);
    this.name = "RolloutConflictError";
  }
}

export const MAX_ROLLOUT_EVENTS = 500;

/** The store could not be reached or did not answer in time. */
export class StoreUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StoreUnavailableError";
  }
}

export const DEFAULT_MAX_REVISIONS = 100;

/** The distinct clusters a route's backends name. */
export function referencedClusters(spec: { rules: ReadonlyArray<{ backendRefs: ReadonlyArray<{ cluster: string; failover?: readonly string[] }> }> }): string[] {
  return [...new Set(spec.rules.flatMap((r) => r.backendRefs.flatMap((b) => [b.cluster, ...(b.failover ?? [])])))].sort();
}
