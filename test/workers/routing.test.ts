// The Worker's real entrypoint (exports.default, so workerd makes each call its own request with
// its own waitUntil) routing by weights stored in the real local Redis to real local upstreams.
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { parseCluster, parseRoute } from "../../src/config/validate.ts";
import { createWorker } from "../../src/runtime/worker.ts";
import { RedisStore } from "../../src/store/redis.ts";
import { b64url, bundleOf, jwkEntry, jwtSvid, makeKey } from "../helpers/identity.ts";
import { ADMIN_TOKEN, sleep, upstreams, until } from "./helpers.ts";

interface Echo {
  cluster: string;
  path: string;
  headers: Record<string, string>;
}

const entry = exports.default;

function routeSpec(east: number, west: number): unknown {
  return {
    hostnames: ["split.shop"],
    authorization: { unauthenticated: true },
    rules: [
      {
        name: "default",
        backendRefs: [
          { cluster: "east", service: "checkout.shop.svc.cluster.local", port: 8080, weight: east },
          { cluster: "west", service: "checkout.shop.svc.cluster.local", port: 8080, weight: west },
        ],
      },
    ],
  };
}

/** `n` requests to split.shop, `parallel` at a time; returns how many each cluster served. */
async function spread(n: number, parallel = 50): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let done = 0; done < n; done += parallel) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(parallel, n - done) }, async () => {
        const res = await entry.fetch(new Request("https://split.shop/items?page=1"));
        expect(res.status).toBe(200);
        return ((await res.json()) as Echo).cluster;
      }),
    );
    for (const c of batch) counts[c] = (counts[c] ?? 0) + 1;
  }
  return counts;
}

function adminCall(method: string, path: string, body?: unknown): Promise<Response> {
  return entry.fetch(
    new Request(`https://gateway.test/_isthmus/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    }),
  );
}

describe("the Worker on the real local Redis", () => {
  it("runs inside workerd", () => {
    expect(navigator.userAgent).toBe("Cloudflare-Workers");
  });

  it("routes 90/10 by weights written to Redis, and follows a weight change made through the admin API within about a second", async () => {
    const up = upstreams();
    // Written straight into Redis under the Worker's prefix, as another gateway instance would.
    const redis = new RedisStore({ url: env.ISTHMUS_REDIS_URL as string, prefix: env.ISTHMUS_REDIS_PREFIX as string });
    try {
      await redis.connect();
      await redis.putCluster("east", parseCluster({ endpoint: up.east, trustDomain: "east.example" }));
      await redis.putCluster("west", parseCluster({ endpoint: up.west, trustDomain: "west.example" }));
      await redis.putRoute("split", parseRoute(routeSpec(90, 10)), {}, { actor: "test" });

      const t0 = performance.now();
      const first = await entry.fetch(new Request("https://split.shop/cold"));
      const coldMs = performance.now() - t0;
      expect(first.status).toBe(200);
      await first.body?.cancel();
      console.log(`first request (isolate boot: gateway, StoreHolder, Redis connect, table load): ${coldMs.toFixed(0)} ms`);

      const t1 = performance.now();
      const counts = await spread(1_000);
      console.log(`1,000 requests in ${(performance.now() - t1).toFixed(0)} ms:`, JSON.stringify(counts));
      expect((counts.east ?? 0) + (counts.west ?? 0)).toBe(1_000);
      // Expected 100 for west; sd ~9.5, so 60..140 is more than 4 sd either side.
      expect(counts.west).toBeGreaterThanOrEqual(60);
      expect(counts.west).toBeLessThanOrEqual(140);

      // Weights move through the admin API of another isolate (a second handler, its own
      // gateway); this one's version check picks them up.
      const other = createWorker();
      const ctx = createExecutionContext();
      const changed = await other.fetch(
        new Request("https://gateway.test/_isthmus/v1/routes/split", { method: "PUT", headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" }, body: JSON.stringify(routeSpec(0, 100)) }),
        env,
        ctx,
      );
      expect(changed.status, await changed.clone().text()).toBe(200);
      await waitOnExecutionContext(ctx);
      const changedAt = performance.now();
      expect((await redis.getRoute("split"))?.spec.rules[0]?.backendRefs.map((b) => b.weight)).toEqual([0, 100]);
      await until(
        "all traffic on west",
        async () => {
          const c = await spread(20, 20);
          return c.west === 20;
        },
        5_000,
        20,
      );
      const tookMs = performance.now() - changedAt;
      console.log(`weight change seen by the data plane after ${tookMs.toFixed(0)} ms`);
      expect(tookMs).toBeLessThan(2_500);
      const after = await spread(200);
      expect(after).toEqual({ west: 200 });
    } finally {
      await redis.close();
    }
  });

  it("loads a trust bundle from its endpoint in the background, across requests", async () => {
    // The bundle fetch starts after the response of the admin request that registered the cluster
    // (its version check swaps the table, which starts the load) and a later request, another
    // event, waits for the keys it brings.
    const key = await makeKey("ES256", "polar-1");
    const bundleUrl = `${env.TEST_CONTROL_URL}/bundle/${b64url(JSON.stringify(bundleOf(jwkEntry(key))))}`;
    const put = await adminCall("PUT", "/clusters/polar", { endpoint: upstreams().west, trustDomain: "polar.example", bundle: { url: bundleUrl } });
    expect(put.status).toBe(201);
    const route = await adminCall("PUT", "/routes/polar", {
      hostnames: ["polar.shop"],
      authorization: { identities: ["spiffe://polar.example/*"] },
      rules: [{ name: "default", backendRefs: [{ cluster: "polar", service: "p.svc.cluster.local", port: 8080, weight: 100 }] }],
    });
    expect(route.status).toBe(201);
    await sleep(200);
    const token = await jwtSvid(key, "spiffe://polar.example/ns/a/sa/b");
    const res = await entry.fetch(new Request("https://polar.shop/", { headers: { authorization: `Bearer ${token}` } }));
    expect(res.status, await res.clone().text()).toBe(200);
  });

  it("keeps the store's typed errors across the Durable Object RPC (412, 409)", async () => {
    const stale = await entry.fetch(
      new Request("https://gateway.test/_isthmus/v1/routes/split", {
        method: "PUT",
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json", "if-match": '"1"' },
        body: JSON.stringify(routeSpec(50, 50)),
      }),
    );
    expect(stale.status).toBe(412);
    expect(stale.headers.get("etag")).toBe('"2"');
    expect(await stale.json()).toMatchObject({ currentRevision: 2 });

    const inUse = await adminCall("DELETE", "/clusters/east");
    expect(inUse.status).toBe(409);
    expect(await inUse.json()).toMatchObject({ routes: ["split"] });

    const sameDomain = await adminCall("PUT", "/clusters/east2", { endpoint: upstreams().east, trustDomain: "east.example" });
    expect(sameDomain.status).toBe(409);
    expect(await sameDomain.json()).toMatchObject({ errors: [{ path: "trustDomain", message: 'already used by cluster "east"' }] });
  });

  it("reaches the StoreHolder from request after request (each call binds a fresh stub)", async () => {
    // A stub kept from an earlier request fails: "Cannot perform I/O on behalf of a different
    // request (I/O type: OutgoingFactory)". Each of these is its own request in workerd.
    for (let i = 0; i < 5; i++) {
      const res = await adminCall("GET", "/clusters");
      expect(res.status).toBe(200);
      expect(((await res.json()) as { items: Array<{ name: string }> }).items.map((c) => c.name)).toEqual(["east", "polar", "west"]);
      await sleep(10);
    }
    const ready = await entry.fetch(new Request("https://gateway.test/_isthmus/readyz"));
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: "ready", store: { kind: "redis", reachable: true }, routingTable: { loaded: true, routes: 2, clusters: 3 } });
  });
});
