// Workload identity inside workerd: a caller's JWT-SVID (a real ES256 key, inline bundle) is
// verified; the upstream gets a token signed with the gateway's key from ISTHMUS_SIGNING_KEY
// instead; a bad token gets 401 and never reaches an upstream.
import { env } from "cloudflare:workers";
import { createLocalJWKSet, jwtVerify } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { createWorker, type WorkerEnv } from "../../src/runtime/worker.ts";
import { b64url, bundleOf, jwkEntry, jwtSvid, makeKey, type TestKey } from "../helpers/identity.ts";
import { admin, clusterDoc, dataRequest, isolatedEnv, seen, send, upstreams } from "./helpers.ts";

const CALLER = "spiffe://east.example/ns/shop/sa/web";
const handler = createWorker();
let wenv: WorkerEnv;
let callerKey: TestKey;
let strangerKey: TestKey;

beforeAll(async () => {
  wenv = isolatedEnv("identity");
  callerKey = await makeKey("ES256", "east-1");
  // Same kid, different key: a forged token.
  strangerKey = await makeKey("ES256", "east-1");
  const up = upstreams();
  expect((await admin(handler, wenv, "PUT", "/clusters/east", clusterDoc(up.east, "east.example", { bundle: { jwks: bundleOf(jwkEntry(callerKey)) } }))).status).toBe(201);
  expect((await admin(handler, wenv, "PUT", "/clusters/west", clusterDoc(up.west, "west.example"))).status).toBe(201);
  const route = {
    hostnames: ["orders.shop"],
    authorization: { identities: [CALLER] },
    rules: [{ name: "default", backendRefs: [{ cluster: "west", service: "orders.shop.svc.cluster.local", port: 8080, weight: 100 }] }],
  };
  expect((await admin(handler, wenv, "PUT", "/routes/orders", route)).status).toBe(201);
});

function call(caseId: string, token: string | null): Promise<{ res: Response }> {
  return send(handler, wenv, dataRequest("orders.shop", "/orders/42", { headers: { "x-test-case": caseId, ...(token ? { authorization: `Bearer ${token}` } : {}) } }));
}

describe("workload identity in the Worker", () => {
  it("admits a valid JWT-SVID and forwards a gateway-signed token for the destination", async () => {
    const id = crypto.randomUUID();
    const token = await jwtSvid(callerKey, CALLER, { aud: "isthmus" });
    const { res } = await call(id, token);
    expect(res.status, await res.clone().text()).toBe(200);
    expect(((await res.json()) as { cluster: string }).cluster).toBe("west");

    const [rec] = await seen(id);
    expect(rec).toBeDefined();
    const forwarded = String(rec?.headers.authorization).replace(/^Bearer /, "");
    expect(forwarded).not.toBe(token);
    // fetch cannot set Host: the service authority travels in x-isthmus-authority.
    expect(rec?.headers["x-isthmus-authority"]).toBe("orders.shop.svc.cluster.local:8080");
    expect(rec?.headers["x-forwarded-proto"]).toBe("https");
    expect(rec?.headers["x-forwarded-host"]).toBe("orders.shop");

    // Verified with the gateway's published keys; signed by the key given as ISTHMUS_SIGNING_KEY.
    const jwksRes = (await send(handler, wenv, new Request("https://gateway.test/.well-known/jwks.json"))).res;
    const jwks = (await jwksRes.json()) as { keys: Array<{ kid?: string }> };
    expect(jwks.keys.map((k) => k.kid)).toContain((JSON.parse(env.ISTHMUS_SIGNING_KEY as string) as { kid: string }).kid);
    const { payload, protectedHeader } = await jwtVerify(forwarded, createLocalJWKSet(jwks as Parameters<typeof createLocalJWKSet>[0]), { issuer: "isthmus", audience: "west.example" });
    expect(payload.sub).toBe(CALLER);
    expect(protectedHeader.kid).toBe("workers-gateway-1");
  });

  it("answers 401 to a forged, an expired or a missing token, and calls no upstream", async () => {
    const forged = await jwtSvid(strangerKey, CALLER, { aud: "isthmus" });
    const expired = await jwtSvid(callerKey, CALLER, { aud: "isthmus", exp: Math.floor(Date.now() / 1000) - 3600 });
    const wrongAudience = await jwtSvid(callerKey, CALLER, { aud: "someone-else" });
    for (const token of [forged, expired, wrongAudience, null]) {
      const id = crypto.randomUUID();
      const { res } = await call(id, token);
      expect(res.status).toBe(401);
      expect(res.headers.get("content-type")).toBe("application/problem+json");
      expect(await seen(id)).toEqual([]);
    }
  });

  it("reads a bundle from a Worker secret named by bundle.secretId, and never an ISTHMUS_* binding", async () => {
    const up = upstreams();
    const southKey = await makeKey("ES256", "south-1");
    // Secrets are bindings: this isolate's env carries the bundle as SOUTH_BUNDLE.
    const senv: WorkerEnv = { ...wenv, SOUTH_BUNDLE: JSON.stringify(bundleOf(jwkEntry(southKey))) };
    const h = createWorker();
    expect((await admin(h, senv, "PUT", "/clusters/south", clusterDoc(up.east, "south.example", { bundle: { secretId: "SOUTH_BUNDLE" } }))).status).toBe(201);
    expect((await admin(h, senv, "PUT", "/clusters/sneaky", clusterDoc(up.east, "sneaky.example", { bundle: { secretId: "ISTHMUS_ADMIN_TOKEN" } }))).status).toBe(201);
    const route = { hostnames: ["south.shop"], authorization: { identities: ["spiffe://south.example/*", "spiffe://sneaky.example/*"] }, rules: [{ name: "default", backendRefs: [{ cluster: "west", service: "s.svc.cluster.local", port: 8080, weight: 100 }] }] };
    expect((await admin(h, senv, "PUT", "/routes/south", route)).status).toBe(201);

    const ok = await send(h, senv, dataRequest("south.shop", "/", { headers: { authorization: `Bearer ${await jwtSvid(southKey, "spiffe://south.example/ns/a/sa/b")}` } }));
    expect(ok.res.status, await ok.res.clone().text()).toBe(200);
    const sneaky = await send(h, senv, dataRequest("south.shop", "/", { headers: { authorization: `Bearer ${await jwtSvid(southKey, "spiffe://sneaky.example/ns/a/sa/b")}` } }));
    expect(sneaky.res.status).toBe(401);
    const trust = (await h.gateway(senv)).trust.status().find((t) => t.cluster === "sneaky");
    expect(trust).toMatchObject({ loaded: false, lastError: 'secret "ISTHMUS_ADMIN_TOKEN" not found' });
  });

  it("loads a bundle from its endpoint in the background of the request that registered it", async () => {
    const up = upstreams();
    const northKey = await makeKey("ES256", "north-1");
    const bundleUrl = `${env.TEST_CONTROL_URL}/bundle/${b64url(JSON.stringify({ ...bundleOf(jwkEntry(northKey)), spiffe_refresh_hint: 300 }))}`;
    // A fresh isolate: the bundle fetch starts in the admin request and outlives its response.
    const h = createWorker();
    expect((await admin(h, wenv, "PUT", "/clusters/north", clusterDoc(up.east, "north.example", { bundle: { url: bundleUrl } }))).status).toBe(201);
    const route = { hostnames: ["north.shop"], authorization: { identities: ["spiffe://north.example/*"] }, rules: [{ name: "default", backendRefs: [{ cluster: "west", service: "n.svc.cluster.local", port: 8080, weight: 100 }] }] };
    expect((await admin(h, wenv, "PUT", "/routes/north", route)).status).toBe(201);
    const ok = await send(h, wenv, dataRequest("north.shop", "/", { headers: { authorization: `Bearer ${await jwtSvid(northKey, "spiffe://north.example/ns/a/sa/b")}` } }));
    expect(ok.res.status, await ok.res.clone().text()).toBe(200);
    const status = (await h.gateway(wenv)).trust.status().find((t) => t.cluster === "north");
    expect(status).toMatchObject({ loaded: true, keys: 1, lastError: null, fetches: 1 });
  });

  it("answers 403 to a valid identity the route does not admit", async () => {
    const id = crypto.randomUUID();
    const other = await jwtSvid(callerKey, "spiffe://east.example/ns/shop/sa/batch", { aud: "isthmus" });
    const { res } = await call(id, other);
    expect(res.status).toBe(403);
    expect(await seen(id)).toEqual([]);
  });
});
