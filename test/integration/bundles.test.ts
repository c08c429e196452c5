// Trust bundles fetched over HTTP, end to end: real HTTP servers stand for SPIFFE bundle
// endpoints (JWK sets with spiffe_refresh_hint / spiffe_sequence, JWT keys with use "jwt-svid")
// and for a Kubernetes issuer's JWKS, in front of the real Node gateway. Covers: verification on
// the last good bundle while the endpoint is down, hangs or serves garbage; picking up a new key
// on the refresh hint (and not before) versus at once on an unknown kid; the unknown-kid refetch
// budget under a flood; stale spiffe_sequence; key removal; and admin JWTs from an OIDC issuer.
// Where the order of events matters with real time, the tests assert invariants that cannot be
// flaky (a refetch never comes before the hint), and the exact before/after is proven with an
// injected clock on the same TrustStore/CallerVerifier the gateway uses.
import { EventEmitter } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Agent, request } from "undici";
import type { ClusterInput, RouteInput } from "../../src/config/schemas.ts";
import { parseCluster, parseRoute } from "../../src/config/validate.ts";
import { TrustStore } from "../../src/identity/trust-store.ts";
import { CallerVerifier } from "../../src/identity/verify-caller.ts";
import { compileCluster } from "../../src/routing/compile.ts";
import { startNodeGateway, type NodeGatewayOptions, type RunningGateway } from "../../src/runtime/node.ts";
import { StaticSecrets } from "../../src/secrets/secrets.ts";
import { silentLogger } from "../../src/util/log.ts";
import { startUpstream, type Upstream, type UpstreamEcho } from "../helpers/upstream.ts";

// ------------------------------------------------------------------ keys and tokens

interface TestKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

async function ecKey(kid: string): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
  return { kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid } };
}

/** A SPIFFE bundle document. */
function spiffeBundle(keys: TestKey[], opts: { hint?: number; sequence?: number; use?: string } = {}): Record<string, unknown> {
  return {
    keys: keys.map((k) => ({ ...k.publicJwk, use: opts.use ?? "jwt-svid" })),
    ...(opts.hint !== undefined ? { spiffe_refresh_hint: opts.hint } : {}),
    ...(opts.sequence !== undefined ? { spiffe_sequence: opts.sequence } : {}),
  };
}

let tokenSeq = 0;
/** A fresh token (unique jti: the gateway's verification cache never answers for it unless reused on purpose). */
function signToken(key: TestKey, claims: JWTPayload, opts: { kid?: string; ttlS?: number; alg?: string } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ jti: `b-${++tokenSeq}`, aud: "isthmus", iat: now, exp: now + (opts.ttlS ?? 300), ...claims })
    .setProtectedHeader({ alg: opts.alg ?? "ES256", kid: opts.kid ?? key.kid, typ: "JWT" })
    .sign(key.privateKey);
}
const svid = (key: TestKey, sub: string, opts: { kid?: string } = {}) => signToken(key, { sub }, opts);

/** Polls `probe` until it returns a value other than undefined/false; fails clearly after `timeoutMs`. */
async function until<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

// ------------------------------------------------------------------ a bundle endpoint

interface BundleServer {
  readonly url: string;
  /** Arrival time (Date.now()) of every request, oldest first. */
  readonly requestTimes: readonly number[];
  readonly requests: number;
  readonly events: EventEmitter<{ request: [] }>;
  /** Serve this document (object: JSON) or raw text with a status and content type. */
  serve(doc: unknown, opts?: { status?: number; contentType?: string; headers?: Record<string, string> }): void;
  /** Accept requests and never answer them. */
  hang(): void;
  /** Stop listening (connection refused), or listen again on the same port. */
  setRefusing(refusing: boolean): Promise<void>;
  close(): Promise<void>;
}

async function startBundleServer(initial: unknown): Promise<BundleServer> {
  let body = "";
  let status = 200;
  let contentType = "application/json";
  let headers: Record<string, string> = {};
  let hanging = false;
  const requestTimes: number[] = [];
  const held = new Set<ServerResponse>();
  const events = new EventEmitter<{ request: [] }>();
  events.setMaxListeners(0);

  const serve: BundleServer["serve"] = (doc, opts = {}) => {
    body = typeof doc === "string" ? doc : JSON.stringify(doc);
    status = opts.status ?? 200;
    contentType = opts.contentType ?? "application/json";
    headers = opts.headers ?? {};
    hanging = false;
  };
  serve(initial);

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    requestTimes.push(Date.now());
    req.resume();
    if (hanging) {
      held.add(res);
      res.on("close", () => held.delete(res));
      events.emit("request");
      return;
    }
    res.writeHead(status, { "content-type": contentType, "content-length": Buffer.byteLength(body), ...headers });
    res.end(body);
    events.emit("request");
  };

  let server: Server = createServer(handler);
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve((server.address() as AddressInfo).port));
    });
  const shut = () =>
    new Promise<void>((resolve) => {
      for (const r of held) r.destroy();
      server.close(() => resolve());
      server.closeAllConnections();
    });
  const port = await listen(0);
  let refusing = false;

  return {
    url: `http://127.0.0.1:${port}/bundle.json`,
    requestTimes,
    get requests() {
      return requestTimes.length;
    },
    events,
    serve,
    hang() {
      hanging = true;
    },
    async setRefusing(r) {
      if (r === refusing) return;
      refusing = r;
      if (r) await shut();
      else {
        server = createServer(handler);
        await listen(port);
      }
    },
    async close() {
      if (!refusing) await shut();
      refusing = true;
    },
  };
}

/**
 * The gateway's own TrustStore and CallerVerifier for one trust domain whose bundle is fetched
 * from `srv` (real HTTP), with an injected clock: the exact before/after of refresh hints and
 * cooldowns, with no dependence on timing. Resolves once the initial load is done.
 */
async function clockedTrust(srv: BundleServer, td: string, cooldownMs: number) {
  let clock = Date.now();
  const trust = new TrustStore({ fetch: (u, i) => fetch(u, i), now: () => clock, unknownKidCooldownMs: cooldownMs, log: silentLogger });
  const spec = parseCluster({ endpoint: "http://127.0.0.1:1", trustDomain: td, bundle: { url: srv.url } });
  trust.sync(new Map([[td, compileCluster(td, spec)]]));
  await trust.svid(td)?.source.current();
  return {
    trust,
    verifier: new CallerVerifier(trust, { audience: "isthmus", now: () => clock }),
    advance(ms: number) {
      clock += ms;
    },
  };
}

// ------------------------------------------------------------------ the gateway

const HOST = "checkout.shop";
const ROUTE: RouteInput = {
  hostnames: [HOST],
  rules: [{ backendRefs: [{ cluster: "east", service: "checkout.shop.svc.cluster.local", port: 8080 }] }],
};

let upstream: Upstream;
const client = new Agent({ connections: 64, keepAliveTimeout: 10_000 });
const toClose: Array<{ close(): Promise<void> }> = [];

async function startGw(callerClusters: Record<string, ClusterInput["bundle"]>, opts: Partial<NodeGatewayOptions> = {}): Promise<RunningGateway> {
  const all: Record<string, ClusterInput> = { east: { endpoint: upstream.url, trustDomain: "east.example" } };
  for (const [name, bundle] of Object.entries(callerClusters)) all[name] = { endpoint: upstream.url, trustDomain: `${name}.example`, bundle };
  const gw = await startNodeGateway({
    port: 0,
    hostname: "127.0.0.1",
    log: silentLogger,
    // No secret is read in this file; keep the AWS SDK out of it.
    secrets: new StaticSecrets({}),
    config: {
      clusters: Object.fromEntries(Object.entries(all).map(([n, c]) => [n, parseCluster(c, ["clusters", n])])),
      routes: { checkout: parseRoute(ROUTE, ["routes", "checkout"]) },
    },
    ...opts,
  });
  toClose.push(gw);
  return gw;
}

async function call(gw: RunningGateway, token: string): Promise<{ status: number; echo: UpstreamEcho | null }> {
  const res = await request(`${gw.url}/orders`, { dispatcher: client, headers: { host: HOST, authorization: `Bearer ${token}` } });
  const text = await res.body.text();
  return { status: res.statusCode, echo: res.statusCode === 200 ? (JSON.parse(text) as UpstreamEcho) : null };
}
const statusOf = async (gw: RunningGateway, token: string) => (await call(gw, token)).status;
const trustOf = (gw: RunningGateway, cluster: string) => {
  const s = gw.trust.status().find((e) => e.cluster === cluster);
  if (!s) throw new Error(`no trust entry for ${cluster}`);
  return s;
};

beforeAll(async () => {
  upstream = await startUpstream("east");
});

afterAll(async () => {
  await Promise.allSettled(toClose.map((c) => c.close()));
  await client.destroy();
  await upstream?.close();
});

// ------------------------------------------------------------------ the last good bundle

describe("bundle endpoint failures keep the last good bundle", () => {
  let gw: RunningGateway;
  let srv: BundleServer;
  let n1: TestKey;
  let outsider: TestKey;
  const me = "spiffe://north.example/ns/shop/sa/web";

  beforeAll(async () => {
    n1 = await ecKey("n1");
    outsider = await ecKey("outsider");
    srv = await startBundleServer(spiffeBundle([n1], { hint: 3600, sequence: 1 }));
    toClose.push(srv);
    // A cooldown of 0: every unknown kid refetches, so each failure mode is exercised on demand.
    // The hint of an hour rules out any refresh but those.
    gw = await startGw({ north: { url: srv.url } }, { unknownKidCooldownMs: 0 });
  });

  it("verifies tokens signed with the bundle's key", async () => {
    const { status, echo } = await call(gw, await svid(n1, me));
    expect(status).toBe(200);
    expect(echo?.headers.authorization).toMatch(/^Bearer /);
    expect(trustOf(gw, "north")).toMatchObject({ loaded: true, keys: 1, lastError: null, sequence: 1 });
  });

  const failures: Array<[string, (s: BundleServer) => Promise<void> | void, RegExp]> = [
    ["HTTP 500", (s) => s.serve({ error: "boom" }, { status: 500 }), /HTTP 500/],
    ["a redirect (not followed)", (s) => s.serve("", { status: 302, headers: { location: "http://127.0.0.1:1/evil.json" } }), /HTTP 302/],
    ["connection refused", (s) => s.setRefusing(true), /fetch failed|ECONNREFUSED/i],
    ["not JSON", (s) => s.serve("<html>maintenance</html>", { contentType: "text/html" }), /not JSON/],
    ["JSON without keys", (s) => s.serve({ spiffe_refresh_hint: 60, spiffe_sequence: 2 }), /no keys array/],
    ["keys without the jwt-svid use", (s) => s.serve(spiffeBundle([n1, outsider], { hint: 60, sequence: 3, use: "x509-svid" })), /jwt-svid/],
    ["keys without a kid", (s) => s.serve({ keys: [{ ...n1.publicJwk, kid: undefined, use: "jwt-svid" }], spiffe_sequence: 4 }), /jwt-svid/],
    ["private key material", (s) => s.serve({ keys: [{ ...outsider.publicJwk, d: "AAAA", use: "jwt-svid" }], spiffe_sequence: 5 }), /private/],
    ["a body over the size cap", (s) => s.serve({ keys: [], pad: "x".repeat(300 * 1024) }), /larger than/],
  ];

  it.each(failures)("endpoint serving %s: the unknown kid is refused, known keys keep verifying, status shows lastError", async (_what, breakIt, expected) => {
    await breakIt(srv);
    try {
      const before = srv.requests;
      // An unknown kid triggers a refetch, which fails (or is unusable) ...
      expect(await statusOf(gw, await svid(outsider, me))).toBe(401);
      const st = trustOf(gw, "north");
      expect(st.lastError).toMatch(expected);
      // ... (the fetch did happen, when the server is there to count it) ...
      if (!/refused/.test(_what)) expect(srv.requests).toBe(before + 1);
      // ... and the last good bundle keeps verifying fresh tokens.
      expect(st).toMatchObject({ loaded: true, keys: 1, sequence: 1 });
      expect(await statusOf(gw, await svid(n1, me))).toBe(200);
    } finally {
      await srv.setRefusing(false);
      srv.serve(spiffeBundle([n1], { hint: 3600, sequence: 1 }));
    }
  });

  it("endpoint hanging past the 2 s fetch timeout: known keys verify meanwhile, the refetch times out, lastError says so", async () => {
    srv.hang();
    try {
      const held = new Promise<void>((resolve) => srv.events.once("request", () => resolve()));
      const unknown = call(gw, await svid(outsider, me));
      await held; // the refetch is in flight and will get no answer
      // Verification with the held keys does not wait for it.
      expect(await statusOf(gw, await svid(n1, me))).toBe(200);
      expect((await unknown).status).toBe(401);
      expect(trustOf(gw, "north").lastError).toMatch(/timeout|abort/i);
      expect(await statusOf(gw, await svid(n1, me))).toBe(200);
    } finally {
      srv.serve(spiffeBundle([n1], { hint: 3600, sequence: 1 }));
    }
  });

  it("with a small cooldown, an unknown kid refetches at once: a newly published key is accepted on first use and errors clear", async () => {
    const n2 = await ecKey("n2");
    srv.serve(spiffeBundle([n1, n2], { hint: 3600, sequence: 6 }));
    const before = srv.requests;
    expect(await statusOf(gw, await svid(n2, me))).toBe(200);
    expect(srv.requests).toBe(before + 1);
    expect(trustOf(gw, "north")).toMatchObject({ loaded: true, keys: 2, lastError: null, sequence: 6 });
  });
});

// ------------------------------------------------------------------ refresh hint vs unknown-kid refetch

describe("a new key published at the bundle endpoint", () => {
  it("with a huge unknown-kid cooldown, is accepted only after the refresh hint (real gateway, real time)", async () => {
    const h1 = await ecKey("h1");
    const h2 = await ecKey("h2");
    const me = "spiffe://hinted.example/ns/a/sa/b";
    const srv = await startBundleServer(spiffeBundle([h1], { hint: 1, sequence: 1 }));
    toClose.push(srv);
    const gw = await startGw({ hinted: { url: srv.url } }, { unknownKidCooldownMs: 1e9 });
    expect(await statusOf(gw, await svid(h1, me))).toBe(200);
    const fetchesAtStart = srv.requests;
    expect(fetchesAtStart).toBe(1);

    srv.serve(spiffeBundle([h1, h2], { hint: 1, sequence: 2 }));
    const h2Token = await svid(h2, me);
    let attempts = 0;
    let refusals = 0;
    await until(
      "the h2 token to be accepted after the refresh hint",
      async () => {
        const fetchesBefore = srv.requests;
        const status = await statusOf(gw, h2Token);
        attempts++;
        if (status === 401) {
          refusals++;
          // A refusal never comes with a refetch: the cooldown forbids the unknown-kid one, and a
          // hint-driven one would have been awaited and would have let the token in.
          expect(srv.requests).toBe(fetchesBefore);
        }
        return status === 200;
      },
      10_000,
      50,
    );
    // Only the hint drove refetches: consecutive fetches are at least the hint (1 s) apart.
    const times = srv.requestTimes;
    expect(times.length).toBeGreaterThanOrEqual(2);
    for (let i = 1; i < times.length; i++) expect((times[i] as number) - (times[i - 1] as number)).toBeGreaterThanOrEqual(1000);
    expect(attempts).toBe(refusals + 1);
    expect(trustOf(gw, "hinted")).toMatchObject({ keys: 2, sequence: 2, lastError: null });
  });

  it("with a huge cooldown (injected clock): refused, and no fetch, until exactly the hint has passed; then accepted", async () => {
    const a1 = await ecKey("a1");
    const a2 = await ecKey("a2");
    const me = "spiffe://clocked.example/ns/a/sa/b";
    const srv = await startBundleServer(spiffeBundle([a1], { hint: 5 }));
    toClose.push(srv);
    const t = await clockedTrust(srv, "clocked.example", 1e9);
    expect(srv.requests).toBe(1);

    srv.serve(spiffeBundle([a1, a2], { hint: 5 }));
    const token = await svid(a2, me);
    expect((await t.verifier.verify(`Bearer ${token}`)).ok).toBe(false);
    t.advance(4_999);
    const r = await t.verifier.verify(`Bearer ${token}`);
    expect(r.ok).toBe(false);
    expect(r.ok ? "" : r.reason).toMatch(/kid "a2" is not in the trust bundle/);
    expect(srv.requests).toBe(1);
    t.advance(1);
    expect((await t.verifier.verify(`Bearer ${token}`)).ok).toBe(true);
    expect(srv.requests).toBe(2);
  });

  it("with a small cooldown (injected clock): an unknown kid refetches at once when the cooldown has passed, not before", async () => {
    const c1 = await ecKey("c1");
    const c2 = await ecKey("c2");
    const me = "spiffe://cooled.example/ns/a/sa/b";
    const srv = await startBundleServer(spiffeBundle([c1], { hint: 3600 }));
    toClose.push(srv);
    const t = await clockedTrust(srv, "cooled.example", 500);
    srv.serve(spiffeBundle([c1, c2], { hint: 3600 }));
    const token = await svid(c2, me);
    t.advance(499);
    expect((await t.verifier.verify(`Bearer ${token}`)).ok).toBe(false);
    expect(srv.requests).toBe(1);
    t.advance(1);
    expect((await t.verifier.verify(`Bearer ${token}`)).ok).toBe(true);
    expect(srv.requests).toBe(2);
  });
});

// ------------------------------------------------------------------ flood of made-up kids

describe("a flood of tokens with made-up kids", () => {
  it("through the gateway: 200 concurrent made-up kids cost at most one fetch per cooldown, all refused", async () => {
    const f1 = await ecKey("f1");
    const me = "spiffe://flood.example/ns/a/sa/b";
    const srv = await startBundleServer(spiffeBundle([f1], { hint: 3600 }));
    toClose.push(srv);
    const cooldownMs = 5_000;
    const gw = await startGw({ flood: { url: srv.url } }, { unknownKidCooldownMs: cooldownMs });
    expect(await statusOf(gw, await svid(f1, me))).toBe(200);
    const before = srv.requests;
    const started = Date.now();
    const tokens = await Promise.all(Array.from({ length: 200 }, (_, i) => svid(f1, me, { kid: `made-up-${i}` })));
    const statuses = await Promise.all(tokens.map((tk) => statusOf(gw, tk)));
    const elapsed = Date.now() - started;
    expect(statuses.every((s) => s === 401)).toBe(true);
    expect(srv.requests - before).toBeLessThanOrEqual(1 + Math.floor(elapsed / cooldownMs));
    expect(await statusOf(gw, await svid(f1, me))).toBe(200);
  });

  it("a bundle that never loaded: a stream of tokens for its trust domain still costs at most one fetch per cooldown", async () => {
    const d1 = await ecKey("d1");
    const me = "spiffe://dead.example/ns/a/sa/b";
    const srv = await startBundleServer("unavailable");
    srv.serve("unavailable", { status: 503 });
    toClose.push(srv);
    const t = await clockedTrust(srv, "dead.example", 1_000);
    expect(srv.requests).toBe(1);
    for (let i = 0; i < 50; i++) expect((await t.verifier.verify(`Bearer ${await svid(d1, me)}`)).ok).toBe(false);
    expect(srv.requests).toBeLessThanOrEqual(2);
  });

  it("with an injected clock: exactly one fetch per cooldown window, however many tokens", async () => {
    const g1 = await ecKey("g1");
    const me = "spiffe://flood2.example/ns/a/sa/b";
    const srv = await startBundleServer(spiffeBundle([g1], { hint: 3600 }));
    toClose.push(srv);
    const t = await clockedTrust(srv, "flood2.example", 1_000);
    const flood = async () => {
      const tokens = await Promise.all(Array.from({ length: 200 }, (_, i) => svid(g1, me, { kid: `bogus-${i}-${tokenSeq}` })));
      const results = await Promise.all(tokens.map((tk) => t.verifier.verify(`Bearer ${tk}`)));
      expect(results.every((r) => !r.ok)).toBe(true);
    };
    expect(srv.requests).toBe(1);
    await flood(); // within the cooldown of the initial load
    expect(srv.requests).toBe(1);
    t.advance(1_000);
    await flood();
    expect(srv.requests).toBe(2);
    await flood();
    expect(srv.requests).toBe(2);
    t.advance(999);
    await flood();
    expect(srv.requests).toBe(2);
    t.advance(1);
    await flood();
    expect(srv.requests).toBe(3);
    expect(t.verifier.signatureChecks).toBe(0); // an unknown kid costs no signature work
  });
});

// ------------------------------------------------------------------ sequence and key removal

describe("spiffe_sequence and key removal", () => {
  let gw: RunningGateway;
  let seqSrv: BundleServer;
  let revokeSrv: BundleServer;
  let s1: TestKey;
  let r1: TestKey;
  let r2: TestKey;

  beforeAll(async () => {
    [s1, r1, r2] = await Promise.all([ecKey("s1"), ecKey("r1"), ecKey("r2")]);
    seqSrv = await startBundleServer(spiffeBundle([s1], { hint: 3600, sequence: 5 }));
    revokeSrv = await startBundleServer(spiffeBundle([r1, r2], { hint: 3600, sequence: 1 }));
    toClose.push(seqSrv, revokeSrv);
    gw = await startGw({ seq: { url: seqSrv.url }, revoke: { url: revokeSrv.url } }, { unknownKidCooldownMs: 0 });
  });

  it("a bundle with a lower spiffe_sequence than the held one is ignored; a higher one is taken", async () => {
    const s2 = await ecKey("s2");
    const me = "spiffe://seq.example/ns/a/sa/b";
    expect(await statusOf(gw, await svid(s1, me))).toBe(200);
    expect(trustOf(gw, "seq")).toMatchObject({ sequence: 5, keys: 1 });

    // An older bundle (s1 gone, s2 in) is served: ignored.
    seqSrv.serve(spiffeBundle([s2], { hint: 3600, sequence: 3 }));
    const before = seqSrv.requests;
    expect(await statusOf(gw, await svid(s2, me))).toBe(401);
    expect(seqSrv.requests).toBe(before + 1);
    expect(trustOf(gw, "seq")).toMatchObject({ sequence: 5, keys: 1 });
    expect(trustOf(gw, "seq").lastError).toMatch(/sequence 3 .*5/);
    expect(await statusOf(gw, await svid(s1, me))).toBe(200);

    // A newer one is taken.
    seqSrv.serve(spiffeBundle([s2], { hint: 3600, sequence: 6 }));
    expect(await statusOf(gw, await svid(s2, me))).toBe(200);
    expect(trustOf(gw, "seq")).toMatchObject({ sequence: 6, keys: 1, lastError: null });
    expect(await statusOf(gw, await svid(s1, me))).toBe(401);
  });

  it("a key removed from the bundle stops verifying, also for a token verified before the removal", async () => {
    const me = "spiffe://revoke.example/ns/a/sa/b";
    const seen = await svid(r1, me);
    expect(await statusOf(gw, seen)).toBe(200);

    // r1 is withdrawn (compromised); a refetch happens (an unknown kid, cooldown 0).
    const r3 = await ecKey("r3");
    revokeSrv.serve(spiffeBundle([r2, r3], { hint: 3600, sequence: 2 }));
    expect(await statusOf(gw, await svid(r3, me))).toBe(200);
    expect(trustOf(gw, "revoke")).toMatchObject({ sequence: 2, keys: 2 });
    expect(await statusOf(gw, await svid(r1, me))).toBe(401);
    expect(await statusOf(gw, await svid(r2, me))).toBe(200);
    // Verified tokens are cached (up to 5 min): the cache must not outlive the key that verified them.
    expect(await statusOf(gw, seen)).toBe(401);
  });
});

// ------------------------------------------------------------------ Kubernetes issuer by URL

describe("Kubernetes service-account issuer JWKS by url", () => {
  it("verifies projected service-account tokens and maps them to the cluster's SPIFFE identity", async () => {
    const kk1 = await ecKey("kube-1");
    const kk2 = await ecKey("kube-2");
    const issuer = "https://oidc.kube.example/cluster-1";
    const srv = await startBundleServer({ keys: [{ ...kk1.publicJwk, use: "sig", alg: "ES256" }] });
    toClose.push(srv);
    const gw = await startGw({ kube: { kubernetes: { issuer, url: srv.url } } }, { unknownKidCooldownMs: 0 });
    const saToken = (key: TestKey, claims: JWTPayload = {}) =>
      signToken(key, { iss: issuer, sub: "system:serviceaccount:shop:web", "kubernetes.io": { namespace: "shop", serviceaccount: { name: "web", uid: "u-1" } }, ...claims });

    const { status, echo } = await call(gw, await saToken(kk1));
    expect(status).toBe(200);
    // The destination gets a gateway token for the mapped SPIFFE identity.
    const forwarded = String(echo?.headers.authorization).slice(7);
    const payload = JSON.parse(Buffer.from(forwarded.split(".")[1] as string, "base64url").toString("utf8")) as JWTPayload;
    expect(payload.sub).toBe("spiffe://kube.example/ns/shop/sa/web");
    expect(trustOf(gw, "kube")).toMatchObject({ kind: "kubernetes", issuer, loaded: true, keys: 1 });

    expect(await statusOf(gw, await saToken(kk1, { aud: "someone-else" }))).toBe(401);
    expect(await statusOf(gw, await saToken(kk1, { iss: "https://oidc.other.example" }))).toBe(401);
    expect(await statusOf(gw, await saToken(kk1, { sub: "alice" }))).toBe(401);
    expect(await statusOf(gw, await saToken(kk1, { "kubernetes.io": undefined }))).toBe(401);
    // A key the issuer has not published.
    expect(await statusOf(gw, await saToken(kk2))).toBe(401);

    // The issuer rotates: the new key is fetched on first use (cooldown 0); a down JWKS keeps the last good keys.
    srv.serve({ keys: [{ ...kk1.publicJwk, use: "sig" }, { ...kk2.publicJwk }] });
    expect(await statusOf(gw, await saToken(kk2))).toBe(200);
    const kk3 = await ecKey("kube-3");
    srv.serve("down", { status: 503 });
    expect(await statusOf(gw, await saToken(kk3))).toBe(401);
    expect(trustOf(gw, "kube").lastError).toMatch(/HTTP 503/);
    expect(await statusOf(gw, await saToken(kk2))).toBe(200);
    expect(await statusOf(gw, await saToken(kk1))).toBe(200);
  });
});

// ------------------------------------------------------------------ admin JWTs from an OIDC issuer

describe("admin API with OIDC admin JWTs", () => {
  const ISSUER = "https://idp.example.com/";
  const AUDIENCE = "isthmus-admin";
  const STATIC = "static-admin-token-0123456789abcdef";
  let gw: RunningGateway;
  let idpKey: TestKey;
  let stranger: TestKey;

  beforeAll(async () => {
    idpKey = await ecKey("idp-1");
    stranger = await ecKey("idp-1"); // same kid, different key
    const jwks = await startBundleServer({ keys: [{ ...idpKey.publicJwk, use: "sig", alg: "ES256" }] });
    toClose.push(jwks);
    gw = await startGw({}, { adminToken: STATIC, adminOidc: { issuer: ISSUER, jwksUrl: jwks.url, audience: AUDIENCE } });
  });

  const adminJwt = (claims: JWTPayload, key: TestKey = idpKey, ttlS = 300) => signToken(key, { iss: ISSUER, aud: AUDIENCE, sub: "ops@example.com", ...claims }, { ttlS });

  async function admin(method: "GET" | "PUT", path: string, token: string, body?: unknown): Promise<number> {
    const res = await request(`${gw.url}/_isthmus/v1${path}`, {
      dispatcher: client,
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    await res.body.dump();
    return res.statusCode;
  }
  const routeBody = (host: string) => ({ hostnames: [host], authorization: { unauthenticated: true }, rules: [{ backendRefs: [{ cluster: "east", service: "svc.ns.svc.cluster.local", port: 8080 }] }] });

  it("isthmus:read can GET but not PUT (403)", async () => {
    const t = await adminJwt({ scope: "openid isthmus:read" });
    expect(await admin("GET", "/routes", t)).toBe(200);
    expect(await admin("GET", "/clusters", t)).toBe(200);
    expect(await admin("PUT", "/routes/from-reader", t, routeBody("reader.test"))).toBe(403);
  });

  it("isthmus:write can PUT (and read)", async () => {
    const t = await adminJwt({ scope: "isthmus:write" });
    expect([200, 201]).toContain(await admin("PUT", "/routes/from-writer", t, routeBody("writer.test")));
    expect(await admin("GET", "/routes/from-writer", t)).toBe(200);
    // The scp array form too.
    const scp = await adminJwt({ scp: ["isthmus:write"] });
    expect([200, 201]).toContain(await admin("PUT", "/routes/from-scp", scp, routeBody("scp.test")));
  });

  it("a verified token without isthmus scopes gets 403, not 401", async () => {
    expect(await admin("GET", "/routes", await adminJwt({ scope: "openid profile" }))).toBe(403);
  });

  it("wrong issuer, wrong audience, expired, foreign key or HMAC: 401", async () => {
    expect(await admin("GET", "/routes", await adminJwt({ scope: "isthmus:read", iss: "https://evil.example.com/" }))).toBe(401);
    expect(await admin("GET", "/routes", await adminJwt({ scope: "isthmus:read", aud: "isthmus" }))).toBe(401);
    // Expired two minutes ago: beyond the 30 s leeway.
    const now = Math.floor(Date.now() / 1000);
    expect(await admin("GET", "/routes", await adminJwt({ scope: "isthmus:read", iat: now - 600, exp: now - 120 }))).toBe(401);
    expect(await admin("GET", "/routes", await adminJwt({ scope: "isthmus:read" }, stranger))).toBe(401);
    const hmac = await new SignJWT({ scope: "isthmus:write", iss: ISSUER, aud: AUDIENCE, sub: "x", exp: now + 300 })
      .setProtectedHeader({ alg: "HS256", kid: "idp-1" })
      .sign(new TextEncoder().encode("0123456789abcdef0123456789abcdef"));
    expect(await admin("GET", "/routes", hmac)).toBe(401);
  });

  it("the static admin token keeps working alongside", async () => {
    expect(await admin("GET", "/routes", STATIC)).toBe(200);
    expect([200, 201]).toContain(await admin("PUT", "/routes/from-static", STATIC, routeBody("static.test")));
    expect(await admin("GET", "/routes", "not-the-token")).toBe(401);
  });
});
