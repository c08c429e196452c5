// Several gateway instances on one real Redis: a change made through one is served by the other
// within a second (pub/sub, not the 60 s safety-net poll configured here), and Redis dying or
// freezing while traffic flows fails no data-plane request.
import { Agent, request } from "undici";
import { afterEach, describe, expect, inject, it } from "vitest";
import { startNodeGateway, type RunningGateway } from "../../src/runtime/node.ts";
import { silentLogger } from "../../src/util/log.ts";
import { buildConfig } from "../helpers/gateway.ts";
import { startRedis, uniquePrefix, type RedisServer } from "../helpers/redis-server.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

const TOKEN = "shared-redis-test-token";
const HOST = "checkout.shop";
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function upstreams(): Promise<{ east: Upstream; west: Upstream }> {
  const east = await startUpstream("east");
  const west = await startUpstream("west");
  cleanups.push(() => east.close(), () => west.close());
  return { east, west };
}

function routeSpec(weights: { east: number; west: number }) {
  return {
    hostnames: [HOST],
    authorization: { unauthenticated: true as const },
    rules: [
      {
        name: "default",
        backendRefs: [
          { cluster: "east", service: "checkout.shop.svc.cluster.local", port: 8080, weight: weights.east },
          { cluster: "west", service: "checkout.shop.svc.cluster.local", port: 8080, weight: weights.west },
        ],
      },
    ],
  };
}

async function gateway(opts: { redisUrl: string; prefix: string; withConfig?: { east: string; west: string }; checkIntervalMs: number }): Promise<RunningGateway> {
  const gw = await startNodeGateway({
    port: 0,
    hostname: "127.0.0.1",
    redisUrl: opts.redisUrl,
    redisPrefix: opts.prefix,
    adminToken: TOKEN,
    checkIntervalMs: opts.checkIntervalMs,
    log: silentLogger,
    ...(opts.withConfig ? { config: buildConfig(opts.withConfig, { checkout: routeSpec({ east: 100, west: 0 }) }) } : {}),
  });
  cleanups.push(() => gw.close());
  return gw;
}

const client = new Agent({ connections: 32, keepAliveTimeout: 10_000 });

async function servedBy(gw: RunningGateway): Promise<string> {
  const res = await request(`${gw.url}/`, { dispatcher: client, headers: { host: HOST } });
  const body = (await res.body.json()) as { cluster?: string };
  return `${res.statusCode}:${body.cluster ?? "-"}`;
}

async function adminPut(gw: RunningGateway, path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await request(`${gw.url}/_isthmus/v1${path}`, {
    dispatcher: client,
    method: "PUT",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

async function readyz(gw: RunningGateway): Promise<{ status: number; body: { store: { reachable: boolean }; note?: string } }> {
  const res = await request(`${gw.url}/_isthmus/readyz`, { dispatcher: client });
  return { status: res.statusCode, body: (await res.body.json()) as { store: { reachable: boolean }; note?: string } };
}

/** Polls a condition (a state to reach, not a duration to wait) until it holds or the deadline passes. */
async function until(what: string, cond: () => Promise<boolean>, deadlineMs: number): Promise<number> {
  const start = performance.now();
  for (;;) {
    if (await cond()) return performance.now() - start;
    if (performance.now() - start > deadlineMs) throw new Error(`not within ${deadlineMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("two gateway instances sharing Redis", () => {
  it("serves a route change made through one instance from the other within one second", async () => {
    const { east, west } = await upstreams();
    const prefix = uniquePrefix("propagation");
    const redisUrl = inject("redisUrl");
    // A 60 s safety-net poll: only pub/sub can deliver the change inside the one-second bound.
    const a = await gateway({ redisUrl, prefix, withConfig: { east: east.url, west: west.url }, checkIntervalMs: 60_000 });
    const b = await gateway({ redisUrl, prefix, checkIntervalMs: 60_000 });
    expect(await servedBy(b)).toBe("200:east");

    for (const [i, weights] of [{ east: 0, west: 100 }, { east: 100, west: 0 }, { east: 0, west: 100 }].entries()) {
      const put = await adminPut(a, "/routes/checkout", routeSpec(weights), { "if-match": `"${i + 1}"` });
      expect(put.status).toBe(200);
      expect(put.body.revision).toBe(i + 2);
      const want = weights.west === 100 ? "200:west" : "200:east";
      const ms = await until(`instance B serves ${want}`, async () => (await servedBy(b)) === want, 1000);
      expect(ms).toBeLessThan(1000);
      expect(b.routing.current.routes.get("checkout")?.revision).toBe(i + 2);
    }
  });
});

describe("Redis outages under traffic", () => {
  let redis: RedisServer | null = null;
  afterEach(async () => {
    await redis?.stop();
    redis = null;
  });

  /** Runs `workers` concurrent request loops until stopped; counts every request that was not a 200. */
  function traffic(gw: RunningGateway, workers = 8) {
    let running = true;
    let ok = 0;
    const failures: string[] = [];
    const loops = Array.from({ length: workers }, async () => {
      while (running) {
        try {
          const r = await servedBy(gw);
          if (r.startsWith("200:")) ok++;
          else failures.push(r);
        } catch (err) {
          failures.push(String(err));
        }
      }
    });
    return {
      get ok() {
        return ok;
      },
      failures,
      async stop() {
        running = false;
        await Promise.all(loops);
      },
      /** Resolves once `n` more requests have succeeded. */
      async more(n: number) {
        const target = ok + n;
        await until(`${n} more successful requests`, async () => ok >= target, 20_000);
      },
    };
  }

  it("keeps serving known routes when Redis is killed, reports it in readyz, and recovers", async () => {
    const { east, west } = await upstreams();
    redis = await startRedis({ persistent: true });
    const gw = await gateway({ redisUrl: redis.url, prefix: uniquePrefix("kill"), withConfig: { east: east.url, west: west.url }, checkIntervalMs: 100 });
    expect((await readyz(gw)).status).toBe(200);

    const load = traffic(gw);
    await load.more(300);
    await redis.kill("SIGKILL");
    await until("readyz reports the store unreachable", async () => (await readyz(gw)).status === 503, 5000);
    const down = await readyz(gw);
    expect(down.body.store.reachable).toBe(false);
    expect(down.body.note).toMatch(/last good routing table/);
    await load.more(500); // traffic keeps flowing while Redis is gone

    // Writes cannot succeed now: a clear 503, never a hang or a 500.
    const write = await adminPut(gw, "/routes/checkout", routeSpec({ east: 50, west: 50 }));
    expect(write.status).toBe(503);

    await redis.restart();
    await until("readyz reports the store back", async () => (await readyz(gw)).status === 200, 10_000);
    await load.more(300);
    await load.stop();
    expect(load.failures).toEqual([]);
    expect(load.ok).toBeGreaterThanOrEqual(1100);

    // And the gateway follows changes again after the outage.
    const put = await adminPut(gw, "/routes/checkout", routeSpec({ east: 0, west: 100 }));
    expect(put.status).toBe(200);
    await until("the change is served", async () => (await servedBy(gw)) === "200:west", 2000);
  });

  it("keeps serving known routes while Redis is frozen (SIGSTOP) and resumes", async () => {
    const { east, west } = await upstreams();
    redis = await startRedis({ persistent: true });
    const gw = await gateway({ redisUrl: redis.url, prefix: uniquePrefix("freeze"), withConfig: { east: east.url, west: west.url }, checkIntervalMs: 100 });
    const load = traffic(gw);
    await load.more(200);
    await redis.kill("SIGSTOP");
    try {
      await until("readyz reports the frozen store", async () => (await readyz(gw)).status === 503, 5000);
      await load.more(500);
    } finally {
      await redis.kill("SIGCONT");
    }
    await until("readyz reports the store back", async () => (await readyz(gw)).status === 200, 10_000);
    await load.more(200);
    await load.stop();
    expect(load.failures).toEqual([]);
  });
});
