// One contract, two stores: every test in the shared block runs against MemoryStore and against
// RedisStore on a real redis-server (started by test/helpers/global-setup.ts, or
// ISTHMUS_TEST_REDIS_URL). Each test gets a fresh store; Redis tests get a key prefix of their own.
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it, vi } from "vitest";
import { MemoryStore } from "../../src/store/memory.ts";
import { RedisStore, type RedisStoreOptions } from "../../src/store/redis.ts";
import {
  ClusterInUseError,
  PreconditionFailedError,
  RolloutExistsError,
  RuleClaimedError,
  StoreUnavailableError,
  TrustDomainConflictError,
  UnknownClusterError,
  type ChangeEvent,
  type Precondition,
  type RevisionRecord,
  type Store,
  type WriteMeta,
} from "../../src/store/types.ts";
import type { RolloutEvent, RolloutRecord } from "../../src/rollout/schema.ts";
import { cluster, clusterNamed, route, routeN, routeVia } from "../helpers/fixtures.ts";
import { freePort, startRedis, uniquePrefix, type RedisServer } from "../helpers/redis-server.ts";

// ---------------------------------------------------------------- harness

interface OpenOptions {
  maxRevisions?: number;
}

interface Backend {
  name: "memory" | "redis";
  open(opts?: OpenOptions): Promise<Store>;
}

/** Every store a test opened; closed after the test. */
const opened: Store[] = [];
afterEach(async () => {
  const stores = opened.splice(0);
  await Promise.all(stores.map((s) => s.close()));
});

/** The prefix of the running test (Redis): fresh for each test, shared by every store it opens. */
let testPrefix = "";
beforeEach(() => {
  testPrefix = uniquePrefix(expect.getState().currentTestName ?? "store");
});

/** A clock that moves one second per reading, so timestamps are distinct and ordered. */
function steppingClock(): () => Date {
  let t = Date.parse("2030-01-01T00:00:00.000Z");
  return () => new Date((t += 1000));
}

async function openRedis(extra: Partial<RedisStoreOptions> = {}): Promise<RedisStore> {
  const store = new RedisStore({ url: inject("redisUrl"), prefix: testPrefix, now: steppingClock(), ...extra });
  opened.push(store);
  await store.connect();
  return store;
}

const backends: Backend[] = [
  {
    name: "memory",
    async open(opts = {}) {
      const store = new MemoryStore({ ...opts, now: steppingClock() });
      opened.push(store);
      return store;
    },
  },
  {
    name: "redis",
    open: (opts = {}) => openRedis(opts),
  },
];

const alice: WriteMeta = { actor: "alice" };

/** Awaits a rejection with PreconditionFailedError and checks the revision it reports. */
async function expectPreconditionFailed(call: Promise<unknown>, current: number): Promise<void> {
  const err = await call.then(
    (value) => {
      throw new Error(`expected PreconditionFailedError, but the call succeeded with ${JSON.stringify(value)}`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PreconditionFailedError);
  expect((err as PreconditionFailedError).current).toBe(current);
}

/** A write the store refused on purpose (as opposed to one that broke). */
function isRefusal(e: unknown): boolean {
  return e instanceof PreconditionFailedError || e instanceof UnknownClusterError || e instanceof ClusterInUseError || e instanceof TrustDomainConflictError;
}

/** Awaits a rejection of the given class and returns the error, failing clearly if the call succeeded. */
async function rejectionOf<E extends Error>(call: Promise<unknown>, type: new (...args: never[]) => E): Promise<E> {
  const err = await call.then(
    (value) => {
      throw new Error(`expected ${type.name}, but the call succeeded with ${JSON.stringify(value)}`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(type);
  return err as E;
}

/** Records a store's change events; `waitFor` resolves with the first (past or future) match. */
async function recordEvents(store: Store) {
  const events: ChangeEvent[] = [];
  const waiters: { match: (e: ChangeEvent) => boolean; resolve: (e: ChangeEvent) => void }[] = [];
  const unsubscribe = await store.subscribe((e) => {
    events.push(e);
    for (const w of [...waiters]) {
      if (!w.match(e)) continue;
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(e);
    }
  });
  return {
    events,
    unsubscribe,
    /** A deadline, not a sleep: fails with what did arrive if the event never comes. */
    waitFor(match: (e: ChangeEvent) => boolean, what: string, timeoutMs = 5000): Promise<ChangeEvent> {
      const seen = events.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error(`no ${what} event within ${timeoutMs} ms; received: ${JSON.stringify(events)}`));
        }, timeoutMs);
        const waiter = {
          match,
          resolve: (e: ChangeEvent) => {
            clearTimeout(timer);
            resolve(e);
          },
        };
        waiters.push(waiter);
      });
    },
  };
}

function revisionsOf(records: RevisionRecord[]): number[] {
  return records.map((r) => r.revision);
}

/** n, n-1, ..., m */
function descending(from: number, to: number): number[] {
  return Array.from({ length: from - to + 1 }, (_, i) => from - i);
}

/** Keys in reverse insertion order: equal content, different serialisation. */
function reordered<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).reverse()) as T;
}

// ---------------------------------------------------------------- the contract

describe.each(backends)("Store contract ($name)", (backend) => {
  const open = (opts?: OpenOptions) => backend.open(opts);
  /**
   * A store with cluster "east" registered, which the route fixtures name: a route may only name
   * registered clusters. The seed moves the version once; assertions on it are relative.
   */
  const openSeeded = async (opts?: OpenOptions) => {
    const s = await open(opts);
    expect((await s.putCluster("east", cluster())).created).toBe(true);
    return s;
  };

  it("reports its kind", async () => {
    const s = await open();
    expect(s.kind).toBe(backend.name);
    await expect(s.ping()).resolves.toBeUndefined();
  });

  describe("clusters", () => {
    it("putCluster creates, treats an equal spec as unchanged and a different one as replaced", async () => {
      const s = await open();
      const a = cluster();
      const created = await s.putCluster("east", a);
      expect(created.created).toBe(true);
      expect(created.changed).toBe(true);
      expect(created.cluster).toStrictEqual({ name: "east", spec: a, updatedAt: expect.any(String) });
      expect(Number.isNaN(Date.parse(created.cluster.updatedAt))).toBe(false);
      const v1 = await s.version();

      // Same content, keys in another order: still unchanged, and the stored copy is untouched.
      const again = await s.putCluster("east", reordered(a));
      expect(again).toStrictEqual({ cluster: created.cluster, created: false, changed: false });
      expect(await s.version()).toBe(v1);

      const b = cluster({ endpoint: "https://east-2.example.com" });
      const replaced = await s.putCluster("east", b);
      expect(replaced.created).toBe(false);
      expect(replaced.changed).toBe(true);
      expect(replaced.cluster.spec).toStrictEqual(b);
      expect(replaced.cluster.updatedAt > created.cluster.updatedAt).toBe(true);
      expect(await s.version()).toBeGreaterThan(v1);
      expect(await s.getCluster("east")).toStrictEqual(replaced.cluster);
    });

    it("round-trips a cluster with nested fields and schema defaults", async () => {
      const s = await open();
      const spec = cluster({
        health: { interval: "5s" },
        bundle: { jwks: { keys: [{ kty: "EC", crv: "P-256", x: "abc", y: "def", kid: "k1" }] } },
        metrics: { remoteWrite: { url: "https://metrics.example.com/api/v1/write" } },
      });
      expect(spec.health?.path).toBe("/ready"); // the fixture really applied the default
      await s.putCluster("east", spec);
      expect((await s.getCluster("east"))?.spec).toStrictEqual(spec);
      expect((await s.listClusters())[0]?.spec).toStrictEqual(spec);
    });

    it("getCluster of an unknown name is null; listClusters is sorted by name", async () => {
      const s = await open();
      expect(await s.getCluster("nope")).toBeNull();
      expect(await s.listClusters()).toStrictEqual([]);
      for (const name of ["west", "east", "north"]) await s.putCluster(name, cluster({ trustDomain: `${name}.example.com` }));
      const list = await s.listClusters();
      expect(list.map((c) => c.name)).toStrictEqual(["east", "north", "west"]);
      expect(list.map((c) => c.spec.trustDomain)).toStrictEqual(["east.example.com", "north.example.com", "west.example.com"]);
      expect(await s.getCluster("north")).toStrictEqual(list[1]);
    });

    it("deleteCluster removes a cluster and reports whether there was one", async () => {
      const s = await open();
      await s.putCluster("east", cluster());
      await s.putCluster("west", cluster({ trustDomain: "west.example.com" }));
      const v = await s.version();
      expect(await s.deleteCluster("east")).toBe(true);
      expect(await s.version()).toBeGreaterThan(v);
      expect(await s.getCluster("east")).toBeNull();
      expect((await s.listClusters()).map((c) => c.name)).toStrictEqual(["west"]);

      const v2 = await s.version();
      expect(await s.deleteCluster("east")).toBe(false);
      expect(await s.deleteCluster("never-existed")).toBe(false);
      expect(await s.version()).toBe(v2);

      // A deleted cluster can be created again, and counts as created.
      expect((await s.putCluster("east", cluster())).created).toBe(true);
    });
  });

  describe("referential integrity", () => {
    const hosts = (name: string) => ({ hostnames: [`${name}.example.com`] });

    it("putRoute naming unregistered clusters throws UnknownClusterError listing exactly the missing ones, and writes nothing", async () => {
      const s = await openSeeded();
      const feed = await recordEvents(s);
      const v = await s.version();
      // east is registered, west and north are not; north is named twice and listed once.
      const spec = route({
        rules: [
          { backendRefs: [{ cluster: "east", service: "a.shop", port: 8080 }, { cluster: "west", service: "a.shop", port: 8080 }] },
          { backendRefs: [{ cluster: "north", service: "a.shop", port: 8080 }, { cluster: "north", service: "b.shop", port: 8080 }] },
        ],
      });
      const err = await rejectionOf(s.putRoute("shop", spec, {}, alice), UnknownClusterError);
      expect(err.name).toBe("UnknownClusterError");
      expect([...err.clusters].sort()).toStrictEqual(["north", "west"]);
      expect(err.message).toMatch(/north/);
      expect(err.message).toMatch(/west/);

      expect(await s.getRoute("shop")).toBeNull();
      expect(await s.listRoutes()).toStrictEqual([]);
      expect(await s.listRevisions("shop")).toStrictEqual([]);
      expect(await s.version()).toBe(v);

      // No revision number was burned, and nothing was announced: the first event is this write's.
      expect((await s.putRoute("shop", route(), {}, alice)).route.revision).toBe(1);
      await feed.waitFor((e) => e.kind === "route", "route");
      expect(feed.events.map((e) => `${e.kind}:${e.name}`)).toStrictEqual(["route:shop"]);
    });

    it("the cluster check comes before the precondition, also for a rollback, and keeps the current route", async () => {
      const s = await openSeeded();
      const current = (await s.putRoute("shop", route(), {}, alice)).route;
      const v = await s.version();
      const preconditions: Precondition[] = [{}, { ifMatch: 1 }, { ifMatch: 7 }, { ifMatch: "*" }, { ifNoneMatch: "*" }];
      for (const pre of preconditions) {
        const err = await rejectionOf(s.putRoute("shop", routeVia(["east", "west"]), pre, alice), UnknownClusterError);
        expect(err.clusters, JSON.stringify(pre)).toStrictEqual(["west"]);
      }
      await rejectionOf(s.putRoute("shop", routeVia(["west"]), {}, { actor: "bob", action: "rollback", restoredFrom: 1 }), UnknownClusterError);
      expect(await s.getRoute("shop")).toStrictEqual(current);
      expect(revisionsOf(await s.listRevisions("shop"))).toStrictEqual([1]);
      expect(await s.version()).toBe(v);

      // Once west is registered the same write goes through, as the next revision.
      await s.putCluster("west", clusterNamed("west"));
      expect(await s.putRoute("shop", routeVia(["east", "west"]), { ifMatch: 1 }, alice)).toMatchObject({ outcome: "updated", route: { revision: 2 } });
    });

    it("a refused putRoute leaves nothing behind that keeps a cluster in use", async () => {
      const s = await openSeeded();
      await s.putCluster("west", clusterNamed("west"));
      // Refused for an unknown cluster (north), and refused by its precondition: neither holds east or west.
      await rejectionOf(s.putRoute("shop", routeVia(["east", "north"]), {}, alice), UnknownClusterError);
      await expectPreconditionFailed(s.putRoute("shop", routeVia(["west"]), { ifMatch: 5 }, alice), 0);
      expect(await s.deleteCluster("east")).toBe(true);
      expect(await s.deleteCluster("west")).toBe(true);
      expect(await s.listClusters()).toStrictEqual([]);
    });

    it("deleteCluster of a referenced cluster throws ClusterInUseError naming the routes, and keeps the cluster and its trust domain", async () => {
      const s = await openSeeded();
      await s.putCluster("west", clusterNamed("west"));
      await s.putRoute("shop", routeVia(["east", "west"]), {}, alice);
      await s.putRoute("api", routeVia(["west"], hosts("api")), {}, alice);
      await s.putRoute("web", routeVia(["east"], hosts("web")), {}, alice);
      const v = await s.version();

      const west = await rejectionOf(s.deleteCluster("west"), ClusterInUseError);
      expect(west.name).toBe("ClusterInUseError");
      expect(west.cluster).toBe("west");
      expect([...west.routes].sort()).toStrictEqual(["api", "shop"]);
      expect(west.message).toMatch(/api/);
      const east = await rejectionOf(s.deleteCluster("east"), ClusterInUseError);
      expect(east.cluster).toBe("east");
      expect([...east.routes].sort()).toStrictEqual(["shop", "web"]);

      expect(await s.getCluster("west")).toMatchObject({ name: "west", spec: clusterNamed("west") });
      expect((await s.listClusters()).map((c) => c.name)).toStrictEqual(["east", "west"]);
      expect(await s.version()).toBe(v);
      // The refused delete did not release the trust domain either.
      expect((await rejectionOf(s.putCluster("clash", clusterNamed("clash", { trustDomain: "west.example.com" })), TrustDomainConflictError)).owner).toBe("west");
      // An unchanged put of a route keeps its references.
      expect((await s.putRoute("api", routeVia(["west"], hosts("api")), {}, alice)).outcome).toBe("unchanged");
      expect((await rejectionOf(s.deleteCluster("west"), ClusterInUseError)).routes.slice().sort()).toStrictEqual(["api", "shop"]);
    });

    it("once no route names a cluster (routes changed or deleted) it can be deleted, and then no route can name it", async () => {
      const s = await openSeeded();
      await s.putCluster("west", clusterNamed("west"));
      await s.putRoute("shop", routeVia(["east", "west"]), {}, alice);
      await s.putRoute("api", routeVia(["west"], hosts("api")), {}, alice);

      // shop changes to stop naming west; api still names it.
      await s.putRoute("shop", routeVia(["east"]), {}, alice);
      expect((await rejectionOf(s.deleteCluster("west"), ClusterInUseError)).routes).toStrictEqual(["api"]);

      // api is deleted: nothing names west any more (old revisions do not count).
      await s.deleteRoute("api", {}, alice);
      const v = await s.version();
      expect(await s.deleteCluster("west")).toBe(true);
      expect(await s.getCluster("west")).toBeNull();
      expect(await s.version()).toBeGreaterThan(v);

      // Now west is unknown: neither a new route nor a rollback to a revision that named it is accepted.
      const v2 = await s.version();
      expect((await rejectionOf(s.putRoute("api", routeVia(["west"], hosts("api")), {}, alice), UnknownClusterError)).clusters).toStrictEqual(["west"]);
      const old = await s.getRevision("shop", 1);
      expect(old?.spec).toStrictEqual(routeVia(["east", "west"]));
      await rejectionOf(s.putRoute("shop", old?.spec ?? route(), {}, { actor: "bob", action: "rollback", restoredFrom: 1 }), UnknownClusterError);
      expect(await s.getRoute("shop")).toMatchObject({ revision: 2, spec: routeVia(["east"]) });
      expect(await s.version()).toBe(v2);

      // shop moves away from east as well; then east goes too.
      await s.putCluster("north", clusterNamed("north"));
      await s.putRoute("shop", routeVia(["north"]), {}, alice);
      expect(await s.deleteCluster("east")).toBe(true);
      expect((await rejectionOf(s.deleteCluster("north"), ClusterInUseError)).routes).toStrictEqual(["shop"]);
    });

    it("putCluster with another cluster's trust domain throws TrustDomainConflictError naming the owner, and writes nothing", async () => {
      const s = await open();
      await s.putCluster("east", cluster());
      await s.putCluster("west", clusterNamed("west"));
      const feed = await recordEvents(s);
      const v = await s.version();

      // A new cluster...
      const created = await rejectionOf(s.putCluster("north", clusterNamed("north", { trustDomain: "east.example.com" })), TrustDomainConflictError);
      expect(created.name).toBe("TrustDomainConflictError");
      expect(created.trustDomain).toBe("east.example.com");
      expect(created.owner).toBe("east");
      expect(created.message).toMatch(/east\.example\.com/);
      expect(await s.getCluster("north")).toBeNull();

      // ...and an existing one moving onto a taken trust domain keeps its spec.
      const replaced = await rejectionOf(s.putCluster("west", clusterNamed("west", { trustDomain: "east.example.com" })), TrustDomainConflictError);
      expect(replaced.owner).toBe("east");
      expect((await s.getCluster("west"))?.spec).toStrictEqual(clusterNamed("west"));

      expect((await s.listClusters()).map((c) => c.name)).toStrictEqual(["east", "west"]);
      expect(await s.version()).toBe(v);
      // Replacing a cluster while keeping its own trust domain is no conflict.
      expect(await s.putCluster("east", cluster({ endpoint: "https://east-2.example.com" }))).toMatchObject({ created: false, changed: true });
      await feed.waitFor((e) => e.kind === "cluster", "cluster");
      expect(feed.events.map((e) => `${e.kind}:${e.name}`)).toStrictEqual(["cluster:east"]);
    });

    it("changing a cluster's trust domain frees the old one and takes the new one", async () => {
      const s = await open();
      await s.putCluster("east", cluster());
      await s.putCluster("east", cluster({ trustDomain: "east-2.example.com" }));
      expect((await s.putCluster("west", clusterNamed("west", { trustDomain: "east.example.com" }))).created).toBe(true);
      expect((await rejectionOf(s.putCluster("north", clusterNamed("north", { trustDomain: "east-2.example.com" })), TrustDomainConflictError)).owner).toBe("east");
      // ...and east cannot take back the one it gave up.
      expect((await rejectionOf(s.putCluster("east", cluster()), TrustDomainConflictError)).owner).toBe("west");
      expect((await s.getCluster("east"))?.spec.trustDomain).toBe("east-2.example.com");
    });

    it("a deleted cluster frees its trust domain", async () => {
      const s = await open();
      await s.putCluster("east", cluster());
      expect(await s.deleteCluster("east")).toBe(true);
      expect((await s.putCluster("west", clusterNamed("west", { trustDomain: "east.example.com" }))).created).toBe(true);
      expect((await rejectionOf(s.putCluster("east", cluster()), TrustDomainConflictError)).owner).toBe("west");
      expect(await s.deleteCluster("west")).toBe(true);
      expect((await s.putCluster("east", cluster())).created).toBe(true);
    });
  });

  describe("routes: revisions", () => {
    it("create is revision 1, update is 2, an identical put is unchanged with no new revision", async () => {
      const s = await openSeeded();
      const a = route();
      const created = await s.putRoute("shop", a, {}, alice);
      expect(created.outcome).toBe("created");
      expect(created.route).toStrictEqual({ name: "shop", revision: 1, spec: a, updatedAt: expect.any(String) });
      expect(await s.getRoute("shop")).toStrictEqual(created.route);

      const b = routeN(2);
      const updated = await s.putRoute("shop", b, {}, { actor: "bob" });
      expect(updated.outcome).toBe("updated");
      expect(updated.route.revision).toBe(2);
      expect(updated.route.spec).toStrictEqual(b);
      expect(await s.getRoute("shop")).toStrictEqual(updated.route);
      const v = await s.version();

      for (const same of [b, reordered(b), routeN(2)]) {
        const unchanged = await s.putRoute("shop", same, {}, { actor: "carol" });
        expect(unchanged.outcome).toBe("unchanged");
        expect(unchanged.route).toStrictEqual(updated.route);
      }
      expect(revisionsOf(await s.listRevisions("shop"))).toStrictEqual([2, 1]);
      expect(await s.version()).toBe(v);
      expect(await s.getRoute("shop")).toStrictEqual(updated.route);
    });

    it("lists revisions newest first with action, actor, time and spec", async () => {
      const s = await openSeeded();
      const a = route();
      const b = routeN(2);
      await s.putRoute("shop", a, {}, { actor: "alice" });
      await s.putRoute("shop", b, {}, { actor: "bob" });
      await s.putRoute("shop", a, {}, { actor: "carol", action: "rollback", restoredFrom: 1 });
      expect(await s.deleteRoute("shop", {}, { actor: "dave" })).toBe(3);

      const history = await s.listRevisions("shop");
      const at = expect.any(String);
      expect(history).toStrictEqual([
        { revision: 4, action: "delete", at, actor: "dave" },
        { revision: 3, action: "rollback", at, actor: "carol", spec: a, restoredFrom: 1 },
        { revision: 2, action: "update", at, actor: "bob", spec: b },
        { revision: 1, action: "create", at, actor: "alice", spec: a },
      ]);
      const times = history.map((r) => r.at);
      expect(times.every((t) => !Number.isNaN(Date.parse(t)))).toBe(true);
      expect([...times].sort().reverse()).toStrictEqual(times);
      expect(new Set(times).size).toBe(4);

      for (const record of history) expect(await s.getRevision("shop", record.revision)).toStrictEqual(record);
      expect(await s.getRevision("shop", 5)).toBeNull();
      expect(await s.getRevision("shop", 0)).toBeNull();
      expect(await s.listRevisions("other")).toStrictEqual([]);
      expect(await s.getRevision("other", 1)).toBeNull();
    });

    it("updatedAt of the current route is the time of its latest revision", async () => {
      const s = await openSeeded();
      const first = await s.putRoute("shop", route(), {}, alice);
      const second = await s.putRoute("shop", routeN(2), {}, alice);
      expect(second.route.updatedAt > first.route.updatedAt).toBe(true);
      const [latest] = await s.listRevisions("shop");
      expect((await s.getRoute("shop"))?.updatedAt).toBe(latest?.at);
      expect(second.route.updatedAt).toBe(latest?.at);
      // An unchanged put keeps the time of the revision it left in place.
      expect((await s.putRoute("shop", routeN(2), {}, alice)).route.updatedAt).toBe(latest?.at);
    });

    it("a spec is stored independently of the caller's object", async () => {
      const s = await openSeeded();
      const spec = route();
      const put = await s.putRoute("shop", spec, {}, alice);
      spec.hostnames.push("mutated.example.com");
      put.route.spec.hostnames.push("mutated-too.example.com");
      // ...and what a read returns is a copy too.
      (await s.getRoute("shop"))?.spec.hostnames.push("read-1.example.com");
      (await s.listRoutes())[0]?.spec.hostnames.push("read-2.example.com");
      (await s.getRevision("shop", 1))?.spec?.hostnames.push("read-3.example.com");
      (await s.listRevisions("shop"))[0]?.spec?.hostnames.push("read-4.example.com");
      expect((await s.getRoute("shop"))?.spec).toStrictEqual(route());
      expect((await s.listRoutes())[0]?.spec).toStrictEqual(route());
      expect((await s.getRevision("shop", 1))?.spec).toStrictEqual(route());
    });

    it("re-creating a deleted route continues the revision numbers", async () => {
      const s = await openSeeded();
      await s.putRoute("shop", route(), {}, alice);
      await s.putRoute("shop", routeN(2), {}, alice);
      expect(await s.deleteRoute("shop", {}, alice)).toBe(2);
      expect(await s.getRoute("shop")).toBeNull();

      const again = await s.putRoute("shop", route(), { ifNoneMatch: "*" }, { actor: "bob" });
      expect(again.outcome).toBe("created");
      expect(again.route.revision).toBe(4);
      const history = await s.listRevisions("shop");
      expect(history.map((r) => [r.revision, r.action])).toStrictEqual([
        [4, "create"],
        [3, "delete"],
        [2, "update"],
        [1, "create"],
      ]);
      // A second delete/re-create cycle keeps counting.
      expect(await s.deleteRoute("shop", { ifMatch: 4 }, alice)).toBe(4);
      expect((await s.putRoute("shop", routeN(3), {}, alice)).route.revision).toBe(6);
    });

    it("a rollback writes a new revision even when the spec is identical, and records restoredFrom", async () => {
      const s = await openSeeded();
      const a = route();
      await s.putRoute("shop", a, {}, alice);
      await s.putRoute("shop", routeN(2), {}, alice);

      const back = await s.putRoute("shop", a, { ifMatch: 2 }, { actor: "bob", action: "rollback", restoredFrom: 1 });
      expect(back.outcome).toBe("updated");
      expect(back.route.revision).toBe(3);
      expect(back.route.spec).toStrictEqual(a);
      const v = await s.version();

      // Identical to the current spec: a plain put would be "unchanged", a rollback is not.
      const again = await s.putRoute("shop", a, {}, { actor: "carol", action: "rollback", restoredFrom: 3 });
      expect(again.outcome).toBe("updated");
      expect(again.route.revision).toBe(4);
      expect(await s.version()).toBeGreaterThan(v);

      const [r4, r3] = await s.listRevisions("shop");
      expect(r4).toStrictEqual({ revision: 4, action: "rollback", at: expect.any(String), actor: "carol", spec: a, restoredFrom: 3 });
      expect(r3).toStrictEqual({ revision: 3, action: "rollback", at: expect.any(String), actor: "bob", spec: a, restoredFrom: 1 });
      expect((await s.getRoute("shop"))?.revision).toBe(4);
    });

    it("a rollback of a deleted route re-creates it (outcome created, action rollback)", async () => {
      const s = await openSeeded();
      const a = route();
      await s.putRoute("shop", a, {}, alice);
      await s.deleteRoute("shop", {}, alice);

      const restored = await s.putRoute("shop", a, { ifNoneMatch: "*" }, { actor: "bob", action: "rollback", restoredFrom: 1 });
      expect(restored.route.revision).toBe(3);
      expect(await s.getRoute("shop")).toStrictEqual({ name: "shop", revision: 3, spec: a, updatedAt: expect.any(String) });
      const [latest] = await s.listRevisions("shop");
      expect(latest).toMatchObject({ revision: 3, action: "rollback", restoredFrom: 1, spec: a });
      // The route did not exist before this write, so it was created (HTTP 201, not 200).
      expect(restored.outcome).toBe("created");
    });

    it("keeps only the last maxRevisions history entries", async () => {
      const s = await openSeeded({ maxRevisions: 5 });
      for (let i = 1; i <= 12; i++) {
        const put = await s.putRoute("shop", routeN(i), {}, alice);
        expect(put.route.revision).toBe(i);
      }
      const history = await s.listRevisions("shop");
      expect(revisionsOf(history)).toStrictEqual([12, 11, 10, 9, 8]);
      history.forEach((record, i) => expect(record.spec).toStrictEqual(routeN(12 - i)));
      expect(await s.getRevision("shop", 7)).toBeNull();
      expect(await s.getRevision("shop", 1)).toBeNull();
      expect((await s.getRevision("shop", 8))?.spec).toStrictEqual(routeN(8));
      // Trimming never touches the current route.
      expect(await s.getRoute("shop")).toMatchObject({ revision: 12, spec: routeN(12) });
      expect((await s.putRoute("shop", routeN(12), {}, alice)).outcome).toBe("unchanged");

      // Deletes count as history entries too, and revision numbers still never go back.
      expect(await s.deleteRoute("shop", {}, alice)).toBe(12);
      expect(revisionsOf(await s.listRevisions("shop"))).toStrictEqual([13, 12, 11, 10, 9]);
      const again = await s.putRoute("shop", routeN(1), {}, alice);
      expect(again).toMatchObject({ outcome: "created", route: { revision: 14 } });
      expect(revisionsOf(await s.listRevisions("shop"))).toStrictEqual([14, 13, 12, 11, 10]);
      expect(await s.getRoute("shop")).toMatchObject({ revision: 14, spec: routeN(1) });
    });

    it("keeps history per route", async () => {
      const s = await openSeeded({ maxRevisions: 5 });
      await s.putRoute("a", routeN(1), {}, alice);
      for (let i = 1; i <= 7; i++) await s.putRoute("b", routeN(i), {}, alice);
      expect(revisionsOf(await s.listRevisions("a"))).toStrictEqual([1]);
      expect(revisionsOf(await s.listRevisions("b"))).toStrictEqual([7, 6, 5, 4, 3]);
      expect((await s.putRoute("a", routeN(2), {}, alice)).route.revision).toBe(2);
    });
  });

  describe("routes: preconditions", () => {
    it("ifMatch with the current revision succeeds", async () => {
      const s = await openSeeded();
      await s.putRoute("shop", route(), {}, alice);
      const put = await s.putRoute("shop", routeN(2), { ifMatch: 1 }, alice);
      expect(put).toMatchObject({ outcome: "updated", route: { revision: 2 } });
      expect((await s.putRoute("shop", routeN(3), { ifMatch: 2 }, alice)).route.revision).toBe(3);
    });

    it("a stale ifMatch fails with PreconditionFailedError carrying the current revision, and writes nothing", async () => {
      const s = await openSeeded();
      await s.putRoute("shop", route(), {}, alice);
      const current = await s.putRoute("shop", routeN(2), {}, alice);
      const v = await s.version();

      await expectPreconditionFailed(s.putRoute("shop", routeN(3), { ifMatch: 1 }, alice), 2);
      await expectPreconditionFailed(s.putRoute("shop", routeN(3), { ifMatch: 3 }, alice), 2);
      expect(await s.getRoute("shop")).toStrictEqual(current.route);
      expect(revisionsOf(await s.listRevisions("shop"))).toStrictEqual([2, 1]);
      expect(await s.version()).toBe(v);
    });

    it("the error names the current revision", async () => {
      const s = await openSeeded();
      await s.putRoute("shop", route(), {}, alice);
      const err = await s.putRoute("shop", routeN(2), { ifMatch: 7 }, alice).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PreconditionFailedError);
      expect((err as Error).name).toBe("PreconditionFailedError");
      expect((err as Error).message).toMatch(/revision 1/);
    });

    it("the precondition is checked before an identical spec counts as unchanged", async () => {
      const s = await openSeeded();
      await s.putRoute("shop", route(), {}, alice);
      await s.putRoute("shop", routeN(2), {}, alice);
      await expectPreconditionFailed(s.putRoute("shop", routeN(2), { ifMatch: 1 }, alice), 2);
      await expectPreconditionFailed(s.putRoute("shop", routeN(2), { ifNoneMatch: "*" }, alice), 2);
      expect((await s.putRoute("shop", routeN(2), { ifMatch: 2 }, alice)).outcome).toBe("unchanged");
    });

    it("ifMatch with a number on a missing route fails with current 0", async () => {
      const s = await openSeeded();
      await expectPreconditionFailed(s.putRoute("shop", route(), { ifMatch: 1 }, alice), 0);
      await expectPreconditionFailed(s.putRoute("shop", route(), { ifMatch: 5 }, alice), 0);
      expect(await s.getRoute("shop")).toBeNull();
      expect(await s.listRevisions("shop")).toStrictEqual([]);
    });

    it("ifNoneMatch '*' creates a missing route and fails on an existing one", async () => {
      const s = await openSeeded();
      const created = await s.putRoute("shop", route(), { ifNoneMatch: "*" }, alice);
      expect(created).toMatchObject({ outcome: "created", route: { revision: 1 } });
      await expectPreconditionFailed(s.putRoute("shop", routeN(2), { ifNoneMatch: "*" }, alice), 1);
      expect(await s.getRoute("shop")).toStrictEqual(created.route);
      expect(revisionsOf(await s.listRevisions("shop"))).toStrictEqual([1]);
    });

    it("ifMatch '*' fails on a missing route, leaving it missing, and succeeds on an existing one", async () => {
      const s = await openSeeded();
      const v = await s.version();
      await expectPreconditionFailed(s.putRoute("shop", route(), { ifMatch: "*" }, alice), 0);
      expect(await s.getRoute("shop")).toBeNull();
      expect(await s.listRoutes()).toStrictEqual([]);
      expect(await s.listRevisions("shop")).toStrictEqual([]);
      expect(await s.version()).toBe(v);
      // ...and the failed attempt did not burn a revision number.
      expect((await s.putRoute("shop", route(), {}, alice)).route.revision).toBe(1);

      const updated = await s.putRoute("shop", routeN(2), { ifMatch: "*" }, alice);
      expect(updated).toMatchObject({ outcome: "updated", route: { revision: 2 } });
    });

    it("ifMatch '*' also fails on a route that was deleted", async () => {
      const s = await openSeeded();
      await s.putRoute("shop", route(), {}, alice);
      await s.deleteRoute("shop", {}, alice);
      await expectPreconditionFailed(s.putRoute("shop", route(), { ifMatch: "*" }, alice), 0);
      await expectPreconditionFailed(s.putRoute("shop", route(), { ifMatch: 1 }, alice), 0);
      expect(await s.getRoute("shop")).toBeNull();
    });
  });

  describe("routes: delete", () => {
    it("delete without a precondition returns the last revision and records a delete", async () => {
      const s = await openSeeded();
      await s.putRoute("shop", route(), {}, alice);
      await s.putRoute("shop", routeN(2), {}, alice);
      const v = await s.version();
      expect(await s.deleteRoute("shop", {}, { actor: "bob" })).toBe(2);
      expect(await s.getRoute("shop")).toBeNull();
      expect(await s.listRoutes()).toStrictEqual([]);
      expect(await s.version()).toBeGreaterThan(v);
      const [latest] = await s.listRevisions("shop");
      expect(latest).toStrictEqual({ revision: 3, action: "delete", at: expect.any(String), actor: "bob" });
      // Older revisions keep their specs after the route is gone.
      expect((await s.getRevision("shop", 2))?.spec).toStrictEqual(routeN(2));
    });

    it("delete with ifMatch: the current revision succeeds, a stale one fails and keeps the route", async () => {
      const s = await openSeeded();
      await s.putRoute("shop", route(), {}, alice);
      const current = await s.putRoute("shop", routeN(2), {}, alice);
      const v = await s.version();
      await expectPreconditionFailed(s.deleteRoute("shop", { ifMatch: 1 }, alice), 2);
      await expectPreconditionFailed(s.deleteRoute("shop", { ifNoneMatch: "*" }, alice), 2);
      expect(await s.getRoute("shop")).toStrictEqual(current.route);
      expect(revisionsOf(await s.listRevisions("shop"))).toStrictEqual([2, 1]);
      expect(await s.version()).toBe(v);

      expect(await s.deleteRoute("shop", { ifMatch: 2 }, alice)).toBe(2);
      expect(await s.getRoute("shop")).toBeNull();
    });

    it("delete with ifMatch '*' deletes an existing route", async () => {
      const s = await openSeeded();
      await s.putRoute("shop", route(), {}, alice);
      expect(await s.deleteRoute("shop", { ifMatch: "*" }, alice)).toBe(1);
      expect(await s.getRoute("shop")).toBeNull();
    });

    it("deleting a missing route returns null and changes nothing", async () => {
      const s = await openSeeded();
      await s.putRoute("other", route(), {}, alice);
      const v = await s.version();
      expect(await s.deleteRoute("shop", {}, alice)).toBeNull();
      expect(await s.listRevisions("shop")).toStrictEqual([]);
      expect(await s.version()).toBe(v);
      expect((await s.putRoute("shop", route(), {}, alice)).route.revision).toBe(1);

      // Deleting twice: the second finds nothing and adds no history.
      await s.deleteRoute("shop", {}, alice);
      expect(await s.deleteRoute("shop", {}, alice)).toBeNull();
      expect(revisionsOf(await s.listRevisions("shop"))).toStrictEqual([2, 1]);
    });

    it("deleting a missing route with ifMatch fails with current 0", async () => {
      const s = await openSeeded();
      await expectPreconditionFailed(s.deleteRoute("shop", { ifMatch: "*" }, alice), 0);
      await expectPreconditionFailed(s.deleteRoute("shop", { ifMatch: 1 }, alice), 0);
      expect(await s.listRevisions("shop")).toStrictEqual([]);
    });

    it("deleteRoute returns the revision it deleted, also when an update lands just before it", async () => {
      const s = await openSeeded();
      await s.putRoute("shop", route(), {}, alice);
      // Started together: whichever order the store applies them in, the delete must report the
      // revision that was current when it deleted.
      const put = s.putRoute("shop", routeN(2), {}, alice);
      const del = s.deleteRoute("shop", {}, alice);
      const [putResult, deleted] = await Promise.all([put, del]);
      const history = await s.listRevisions("shop");
      const at = history.findIndex((r) => r.action === "delete");
      expect(at).toBeGreaterThanOrEqual(0);
      expect(deleted).toBe(history[at + 1]?.revision);
      expect(revisionsOf(history)).toStrictEqual(descending(history.length, 1));
      // The put is an update when it landed before the delete, and re-creates the route when after.
      const deleteRevision = history[at]?.revision ?? 0;
      expect(history.find((r) => r.revision === putResult.route.revision)?.action).toBe(putResult.route.revision > deleteRevision ? "create" : "update");
    });
  });

  describe("listing and snapshot", () => {
    it("listRoutes is sorted by name and omits deleted routes", async () => {
      const s = await openSeeded();
      expect(await s.listRoutes()).toStrictEqual([]);
      for (const [i, name] of ["web", "api", "mobile", "admin"].entries()) await s.putRoute(name, routeN(i), {}, alice);
      await s.putRoute("api", routeN(9), {}, alice);
      await s.deleteRoute("mobile", {}, alice);
      const list = await s.listRoutes();
      expect(list.map((r) => [r.name, r.revision])).toStrictEqual([
        ["admin", 1],
        ["api", 2],
        ["web", 1],
      ]);
      expect(list[1]).toStrictEqual(await s.getRoute("api"));
      expect(list[1]?.spec).toStrictEqual(routeN(9));
    });

    it("snapshot() returns every cluster, route and rollout with the current version", async () => {
      const s = await open();
      const empty = await s.snapshot();
      expect(empty).toStrictEqual({ version: 0, clusters: [], routes: [], rollouts: [] });

      await s.putCluster("west", cluster({ trustDomain: "west.example.com" }));
      await s.putCluster("east", cluster());
      await s.putRoute("shop", route(), {}, alice);
      await s.putRoute("api", routeN(2), {}, alice);
      await s.putRoute("gone", routeN(3), {}, alice);
      await s.deleteRoute("gone", {}, alice);

      const snap = await s.snapshot();
      expect(snap.version).toBe(await s.version());
      expect(snap.version).toBeGreaterThan(0);
      expect(snap.clusters).toStrictEqual(await s.listClusters());
      expect(snap.clusters.map((c) => c.name)).toStrictEqual(["east", "west"]);
      expect(snap.routes).toStrictEqual(await s.listRoutes());
      expect(snap.routes.map((r) => r.name)).toStrictEqual(["api", "shop"]);
      expect(snap.routes[1]?.spec).toStrictEqual(route());
      expect(snap.rollouts).toStrictEqual(await s.listRollouts());
    });
  });

  describe("version", () => {
    it("starts at 0 and increases on every effective write, and only then", async () => {
      const s = await open();
      let last = await s.version();
      expect(last).toBe(0);
      const step = async (what: string, effective: boolean, write: () => Promise<unknown>) => {
        await write().catch((e: unknown) => {
          if (effective || !isRefusal(e)) throw e;
        });
        const now = await s.version();
        if (effective) expect(now, `${what} should move the version`).toBeGreaterThan(last);
        else expect(now, `${what} should not move the version`).toBe(last);
        last = now;
      };
      await step("create cluster", true, () => s.putCluster("east", cluster()));
      await step("same cluster", false, () => s.putCluster("east", cluster()));
      await step("replace cluster", true, () => s.putCluster("east", cluster({ endpoint: "https://b.example.com" })));
      await step("route naming an unknown cluster", false, () => s.putRoute("shop", routeVia(["east", "west"]), {}, alice));
      await step("cluster with a taken trust domain", false, () => s.putCluster("west", cluster()));
      await step("create route", true, () => s.putRoute("shop", route(), {}, alice));
      await step("delete cluster in use", false, () => s.deleteCluster("east"));
      await step("same route", false, () => s.putRoute("shop", route(), {}, alice));
      await step("update route", true, () => s.putRoute("shop", routeN(2), {}, alice));
      await step("stale ifMatch", false, () => s.putRoute("shop", routeN(3), { ifMatch: 1 }, alice));
      await step("rollback to the same spec", true, () => s.putRoute("shop", routeN(2), {}, { actor: "a", action: "rollback", restoredFrom: 2 }));
      await step("delete missing route", false, () => s.deleteRoute("nope", {}, alice));
      await step("stale delete", false, () => s.deleteRoute("shop", { ifMatch: 1 }, alice));
      await step("delete route", true, () => s.deleteRoute("shop", {}, alice));
      await step("delete missing cluster", false, () => s.deleteCluster("nope"));
      await step("delete cluster", true, () => s.deleteCluster("east"));
    });
  });

  describe("subscribe", () => {
    it("delivers a route event for a route write, carrying the version after the write", async () => {
      const s = await openSeeded();
      const feed = await recordEvents(s);
      await s.putRoute("shop", route(), {}, alice);
      const v1 = await s.version();
      expect(await feed.waitFor((e) => e.kind === "route" && e.name === "shop", "route create")).toStrictEqual({ kind: "route", name: "shop", version: v1 });

      await s.putRoute("shop", routeN(2), {}, alice);
      const v2 = await s.version();
      expect(await feed.waitFor((e) => e.version === v2, "route update")).toStrictEqual({ kind: "route", name: "shop", version: v2 });
      await s.deleteRoute("shop", {}, alice);
      const v3 = await s.version();
      expect(await feed.waitFor((e) => e.version === v3, "route delete")).toStrictEqual({ kind: "route", name: "shop", version: v3 });
      expect(feed.events).toHaveLength(3);
    });

    it("delivers cluster events for put and delete", async () => {
      const s = await open();
      const feed = await recordEvents(s);
      await s.putCluster("east", cluster());
      const v1 = await s.version();
      expect(await feed.waitFor((e) => e.kind === "cluster", "cluster put")).toStrictEqual({ kind: "cluster", name: "east", version: v1 });
      await s.deleteCluster("east");
      const v2 = await s.version();
      expect(await feed.waitFor((e) => e.version === v2, "cluster delete")).toStrictEqual({ kind: "cluster", name: "east", version: v2 });
    });

    it("does not notify for writes that change nothing", async () => {
      const s = await open();
      await s.putCluster("east", cluster());
      await s.putRoute("shop", route(), {}, alice);
      const feed = await recordEvents(s);

      await s.putCluster("east", cluster());
      await s.deleteCluster("nope");
      await s.putRoute("shop", route(), {}, alice);
      await s.putRoute("shop", routeN(2), { ifMatch: 9 }, alice).catch(() => undefined);
      await s.deleteRoute("nope", {}, alice);
      // Refused writes are not writes either.
      await expect(s.putRoute("other", routeVia(["nowhere"]), {}, alice)).rejects.toBeInstanceOf(UnknownClusterError);
      await expect(s.deleteCluster("east")).rejects.toBeInstanceOf(ClusterInUseError);
      await expect(s.putCluster("clash", cluster())).rejects.toBeInstanceOf(TrustDomainConflictError);
      // A marker write: events are delivered in order, so anything above would arrive before it.
      await s.putCluster("marker", clusterNamed("marker"));
      await feed.waitFor((e) => e.name === "marker", "marker");
      expect(feed.events.map((e) => `${e.kind}:${e.name}`)).toStrictEqual(["cluster:marker"]);
    });

    it("an unsubscribed listener receives nothing more; others still do", async () => {
      const s = await openSeeded();
      const gone = await recordEvents(s);
      const stays = await recordEvents(s);
      await gone.unsubscribe();
      await s.putRoute("shop", route(), {}, alice);
      await stays.waitFor((e) => e.name === "shop", "route");
      expect(gone.events).toStrictEqual([]);
      expect(stays.events).toHaveLength(1);
    });
  });

  describe("rollouts: one per rule", () => {
    const at = "2026-11-26T00:00:00.000Z";
    // Only what the store reads of a rollout: its name, route, rule and phase.
    const rollout = (name: string, rule = "main") =>
      ({ name, spec: { route: "web", rule }, status: { phase: "Progressing", routeRevision: 0 }, version: 0, createdAt: at, updatedAt: at }) as unknown as RolloutRecord;
    const created: RolloutEvent = { at, actor: "test", type: "Created", message: "created", phase: "Progressing", step: 0, canaryWeight: 0 };

    it("a claim whose owner was never recorded is let go, and that owner's creation is then refused", async () => {
      const s = await openSeeded();
      expect(await s.claimRolloutRule("web", "main", "a")).toBe("a");
      // "a" claimed but has not been created yet (or its creation failed): "b" may take the rule.
      expect(await s.claimRolloutRule("web", "main", "b")).toBe("b");
      expect((await rejectionOf(s.createRollout(rollout("a"), created), RuleClaimedError)).owner).toBe("b");
      expect(await s.getRollout("a")).toBeNull();
      expect((await s.createRollout(rollout("b"), created)).name).toBe("b");
      // "b" is recorded: its claim holds, unless the caller replaces it (a finished "b").
      expect(await s.claimRolloutRule("web", "main", "c")).toBe("b");
      expect(await s.claimRolloutRule("web", "main", "c", "a")).toBe("b");
      expect(await s.claimRolloutRule("web", "main", "c", "b")).toBe("c");
      // Rules are claimed one by one.
      expect(await s.claimRolloutRule("web", "other", "d")).toBe("d");
    });

    it("creation needs the rule's claim, and a taken name stays refused as before", async () => {
      const s = await openSeeded();
      expect((await rejectionOf(s.createRollout(rollout("x"), created), RuleClaimedError)).owner).toBe("");
      expect(await s.claimRolloutRule("web", "main", "x")).toBe("x");
      await s.createRollout(rollout("x"), created);
      expect(await s.claimRolloutRule("web", "other", "x")).toBe("x");
      await rejectionOf(s.createRollout(rollout("x", "other"), created), RolloutExistsError);
      expect((await s.listRollouts()).map((r) => r.name)).toEqual(["x"]);
    });

    it("of eight rollouts claiming and creating at once on one rule, exactly one is created", async () => {
      const s = await openSeeded();
      const names = Array.from({ length: 8 }, (_, i) => `r${i}`);
      const outcomes = await Promise.all(
        names.map(async (n) => {
          // What the admin API does: claim (taking over only a claim whose owner has no record), then create.
          const owner = await s.claimRolloutRule("web", "main", n);
          if (owner !== n) return "busy";
          return s.createRollout(rollout(n), created).then(
            () => "created",
            (e: unknown) => (e instanceof RuleClaimedError ? "lost" : String(e)),
          );
        }),
      );
      expect(outcomes.filter((o) => o === "created")).toHaveLength(1);
      expect(outcomes.every((o) => o === "created" || o === "busy" || o === "lost")).toBe(true);
      expect(await s.listRollouts()).toHaveLength(1);
    });
  });

  describe("concurrency", () => {
    it("20 concurrent putRoute calls with the same ifMatch: exactly one wins", async () => {
      const s = await openSeeded();
      await s.putRoute("shop", route(), {}, alice);
      const specs = Array.from({ length: 20 }, (_, i) => routeN(100 + i));
      const results = await Promise.allSettled(specs.map((spec, i) => s.putRoute("shop", spec, { ifMatch: 1 }, { actor: `w${i}` })));

      const won = results.flatMap((r, i) => (r.status === "fulfilled" ? [{ i, value: r.value }] : []));
      const lost = results.flatMap((r) => (r.status === "rejected" ? [r.reason as unknown] : []));
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(19);
      for (const err of lost) {
        expect(err).toBeInstanceOf(PreconditionFailedError);
        expect((err as PreconditionFailedError).current).toBe(2);
      }
      const winner = won[0];
      expect(winner?.value).toMatchObject({ outcome: "updated", route: { revision: 2 } });
      expect(await s.getRoute("shop")).toMatchObject({ revision: 2, spec: specs[winner?.i ?? -1] });
      const history = await s.listRevisions("shop");
      expect(revisionsOf(history)).toStrictEqual([2, 1]);
      expect(history[0]?.actor).toBe(`w${winner?.i}`);
    });

    it("20 concurrent unconditional writes get distinct revisions and a gap-free history", async () => {
      const s = await openSeeded();
      await s.putRoute("shop", route(), {}, alice);
      const v = await s.version();
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => s.putRoute("shop", routeN(200 + i), {}, alice)));
      const revisions = results.map((r) => r.route.revision).sort((a, b) => a - b);
      expect(revisions).toStrictEqual(Array.from({ length: 20 }, (_, i) => i + 2));
      expect(revisionsOf(await s.listRevisions("shop"))).toStrictEqual(descending(21, 1));
      expect(await s.version()).toBe(v + 20);
      // The current route is the one the last write left there.
      const last = results.find((r) => r.route.revision === 21);
      expect(await s.getRoute("shop")).toMatchObject({ revision: 21, spec: last?.route.spec });
    });
  });
});

// ---------------------------------------------------------------- Redis only

describe("RedisStore", () => {
  it("20 concurrent conditional writes from four clients: one wins, 19 fail, history is gap-free", async () => {
    const stores = await Promise.all([openRedis(), openRedis(), openRedis(), openRedis()]);
    const [first] = stores as [RedisStore, ...RedisStore[]];
    await first.putCluster("east", cluster());
    expect(await first.version()).toBe(1);
    await first.putRoute("shop", route(), {}, alice);
    await first.putRoute("shop", routeN(1), {}, alice);
    const specs = Array.from({ length: 20 }, (_, i) => routeN(100 + i));
    const results = await Promise.allSettled(
      specs.map((spec, i) => stores[i % stores.length]!.putRoute("shop", spec, { ifMatch: 2 }, { actor: `w${i}` })),
    );
    const won = results.flatMap((r, i) => (r.status === "fulfilled" ? [i] : []));
    const lost = results.flatMap((r) => (r.status === "rejected" ? [r.reason as unknown] : []));
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(19);
    expect(lost.every((e) => e instanceof PreconditionFailedError && e.current === 3)).toBe(true);

    const history = await stores[3]!.listRevisions("shop");
    expect(revisionsOf(history)).toStrictEqual([3, 2, 1]);
    expect(history[0]).toMatchObject({ action: "update", actor: `w${won[0]}`, spec: specs[won[0]!] });
    expect(await stores[2]!.getRoute("shop")).toMatchObject({ revision: 3, spec: specs[won[0]!] });
    // One cluster and three route revisions: the 19 refused writes moved nothing.
    expect(await first.version()).toBe(4);
  });

  it("concurrent unconditional writes from four clients form a contiguous history", async () => {
    const stores = await Promise.all([openRedis(), openRedis(), openRedis(), openRedis()]);
    await stores[0]!.putCluster("east", cluster());
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => stores[i % 4]!.putRoute("shop", routeN(i), {}, alice)));
    expect(results.map((r) => r.route.revision).sort((a, b) => a - b)).toStrictEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(results.filter((r) => r.outcome === "created")).toHaveLength(1);
    expect(revisionsOf(await stores[0]!.listRevisions("shop"))).toStrictEqual(descending(40, 1));
    expect(await stores[1]!.version()).toBe(41); // the cluster, then 40 route writes
  });

  it("a second instance on the same prefix sees the first one's writes and receives its events", async () => {
    const writer = await openRedis();
    const reader = await openRedis();
    const feed = await recordEvents(reader);

    await writer.putCluster("east", cluster());
    const put = await writer.putRoute("shop", route(), {}, alice);
    expect(await reader.getRoute("shop")).toStrictEqual(put.route);
    expect(await reader.listClusters()).toStrictEqual(await writer.listClusters());
    expect(await reader.version()).toBe(await writer.version());
    expect(await reader.snapshot()).toStrictEqual(await writer.snapshot());

    const v = await writer.version();
    expect(await feed.waitFor((e) => e.kind === "route" && e.name === "shop", "route")).toStrictEqual({ kind: "route", name: "shop", version: v });
    expect(feed.events.map((e) => e.kind)).toStrictEqual(["cluster", "route"]);

    // The reader can also write on top of the writer's revision.
    expect((await reader.putRoute("shop", routeN(2), { ifMatch: 1 }, alice)).route.revision).toBe(2);
    await expectPreconditionFailed(writer.putRoute("shop", routeN(3), { ifMatch: 1 }, alice), 2);
  });

  it("10 concurrent putCluster calls with one trust domain, from four clients: exactly one succeeds", async () => {
    const stores = await Promise.all([openRedis(), openRedis(), openRedis(), openRedis()]);
    for (let round = 0; round < 3; round++) {
      const trustDomain = `race-${round}.example.com`;
      const names = Array.from({ length: 10 }, (_, i) => `r${round}-c${i}`);
      const results = await Promise.allSettled(names.map((name, i) => stores[i % stores.length]!.putCluster(name, clusterNamed(name, { trustDomain }))));
      const won = names.filter((_, i) => results[i]?.status === "fulfilled");
      expect(won, `round ${round}`).toHaveLength(1);
      const winner = won[0];
      for (const r of results) {
        if (r.status === "fulfilled") {
          expect(r.value).toMatchObject({ created: true, changed: true, cluster: { name: winner } });
          continue;
        }
        expect(r.reason).toBeInstanceOf(TrustDomainConflictError);
        expect(r.reason).toMatchObject({ trustDomain, owner: winner });
      }
      const owners = (await stores[round % 4]!.listClusters()).filter((c) => c.spec.trustDomain === trustDomain);
      expect(owners.map((c) => c.name)).toStrictEqual([winner]);
    }
    // Three clusters written, 27 refused: the version counts only the writes.
    expect(await stores[0]!.version()).toBe(3);
  });

  it("10 pairs of concurrent (deleteCluster X, putRoute naming X) on two clients: never both succeed, and no route names a missing cluster", async () => {
    const [a, b] = (await Promise.all([openRedis(), openRedis()])) as [RedisStore, RedisStore];
    const n = 10;
    for (let i = 0; i < n; i++) await a.putCluster(`x${i}`, clusterNamed(`x${i}`));
    // Vary which call starts first and by how much, so the two interleave in different ways.
    const pause = (i: number) => new Promise<void>((resolve) => (i % 4 === 0 ? resolve() : i % 4 === 1 ? setImmediate(resolve) : setTimeout(resolve, (i % 4) - 1)));
    const pairs = await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const del = async () => {
          if (i % 2 === 1) await pause(i);
          return (i % 2 === 0 ? a : b).deleteCluster(`x${i}`);
        };
        const put = async () => {
          if (i % 2 === 0) await pause(i);
          return (i % 2 === 0 ? b : a).putRoute(`r${i}`, routeVia([`x${i}`], { hostnames: [`r${i}.example.com`] }), {}, alice);
        };
        return Promise.allSettled([del(), put()]);
      }),
    );
    const outcomes = pairs.map(([del, put]) => `${del.status === "fulfilled" ? `delete:${del.value}` : `delete:${(del.reason as Error).name}`}/${put.status === "fulfilled" ? "put:ok" : `put:${(put.reason as Error).name}`}`);
    const clusters = new Set((await b.listClusters()).map((c) => c.name));
    const routes = await a.listRoutes();

    pairs.forEach(([del, put], i) => {
      const deleted = del.status === "fulfilled" && del.value;
      const written = put.status === "fulfilled";
      expect(deleted && written, `pair ${i}: ${outcomes[i]}`).toBe(false);
      // Exactly one wins: the loser is refused for the winner's sake, with the error that says why.
      expect(deleted || written, `pair ${i}: ${outcomes[i]}`).toBe(true);
      if (deleted) {
        expect(put.status === "rejected" && put.reason).toBeInstanceOf(UnknownClusterError);
        expect(put.status === "rejected" && (put.reason as UnknownClusterError).clusters).toStrictEqual([`x${i}`]);
        expect(clusters.has(`x${i}`)).toBe(false);
        expect(routes.some((r) => r.name === `r${i}`)).toBe(false);
      } else {
        expect(del.status === "rejected" && del.reason).toBeInstanceOf(ClusterInUseError);
        expect(del.status === "rejected" && (del.reason as ClusterInUseError).routes).toStrictEqual([`r${i}`]);
        expect(clusters.has(`x${i}`)).toBe(true);
        expect(routes.find((r) => r.name === `r${i}`)?.spec).toStrictEqual(routeVia([`x${i}`], { hostnames: [`r${i}.example.com`] }));
      }
    });
    const dangling = routes.flatMap((r) => r.spec.rules.flatMap((rule) => rule.backendRefs.filter((ref) => !clusters.has(ref.cluster)).map((ref) => `${r.name} -> ${ref.cluster}`)));
    expect(dangling, outcomes.join(" ")).toStrictEqual([]);

    // The references settled: once the routes are gone, every remaining cluster can be deleted.
    for (const r of routes) await a.deleteRoute(r.name, {}, alice);
    for (const name of clusters) expect(await b.deleteCluster(name)).toBe(true);
    expect(await a.listClusters()).toStrictEqual([]);
  });

  it("stores on different prefixes do not see each other", async () => {
    const a = await openRedis();
    const b = await openRedis({ prefix: uniquePrefix("other") });
    const feed = await recordEvents(b);
    await a.putCluster("east", cluster());
    await a.putRoute("shop", route(), {}, alice);
    expect(await b.getRoute("shop")).toBeNull();
    expect(await b.listClusters()).toStrictEqual([]);
    expect(await b.version()).toBe(0);
    await b.putCluster("marker", clusterNamed("marker"));
    await feed.waitFor((e) => e.name === "marker", "marker");
    expect(feed.events.map((e) => e.name)).toStrictEqual(["marker"]);
  });

  it("trimmed revisions leave no snapshot keys behind in Redis", async () => {
    const s = await openRedis({ maxRevisions: 5 });
    await s.putCluster("east", cluster());
    for (let i = 1; i <= 12; i++) await s.putRoute("shop", routeN(i), {}, alice);
    const raw = new Redis(inject("redisUrl"), { lazyConnect: true });
    try {
      await raw.connect();
      const keys = (await raw.keys(`${testPrefix}:*`)).filter((k) => k.includes(":rev:"));
      expect(keys.map((k) => Number(k.split(":rev:")[1])).sort((a, b) => a - b)).toStrictEqual([8, 9, 10, 11, 12]);
    } finally {
      raw.disconnect();
    }
  });

  it("rejects operations with StoreUnavailableError when nothing listens on the port", { timeout: 3000 }, async () => {
    const port = await freePort();
    const store = new RedisStore({ url: `redis://127.0.0.1:${port}`, prefix: testPrefix });
    opened.push(store);
    await expect(store.connect()).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(store.getRoute("shop")).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(store.putRoute("shop", route(), {}, alice)).rejects.toBeInstanceOf(StoreUnavailableError);
  });

  describe("when redis goes away", () => {
    let server: RedisServer;
    let store: RedisStore;
    let feed: Awaited<ReturnType<typeof recordEvents>>;
    let prefix: string;
    let versionBefore: number;
    const stores: RedisStore[] = [];

    beforeAll(async () => {
      server = await startRedis({ persistent: true });
      prefix = uniquePrefix("outage");
      store = new RedisStore({ url: server.url, prefix, commandTimeoutMs: 500 });
      stores.push(store);
      await store.connect();
      await store.putCluster("east", cluster());
      await store.putRoute("shop", route(), {}, alice);
      await store.putRoute("shop", routeN(2), {}, alice);
      versionBefore = await store.version();
      feed = await recordEvents(store);
    });

    afterAll(async () => {
      await Promise.all(stores.map((s) => s.close()));
      await server?.stop();
    });

    it("a frozen server (SIGSTOP) makes calls fail with StoreUnavailableError, and the store recovers", { timeout: 3000 }, async () => {
      await server.kill("SIGSTOP");
      try {
        await expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
        await expect(store.getRoute("shop")).rejects.toBeInstanceOf(StoreUnavailableError);
        await expect(store.putRoute("shop", routeN(3), { ifMatch: 2 }, alice)).rejects.toBeInstanceOf(StoreUnavailableError);
      } finally {
        await server.kill("SIGCONT");
      }
      // Late replies to the timed-out commands must not be handed to later ones.
      await expect(store.ping()).resolves.toBeUndefined();
      expect(await store.getRoute("shop")).toMatchObject({ revision: 2, spec: routeN(2) });
      expect(await store.getCluster("east")).toMatchObject({ spec: cluster() });
      expect(await store.version()).toBe(versionBefore);
    });

    it("after kill -9 every operation rejects with StoreUnavailableError quickly and none hangs", { timeout: 3000 }, async () => {
      await server.kill("SIGKILL");
      const calls: [string, () => Promise<unknown>][] = [
        ["ping", () => store.ping()],
        ["version", () => store.version()],
        ["snapshot", () => store.snapshot()],
        ["listClusters", () => store.listClusters()],
        ["getCluster", () => store.getCluster("east")],
        ["putCluster", () => store.putCluster("west", cluster({ trustDomain: "west.example.com" }))],
        ["deleteCluster", () => store.deleteCluster("east")],
        ["listRoutes", () => store.listRoutes()],
        ["getRoute", () => store.getRoute("shop")],
        ["putRoute", () => store.putRoute("shop", routeN(3), { ifMatch: 2 }, alice)],
        ["deleteRoute", () => store.deleteRoute("shop", {}, alice)],
        ["listRevisions", () => store.listRevisions("shop")],
        ["getRevision", () => store.getRevision("shop", 1)],
      ];
      for (const [name, call] of calls) {
        const err = await call().then(
          () => new Error(`${name} succeeded against a dead server`),
          (e: unknown) => e,
        );
        expect(err, name).toBeInstanceOf(StoreUnavailableError);
      }
    });

    it("after a restart with persistence the store reconnects by itself and the data is intact", { timeout: 15_000 }, async () => {
      await server.restart();
      // The client reconnects on its own backoff schedule; no explicit connect().
      await vi.waitFor(() => store.ping(), { timeout: 10_000, interval: 50 });

      expect(await store.getRoute("shop")).toMatchObject({ revision: 2, spec: routeN(2) });
      expect(revisionsOf(await store.listRevisions("shop"))).toStrictEqual([2, 1]);
      expect(await store.getCluster("east")).toMatchObject({ spec: cluster() });
      expect(await store.version()).toBe(versionBefore);

      // Notifications may have been missed while away: the subscriber is told to reload.
      await feed.waitFor((e) => e.kind === "resync", "resync", 10_000);
      const put = await store.putRoute("shop", routeN(3), { ifMatch: 2 }, alice);
      expect(put).toMatchObject({ outcome: "updated", route: { revision: 3 } });
      expect(await store.version()).toBe(versionBefore + 1);
      await feed.waitFor((e) => e.kind === "route" && e.version === versionBefore + 1, "route after restart");

      // A fresh instance reads the same, persisted state.
      const other = new RedisStore({ url: server.url, prefix });
      stores.push(other);
      await other.connect();
      expect(await other.getRoute("shop")).toMatchObject({ revision: 3, spec: routeN(3) });
    });

    it("every subscriber of a store is told to resync after a reconnect", { timeout: 15_000 }, async () => {
      // `feed` subscribed first (and opened the subscriber connection); this one joins later.
      const late = await recordEvents(store);
      const resyncsBefore = feed.events.filter((e) => e.kind === "resync").length;
      await server.kill("SIGKILL");
      await server.restart();
      await feed.waitFor((e) => e.kind === "resync" && feed.events.filter((x) => x.kind === "resync").length > resyncsBefore, "resync (first listener)", 10_000);
      // Both listeners hang off the same "ready" event, so the late one has had its turn by now.
      expect(late.events.filter((e) => e.kind === "resync")).toHaveLength(1);
    });
  });
});
