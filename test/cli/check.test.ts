// isthmus check, the real binary against real gateways: passes on a healthy setup; fails (exit 1,
// with the reason) for a dead cluster, for a cluster without a bundle that routes need identities
// from, and for a store that went away; warns on clock skew.
import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, inject, it } from "vitest";
import type { RunningGateway } from "../../src/runtime/node.ts";
import { startFaultProxy } from "../helpers/fault-proxy.ts";
import { Closer } from "../helpers/gateway.ts";
import { bundleOf, jwkEntry, makeKey } from "../helpers/identity.ts";
import { startUpstream } from "../helpers/upstream.ts";
import { admin, buildConfigWith, cli, json, startGateway, until } from "./helpers.ts";

const closer = new Closer();
afterEach(() => closer.closeAll());

const SVC = "checkout.shop.svc.cluster.local";

interface CheckJson {
  ok: boolean;
  summary: { passed: number; warnings: number; failed: number };
  checks: Array<{ category: string; name: string; status: "pass" | "warn" | "fail"; reason: string }>;
}

async function bundle(kid: string) {
  return { jwks: bundleOf(jwkEntry(await makeKey("ES256", kid))) };
}

/** Resolves once the gateway's probe has a verdict (alive true or false) for every cluster. */
async function probed(gw: RunningGateway, expected: Record<string, boolean>): Promise<void> {
  await until(`probes ${JSON.stringify(expected)}`, async () => {
    const { body } = await admin<{ items: Array<{ name: string; status: { health: { alive: boolean | null } | null } }> }>(gw, "GET", "/clusters");
    return body.items.every((c) => c.status.health?.alive === expected[c.name]) ? true : undefined;
  });
}

describe("isthmus check", () => {
  it("passes on a healthy setup: every check √, exit 0", async () => {
    const east = closer.add(await startUpstream("east"));
    const west = closer.add(await startUpstream("west"));
    const gw = closer.add(
      await startGateway(
        buildConfigWith(
          { east: { endpoint: east.url, trustDomain: "east.example", bundle: await bundle("east-1") }, west: { endpoint: west.url, trustDomain: "west.example", bundle: await bundle("west-1") } },
          {
            checkout: { hostnames: ["checkout.shop"], authorization: { unauthenticated: true }, rules: [{ name: "default", backendRefs: [{ cluster: "east", service: SVC, weight: 90 }, { cluster: "west", service: SVC, weight: 10 }] }] },
            payments: { hostnames: ["payments.shop"], authorization: { identities: ["spiffe://east.example/ns/shop/sa/web"] }, rules: [{ backendRefs: [{ cluster: "west", service: "payments.shop" }] }] },
            orders: { hostnames: ["orders.shop"], rules: [{ backendRefs: [{ cluster: "east", service: "orders.shop" }] }] },
          },
        ),
      ),
    );
    await probed(gw, { east: true, west: true });

    const r = await cli(["check"], { url: gw.url });
    expect(r.code, r.stdout).toBe(0);
    for (const line of [
      "gateway\n-------",
      "√ gateway answers",
      "√ clock skew (within 1s of this machine)",
      "√ store reachable (redis store; routing table version",
      "√ admin API answers with the token (2 clusters, 3 routes)",
      "√ signing key loaded and published (1 key published (kid ",
      "√ east: endpoint healthy (alive, probe GET " + east.url + "/ready in ",
      "√ west: endpoint healthy",
      // From GET /bundles: what the gateway actually loaded, not just what was declared.
      "√ east: trust bundle (jwt-svid bundle: 1 key, loaded ",
      "√ west: trust bundle (jwt-svid bundle: 1 key, loaded ",
      "√ checkout: backends (2 backends in 2 clusters, all alive)",
      "√ checkout: callers can authenticate (open to unauthenticated callers)",
      "√ payments: callers can authenticate (identities of east (east.example))",
      "√ orders: callers can authenticate (any authenticated caller; clusters with a bundle: east, west)",
      "Status check results are √ (15 passed, 0 warnings, 0 failed)",
    ])
      expect(r.stdout).toContain(line);
    expect(r.stdout).not.toContain("×");

    const j = await cli(["check", "--json"], { url: gw.url });
    expect(j.code).toBe(0);
    const body = json<CheckJson>(j);
    expect(body.ok).toBe(true);
    expect(body.summary).toEqual({ passed: 15, warnings: 0, failed: 0 });
    expect(body.checks.map((c) => c.name)).toContain("signing key loaded and published");
  });

  it("fails for a dead cluster, with the probe's reason, and for the routes that send it traffic", async () => {
    const east = closer.add(await startUpstream("east"));
    const west = closer.add(await startUpstream("west"));
    const gw = closer.add(
      await startGateway(
        buildConfigWith(
          { east: { endpoint: east.url, trustDomain: "east.example", bundle: await bundle("east-1") }, west: { endpoint: west.url, trustDomain: "west.example", bundle: await bundle("west-1") } },
          {
            checkout: { hostnames: ["checkout.shop"], authorization: { unauthenticated: true }, rules: [{ name: "default", backendRefs: [{ cluster: "east", service: SVC, weight: 50 }, { cluster: "west", service: SVC, weight: 50 }] }] },
            search: { hostnames: ["search.shop"], authorization: { unauthenticated: true }, rules: [{ backendRefs: [{ cluster: "west", service: "search.shop", failover: ["east"] }] }] },
          },
        ),
      ),
    );
    await probed(gw, { east: true, west: true });
    await west.close();
    await probed(gw, { east: true, west: false });

    const r = await cli(["check"], { url: gw.url });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("√ east: endpoint healthy");
    expect(r.stdout).toMatch(/× west: endpoint healthy\n {4}not alive: ECONNREFUSED \(\d+ consecutive failures, last success \S+\) probing http:\/\/127\.0\.0\.1:\d+\/ready\n {4}hint: the probe is GET/);
    expect(r.stdout).toMatch(/× checkout: backends\n {4}rule default -> west \(weight 50\): cluster not alive \(ECONNREFUSED\)/);
    // A backend whose share fails over to a live cluster is a warning, not a failure.
    expect(r.stdout).toMatch(/‼ search: backends\n {4}rule rule-0 -> west \(weight 1\): cluster not alive \(ECONNREFUSED\); its share fails over to east/);
    expect(r.stdout).toMatch(/Status check results are × \(\d+ passed, 1 warning, 2 failed\)/);

    const j = json<CheckJson>(await cli(["check", "--json"], { url: gw.url }));
    expect(j.ok).toBe(false);
    expect(j.checks.find((c) => c.name === "west: endpoint healthy")).toMatchObject({ category: "clusters", status: "fail", reason: expect.stringContaining("ECONNREFUSED") });
  });

  it("fails for a cluster without a bundle whose identities a route admits, and for routes no caller can authenticate to", async () => {
    const east = closer.add(await startUpstream("east"));
    const west = closer.add(await startUpstream("west"));
    const gw = closer.add(
      await startGateway(
        buildConfigWith(
          { east: { endpoint: east.url, trustDomain: "east.example", bundle: await bundle("east-1") }, west: { endpoint: west.url, trustDomain: "west.example" } },
          {
            payments: { hostnames: ["payments.shop"], authorization: { identities: ["spiffe://west.example/ns/shop/sa/web"] }, rules: [{ backendRefs: [{ cluster: "east", service: "payments.shop" }] }] },
            orders: { hostnames: ["orders.shop"], rules: [{ backendRefs: [{ cluster: "east", service: "orders.shop" }] }] },
          },
        ),
      ),
    );
    await probed(gw, { east: true, west: true });

    const r = await cli(["check"], { url: gw.url });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("√ east: trust bundle (jwt-svid bundle: 1 key, loaded ");
    expect(r.stdout).toContain("× west: trust bundle\n    no bundle declared, but route payments admits identities of west.example: those callers can never authenticate");
    expect(r.stdout).toContain("× payments: callers can authenticate\n    cluster west (west.example) declares no trust bundle: those callers get 401");
    expect(r.stdout).toContain("√ orders: callers can authenticate");

    // With no bundle anywhere, a route that needs any authenticated caller cannot be called at all.
    expect((await admin(gw, "PUT", "/clusters/east", { endpoint: east.url, trustDomain: "east.example" })).status).toBe(200);
    const none = await cli(["check"], { url: gw.url });
    expect(none.code).toBe(1);
    expect(none.stdout).toContain("× orders: callers can authenticate\n    the route needs an authenticated caller but no cluster declares a trust bundle: every call gets 401");
    expect(none.stdout).toContain("‼ east: trust bundle\n    no bundle declared: workloads of east.example cannot call route orders");
  });

  it("fails when the store is unreachable, with readyz's reason", async () => {
    const east = closer.add(await startUpstream("east"));
    const proxy = closer.add(await startFaultProxy(inject("redisUrl")));
    const gw = closer.add(
      await startGateway(buildConfigWith({ east: { endpoint: east.url, trustDomain: "east.example" } }, { open: { authorization: { unauthenticated: true }, rules: [{ backendRefs: [{ cluster: "east", service: "x.shop" }] }] } }), {
        redisUrl: proxy.url.replace(/^http:/, "redis:"),
      }),
    );
    await proxy.refuse();
    proxy.disconnect(true);
    await until("readyz 503", async () => ((await fetch(`${gw.url}/_isthmus/readyz`)).status === 503 ? true : undefined), 15_000);

    const r = await cli(["check"], { url: gw.url });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("√ gateway answers");
    expect(r.stdout).toMatch(/× store reachable\n {4}readyz answered 503: redis store unreachable/);
    expect(r.stdout).toMatch(/× admin API answers with the token\n {4}503 Store unavailable/);
    // Checks that do not need the store still run.
    expect(r.stdout).toContain("√ signing key loaded and published");
  });

  it("warns when the gateway's clock is off by more than 30 s, and says by how much", async () => {
    const east = closer.add(await startUpstream("east"));
    const gw = closer.add(await startGateway(buildConfigWith({ east: { endpoint: east.url, trustDomain: "east.example", bundle: await bundle("east-1") } }, {})));
    await probed(gw, { east: true });
    // The real gateway behind a forwarder that reports a clock 90 s fast.
    const skewed: Server = createServer((req, res) => {
      const target = new URL(gw.url);
      const fwd = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode ?? 502, { ...up.headers, date: new Date(Date.now() + 90_000).toUTCString() });
        up.pipe(res);
      });
      req.pipe(fwd);
    });
    await new Promise<void>((resolve) => skewed.listen(0, "127.0.0.1", resolve));
    closer.add({ close: () => new Promise<void>((resolve) => skewed.close(() => resolve())) });

    const r = await cli(["check"], { url: `http://127.0.0.1:${(skewed.address() as AddressInfo).port}` });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/‼ clock skew\n {4}the gateway's clock is about (89|90|91)s ahead of this machine's \(over 30s\)/);
    expect(r.stdout).toMatch(/Status check results are √ \(\d+ passed, 1 warning, 0 failed\)/);
  });

  it("fails at once when the gateway cannot be reached", async () => {
    const r = await cli(["check"], { url: "http://127.0.0.1:1" });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("× gateway answers");
    expect(r.stdout).toContain("Status check results are × (0 passed, 0 warnings, 1 failed)");
  });
});
