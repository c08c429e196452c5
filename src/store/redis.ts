// Redis store on ioredis. Writes go through Lua scripts (src/store/redis-scripts.ts) so a route's
// precondition check, snapshot, pointer move and history entry happen all or nothing.
import { Redis, type RedisOptions } from "ioredis";
import { parseCluster, parseRoute } from "../config/validate.ts";
import type { Cluster, Route } from "../config/schemas.ts";
import { canonicalJson } from "../util/canonical-json.ts";
import { CLAIM, CLUSTER_WRITE, LOCK, METRICS_APPLY, ROLLOUT_INDEX, ROLLOUT_WRITE, ROUTE_READ, ROUTE_REFS_RESERVE, ROUTE_REFS_SET, ROUTE_WRITE } from "./redis-scripts.ts";
import type { RolloutEvent, RolloutRecord } from "../rollout/schema.ts";
import type { MetricBatch, SeriesInfo } from "../telemetry/metric-batch.ts";
import {
  ClusterInUseError,
  DEFAULT_MAX_REVISIONS,
  IssuerConflictError,
  MAX_ROLLOUT_EVENTS,
  RolloutConflictError,
  RolloutExistsError,
  RuleClaimedError,
  PreconditionFailedError,
  referencedClusters,
  StoreUnavailableError,
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

export interface RedisStoreOptions {
  url: string;
  /** Key prefix, so several gateways (or test runs) can share one Redis. */
  prefix?: string;
  maxRevisions?: number;
  /** Per-command timeout; a store that does not answer in time counts as unreachable. */
  commandTimeoutMs?: number;
  connectTimeoutMs?: number;
  now?: () => Date;
  onError?: (err: Error) => void;
}

type ScriptRunner = (numKeys: number, ...args: (string | number)[]) => Promise<[number, number, number?]>;
type TextScriptRunner = (numKeys: number, ...args: (string | number)[]) => Promise<[number, number | string, string?]>;

export class RedisStore implements Store {
  readonly kind = "redis" as const;
  private readonly client: Redis;
  private subscriber: Redis | null = null;
  private readonly listeners = new Set<(event: ChangeEvent) => void>();
  private readonly p: string;
  private readonly routeWrite: ScriptRunner;
  private readonly clusterWrite: TextScriptRunner;
  private readonly refsReserve: TextScriptRunner;
  private readonly refsSet: TextScriptRunner;
  private readonly routeRead: (numKeys: number, ...args: string[]) => Promise<[string, string | null, string | null] | null>;

  constructor(private readonly opts: RedisStoreOptions) {
    this.p = opts.prefix ?? "isthmus";
    this.client = new Redis(opts.url, redisOptions(opts));
    // Start connecting at once: with the offline queue off, commands sent before "ready" would fail.
    this.client.connect().catch(() => undefined);
    this.client.on("error", (err: Error) => opts.onError?.(err));
    this.client.defineCommand("isthmusRouteWrite", { lua: ROUTE_WRITE });
    this.client.defineCommand("isthmusClusterWrite", { lua: CLUSTER_WRITE });
    this.client.defineCommand("isthmusRouteRead", { lua: ROUTE_READ });
    this.client.defineCommand("isthmusRefsReserve", { lua: ROUTE_REFS_RESERVE });
    this.client.defineCommand("isthmusRefsSet", { lua: ROUTE_REFS_SET });
    this.client.defineCommand("isthmusMetricsApply", { lua: METRICS_APPLY });
    this.client.defineCommand("isthmusLock", { lua: LOCK });
    this.client.defineCommand("isthmusRolloutWrite", { lua: ROLLOUT_WRITE });
    this.client.defineCommand("isthmusClaim", { lua: CLAIM });
    this.client.defineCommand("isthmusRolloutIndex", { lua: ROLLOUT_INDEX });
    const commands = this.client as unknown as Record<string, ScriptRunner>;
    this.routeRead = (commands.isthmusRouteRead as unknown as RedisStore["routeRead"]).bind(this.client);
    this.routeWrite = (commands.isthmusRouteWrite as ScriptRunner).bind(this.client);
    const text = this.client as unknown as Record<string, TextScriptRunner>;
    this.clusterWrite = (text.isthmusClusterWrite as TextScriptRunner).bind(this.client);
    this.refsReserve = (text.isthmusRefsReserve as TextScriptRunner).bind(this.client);
    this.refsSet = (text.isthmusRefsSet as TextScriptRunner).bind(this.client);
  }

  /** Resolves once connected; rejects when Redis cannot be reached now (the client keeps retrying). */
  async connect(): Promise<void> {
    await this.call(() => waitReady(this.client, this.opts.connectTimeoutMs ?? 2000));
  }

  // ---------------------------------------------------------------- keys
  private get metaKeys() {
    const t = `${this.p}:{meta}`;
    return {
      clusters: `${t}:clusters`,
      clustersAt: `${t}:clusters-at`,
      version: `${t}:version`,
      routes: `${t}:routes`,
      trustDomains: `${t}:trust-domains`,
      issuers: `${t}:k8s-issuers`,
      refs: `${t}:route-refs`,
      rollouts: `${t}:rollouts`,
      ruleClaims: `${t}:rollout-rules`,
    };
  }
  private routeKeys(name: string) {
    const t = `${this.p}:{r:${name}}`;
    return { current: `${t}:current`, seq: `${t}:seq`, history: `${t}:history`, revPrefix: `${t}:rev:` };
  }
  private get channel(): string {
    return `${this.p}:changes`;
  }

  // ---------------------------------------------------------------- clusters
  async listClusters(): Promise<StoredCluster[]> {
    const k = this.metaKeys;
    const [specs, ats] = await this.call(() => Promise.all([this.client.hgetall(k.clusters), this.client.hgetall(k.clustersAt)]));
    return Object.entries(specs)
      .map(([name, json]) => ({ name, spec: parseCluster(JSON.parse(json)), updatedAt: ats[name] ?? "" }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }
  async getCluster(name: string): Promise<StoredCluster | null> {
    const k = this.metaKeys;
    const [json, at] = await this.call(() => Promise.all([this.client.hget(k.clusters, name), this.client.hget(k.clustersAt, name)]));
    return json === null ? null : { name, spec: parseCluster(JSON.parse(json)), updatedAt: at ?? "" };
  }
  async putCluster(name: string, spec: Cluster): Promise<{ cluster: StoredCluster; created: boolean; changed: boolean }> {
    const k = this.metaKeys;
    const at = this.now();
    const [status, version, detail] = await this.call(() =>
      this.clusterWrite(6, k.clusters, k.clustersAt, k.version, k.trustDomains, k.refs, k.issuers, name, canonicalJson(spec), at, spec.trustDomain, spec.bundle?.kubernetes?.issuer ?? ""),
    );
    if (status === 5) throw new TrustDomainConflictError(spec.trustDomain, String(detail));
    if (status === 6) throw new IssuerConflictError(spec.bundle?.kubernetes?.issuer ?? "", String(detail));
    if (status === 0) {
      const existing = await this.getCluster(name);
      if (existing) return { cluster: existing, created: false, changed: false };
    } else await this.publish({ kind: "cluster", name, version: Number(version) });
    return { cluster: { name, spec, updatedAt: at }, created: status === 1, changed: status !== 0 };
  }
  async deleteCluster(name: string): Promise<boolean> {
    const k = this.metaKeys;
    const [status, version, detail] = await this.call(() => this.clusterWrite(6, k.clusters, k.clustersAt, k.version, k.trustDomains, k.refs, k.issuers, name, "", "", "", ""));
    if (status === 4) throw new ClusterInUseError(name, String(detail).split(","));
    if (status !== 3) return false;
    await this.publish({ kind: "cluster", name, version: Number(version) });
    return true;
  }

  // ---------------------------------------------------------------- routes
  async listRoutes(): Promise<StoredRoute[]> {
    const names = await this.call(() => this.client.smembers(this.metaKeys.routes));
    const routes = await Promise.all(names.map((n) => this.getRoute(n)));
    return routes.filter((r): r is StoredRoute => r !== null).sort((a, b) => a.name.localeCompare(b.name));
  }

  async getRoute(name: string): Promise<StoredRoute | null> {
    const k = this.routeKeys(name);
    const res = await this.call(() => this.routeRead(1, k.current, k.revPrefix));
    if (!res || !res[1]) return null;
    return { name, revision: Number(res[0]), spec: parseRoute(JSON.parse(res[1])), updatedAt: res[2] ?? "" };
  }

  async putRoute(name: string, spec: Route, pre: Precondition, meta: WriteMeta): Promise<PutResult> {
    const k = this.routeKeys(name);
    const at = this.now();
    const record: Omit<RevisionRecord, "revision"> = { action: meta.action ?? "update", at, actor: meta.actor };
    if (meta.restoredFrom !== undefined) record.restoredFrom = meta.restoredFrom;
    const m = this.metaKeys;
    // References first, in the clusters' slot: a cluster delete racing this write is refused, and a
    // cluster deleted just before makes this write fail cleanly instead of leaving a dangling route.
    const [reserved, missing] = await this.call(() => this.refsReserve(2, m.clusters, m.refs, name, referencedClusters(spec).join(",")));
    if (reserved !== 1) throw new UnknownClusterError(String(missing).split(","));
    await this.call(() => this.client.sadd(m.routes, name));
    let status: number;
    let revision: number;
    try {
      [status, revision] = await this.call(() =>
        this.routeWrite(3, k.current, k.seq, k.history, ...conditionArgs(pre), canonicalJson(spec), JSON.stringify(record), k.revPrefix, this.maxRevisions, meta.action === "rollback" ? "1" : "0"),
      );
    } finally {
      await this.settleReferences(name);
    }
    if (status === 0) throw new PreconditionFailedError(revision);
    if (status === 3) {
      const route = await this.getRoute(name);
      if (route) return { outcome: "unchanged", route };
    }
    await this.bumpAndPublish("route", name);
    return { outcome: status === 4 ? "created" : "updated", route: { name, revision, spec, updatedAt: at } };
  }

  async deleteRoute(name: string, pre: Precondition, meta: WriteMeta): Promise<number | null> {
    const k = this.routeKeys(name);
    const record = { action: "delete", at: this.now(), actor: meta.actor };
    const [status, revision, previous] = await this.call(() =>
      this.routeWrite(3, k.current, k.seq, k.history, ...conditionArgs(pre), "", JSON.stringify(record), k.revPrefix, this.maxRevisions, "0"),
    );
    if (status === 0) throw new PreconditionFailedError(revision);
    if (status === 2) return null;
    await this.settleReferences(name);
    await this.bumpAndPublish("route", name);
    return Number(previous);
  }

  async listRevisions(name: string): Promise<RevisionRecord[]> {
    const k = this.routeKeys(name);
    const raw = await this.call(() => this.client.lrange(k.history, 0, -1));
    const records = raw.map((r) => JSON.parse(r) as RevisionRecord);
    const specs = await this.call(() => Promise.all(records.map((r) => this.client.hget(`${k.revPrefix}${r.revision}`, "spec"))));
    return records.map((r, i) => withSpec(r, specs[i]));
  }

  async getRevision(name: string, revision: number): Promise<RevisionRecord | null> {
    return (await this.listRevisions(name)).find((r) => r.revision === revision) ?? null;
  }

  // ---------------------------------------------------------------- change feed
  async version(): Promise<number> {
    return Number((await this.call(() => this.client.get(this.metaKeys.version))) ?? 0);
  }

  async snapshot(): Promise<StoreSnapshot> {
    // Version first: whatever is read after it is at least that new, so a reader that later sees
    // a higher version reloads and never settles on stale data.
    const version = await this.version();
    const [clusters, routes, rollouts] = await Promise.all([this.listClusters(), this.listRoutes(), this.listRollouts()]);
    return { version, clusters, routes, rollouts };
  }

  async subscribe(listener: (event: ChangeEvent) => void): Promise<() => Promise<void>> {
    this.listeners.add(listener);
    if (!this.subscriber) {
      const sub = this.client.duplicate({ enableOfflineQueue: true, lazyConnect: true });
      sub.on("error", (err: Error) => this.opts.onError?.(err));
      sub.on("message", (channel: string, message: string) => {
        if (channel !== this.channel) return;
        let event: ChangeEvent;
        try {
          const e = JSON.parse(message) as ChangeEvent;
          event = { kind: e.kind, name: String(e.name), version: Number(e.version) };
        } catch {
          event = { kind: "resync", name: "*", version: -1 };
        }
        for (const l of this.listeners) l(event);
      });
      // After a reconnect, messages published while we were away are lost: every listener reloads.
      let connectedBefore = false;
      sub.on("ready", () => {
        if (connectedBefore) for (const l of this.listeners) l({ kind: "resync", name: "*", version: -1 });
        connectedBefore = true;
      });
      this.subscriber = sub;
      await sub.connect().catch(() => undefined);
      await sub.subscribe(this.channel).catch(() => undefined);
    }
    return async () => {
      this.listeners.delete(listener);
    };
  }

  // ---------------------------------------------------------------- rollouts
  private rolloutKeys(route: string, name: string) {
    const t = `${this.p}:{r:${route}}:rollout:${name}`;
    return { state: t, version: `${t}:version`, events: `${t}:events` };
  }

  async createRollout(record: RolloutRecord, event: RolloutEvent): Promise<RolloutRecord> {
    const m = this.metaKeys;
    // The name is recorded in the index first ({meta} slot, with the rule claim it checks), then the
    // state written in the route's slot.
    const run = (this.client as unknown as Record<string, (n: number, ...a: string[]) => Promise<[number, string]>>).isthmusRolloutIndex as (n: number, ...a: string[]) => Promise<[number, string]>;
    const [indexed, owner] = await this.call(() => run.call(this.client, 2, m.rollouts, m.ruleClaims, record.name, record.spec.route, `${record.spec.route}/${record.spec.rule}`));
    if (indexed === 0) throw new RolloutExistsError(record.name);
    if (indexed !== 1) throw new RuleClaimedError(owner);
    try {
      return await this.writeRollout(record.name, 0, record, [event]);
    } catch (err) {
      await this.client.hdel(m.rollouts, record.name).catch(() => undefined);
      throw err;
    }
  }

  async getRollout(name: string): Promise<RolloutRecord | null> {
    const route = await this.call(() => this.client.hget(this.metaKeys.rollouts, name));
    if (route === null) return null;
    const json = await this.call(() => this.client.get(this.rolloutKeys(route, name).state));
    return json === null ? null : (JSON.parse(json) as RolloutRecord);
  }

  async listRollouts(): Promise<RolloutRecord[]> {
    const index = await this.call(() => this.client.hgetall(this.metaKeys.rollouts));
    const all = await Promise.all(Object.keys(index).map((n) => this.getRollout(n)));
    return all.filter((r): r is RolloutRecord => r !== null).sort((a, b) => a.name.localeCompare(b.name));
  }

  async updateRollout(name: string, expectedVersion: number, next: RolloutRecord, events: RolloutEvent[], route?: { spec: Route; ifMatch: number; actor: string }): Promise<RolloutRecord> {
    return this.writeRollout(name, expectedVersion, next, events, route);
  }

  async claimRolloutRule(route: string, rule: string, name: string, replace?: string): Promise<string> {
    const run = (this.client as unknown as Record<string, (n: number, ...a: string[]) => Promise<string>>).isthmusClaim as (n: number, ...a: string[]) => Promise<string>;
    return this.call(() => run.call(this.client, 2, this.metaKeys.ruleClaims, this.metaKeys.rollouts, `${route}/${rule}`, name, replace ?? ""));
  }

  async listRolloutEvents(name: string): Promise<RolloutEvent[]> {
    const route = await this.call(() => this.client.hget(this.metaKeys.rollouts, name));
    if (route === null) return [];
    const raw = await this.call(() => this.client.lrange(this.rolloutKeys(route, name).events, 0, -1));
    return raw.map((r) => JSON.parse(r) as RolloutEvent);
  }

  private async writeRollout(name: string, expectedVersion: number, next: RolloutRecord, events: RolloutEvent[], route?: { spec: Route; ifMatch: number; actor: string }): Promise<RolloutRecord> {
    const routeName = next.spec.route;
    const rk = this.routeKeys(routeName);
    const ok = this.rolloutKeys(routeName, name);
    const m = this.metaKeys;
    const placeholder = "__ROUTE_REVISION__";
    const state = JSON.stringify({ ...next, version: "__VERSION__", status: { ...next.status, routeRevision: route ? placeholder : next.status.routeRevision } });
    const eventJson = events.map((e) => JSON.stringify(route && e.routeRevision === undefined ? { ...e, routeRevision: placeholder } : e));
    if (route) {
      const [reserved, missing] = await this.call(() => this.refsReserve(2, m.clusters, m.refs, routeName, referencedClusters(route.spec).join(",")));
      if (reserved !== 1) throw new UnknownClusterError(String(missing).split(","));
    }
    const record = JSON.stringify({ action: "update", at: this.now(), actor: route?.actor ?? "rollout" });
    const run = (this.client as unknown as Record<string, (n: number, ...a: (string | number)[]) => Promise<[number, number, number]>>).isthmusRolloutWrite as (n: number, ...a: (string | number)[]) => Promise<[number, number, number]>;
    let res: [number, number, number];
    try {
      res = await this.call(() =>
        run.call(this.client, 6, rk.current, rk.seq, rk.history, ok.state, ok.version, ok.events, expectedVersion, state, route ? canonicalJson(route.spec) : "", record, rk.revPrefix, this.maxRevisions, route ? route.ifMatch : 0, MAX_ROLLOUT_EVENTS, ...eventJson),
      );
    } finally {
      if (route) await this.settleReferences(routeName);
    }
    const [status, routeRevision] = res;
    if (status === 0) throw new RolloutConflictError(name);
    if (status === 2) throw new PreconditionFailedError(routeRevision);
    await this.bumpAndPublish(route ? "route" : "rollout", route ? routeName : name);
    const json = await this.call(() => this.client.get(ok.state));
    return JSON.parse(json as string) as RolloutRecord;
  }

  async applyMetricDeltas(flushId: string, batch: MetricBatch): Promise<boolean> {
    const t = `${this.p}:{metrics}`;
    const series = Object.entries(batch.series);
    const args: (string | number)[] = [series.length];
    for (const [k, info] of series) args.push(k, JSON.stringify(info));
    for (const [f, v] of Object.entries(batch.values)) if (v !== 0) args.push(f, v);
    const run = (this.client as unknown as Record<string, (n: number, ...a: (string | number)[]) => Promise<number>>).isthmusMetricsApply as (n: number, ...a: (string | number)[]) => Promise<number>;
    const applied = await this.call(() => run.call(this.client, 3, `${t}:series`, `${t}:values`, `${t}:flush:${flushId}`, ...args));
    return applied === 1;
  }

  async readMetrics(): Promise<MetricBatch> {
    const t = `${this.p}:{metrics}`;
    const [series, values] = await this.call(() => Promise.all([this.client.hgetall(`${t}:series`), this.client.hgetall(`${t}:values`)]));
    const out: MetricBatch = { series: {}, values: {} };
    for (const [k, json] of Object.entries(series)) out.series[k] = JSON.parse(json) as SeriesInfo;
    for (const [f, v] of Object.entries(values)) out.values[f] = Number(v);
    return out;
  }

  async tryLock(name: string, owner: string, ttlMs: number): Promise<boolean> {
    const run = (this.client as unknown as Record<string, (n: number, ...a: (string | number)[]) => Promise<number>>).isthmusLock as (n: number, ...a: (string | number)[]) => Promise<number>;
    return (await this.call(() => run.call(this.client, 1, `${this.p}:{lock:${name}}`, owner, ttlMs))) === 1;
  }

  async ping(): Promise<void> {
    await this.call(() => this.client.ping());
  }

  async close(): Promise<void> {
    await Promise.all([quit(this.client), this.subscriber ? quit(this.subscriber) : Promise.resolve()]);
  }

  /** Connection state as ioredis reports it, for readiness. */
  get connected(): boolean {
    return this.client.status === "ready";
  }

  // ---------------------------------------------------------------- helpers
  /**
   * Sets a route's cluster references to what its current revision names. If this fails the
   * reservation (a superset) stays: clusters stay protected, never the other way round.
   */
  private async settleReferences(name: string): Promise<void> {
    try {
      const route = await this.getRoute(name);
      await this.refsSet(1, this.metaKeys.refs, name, route ? referencedClusters(route.spec).join(",") : "");
    } catch (err) {
      this.opts.onError?.(err as Error);
    }
  }

  /**
   * Announces a committed write. The write itself is already durable, so a failure here is not the
   * caller's failure: readers' periodic full resync picks the change up even without the notification.
   */
  private async bumpAndPublish(kind: ChangeEvent["kind"], name: string): Promise<void> {
    try {
      const version = await this.client.incr(this.metaKeys.version);
      await this.publish({ kind, name, version });
    } catch (err) {
      this.opts.onError?.(err as Error);
    }
  }
  private async publish(event: ChangeEvent): Promise<void> {
    // A lost notification is not fatal: readers poll the version as a safety net.
    await this.client.publish(this.channel, JSON.stringify(event)).catch(() => undefined);
  }
  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof PreconditionFailedError) throw err;
      throw new StoreUnavailableError(`redis: ${(err as Error).message}`, { cause: err });
    }
  }
  private now(): string {
    return (this.opts.now?.() ?? new Date()).toISOString();
  }
  private get maxRevisions(): number {
    return this.opts.maxRevisions ?? DEFAULT_MAX_REVISIONS;
  }
}

function conditionArgs(pre: Precondition): [string, string] {
  if (pre.ifNoneMatch === "*") return ["absent", "0"];
  if (pre.ifMatch === "*") return ["present", "0"];
  if (typeof pre.ifMatch === "number") return ["match", String(pre.ifMatch)];
  return ["any", "0"];
}

function withSpec(record: RevisionRecord, spec: string | null | undefined): RevisionRecord {
  if (spec === null || spec === undefined) return record;
  return { ...record, spec: parseRoute(JSON.parse(spec)) };
}

function redisOptions(opts: RedisStoreOptions): RedisOptions {
  return {
    lazyConnect: true,
    // Fail fast instead of queueing: the data plane never waits on the store, and admin writes
    // get a clear 503 rather than hanging while Redis is away.
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    maxRetriesPerRequest: 1,
    commandTimeout: opts.commandTimeoutMs ?? 1000,
    connectTimeout: opts.connectTimeoutMs ?? 2000,
    retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
  };
}

function waitReady(client: Redis, timeoutMs: number): Promise<void> {
  if (client.status === "ready") return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      client.off("ready", onReady);
      reject(new Error("timed out waiting for redis"));
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(t);
      resolve();
    };
    client.once("ready", onReady);
  });
}

async function quit(client: Redis): Promise<void> {
  try {
    if (client.status === "ready") await client.quit();
    else client.disconnect();
  } catch {
    client.disconnect();
  }
}
