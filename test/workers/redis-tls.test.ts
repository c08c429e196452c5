// A managed Redis is reached over the internet with TLS (rediss://). ioredis' node:tls inside
// workerd does a real, verifying handshake: this runs the gateway on a TLS-only redis-server whose
// certificate comes from a CA made for this run.
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createWorker } from "../../src/runtime/worker.ts";
import { admin, clusterDoc, dataRequest, isolatedEnv, send, upstreams } from "./helpers.ts";

describe("Redis over TLS", () => {
  it("stores, routes and reports ready on a rediss:// URL", async () => {
    expect(env.TEST_TLS_REDIS_URL).toMatch(/^rediss:\/\/localhost:\d+$/);
    const wenv = isolatedEnv("tls", { ISTHMUS_REDIS_URL: env.TEST_TLS_REDIS_URL, ISTHMUS_METRICS_FLUSH: "100ms" });
    const handler = createWorker();
    expect((await admin(handler, wenv, "PUT", "/clusters/east", clusterDoc(upstreams().east, "east.example"))).status).toBe(201);
    const route = { hostnames: ["tls.shop"], authorization: { unauthenticated: true }, rules: [{ name: "default", backendRefs: [{ cluster: "east", service: "tls.svc.cluster.local", port: 8080, weight: 100 }] }] };
    expect((await admin(handler, wenv, "PUT", "/routes/tls", route)).status).toBe(201);

    const a = await send(handler, wenv, dataRequest("tls.shop", "/"));
    expect(a.res.status).toBe(200);
    expect(((await a.res.json()) as { cluster: string }).cluster).toBe("east");
    await a.settled;

    // A second isolate reads it back through the same TLS connection of the StoreHolder.
    const other = createWorker();
    const ready = await send(other, wenv, new Request("https://gateway.test/_isthmus/readyz"));
    expect(await ready.res.json()).toMatchObject({ status: "ready", store: { kind: "redis", reachable: true }, routingTable: { routes: 1, clusters: 1 } });
    expect((await admin<{ items: Array<{ name: string }> }>(other, wenv, "GET", "/routes")).body.items.map((r) => r.name)).toEqual(["tls"]);
  });
});
