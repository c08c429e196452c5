// Secrets Manager end to end: the real AWS SDK client (createAwsSecrets) against a local fake of
// the JSON 1.1 protocol (test/helpers/secrets-manager-fake.ts), then the gateway reading its
// signing key, its admin token and a cluster's trust bundle from it. Covers rotation of the
// signing key while traffic flows (every forwarded token verifies against /.well-known/jwks.json,
// before and after), rotation of the admin token, and clear start-up errors for missing or
// unusable secrets. State changes are awaited by polling with a deadline, never by sleeping.
import { createLocalJWKSet, decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify, SignJWT, type JWK } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Agent, request } from "undici";
import type { ClusterInput, RouteInput } from "../../src/config/schemas.ts";
import { parseCluster, parseRoute } from "../../src/config/validate.ts";
import { startNodeGateway, type NodeGatewayOptions, type RunningGateway } from "../../src/runtime/node.ts";
import { createAwsSecrets } from "../../src/secrets/aws.ts";
import { CachedSecrets, SecretNotFoundError, type SecretsProvider } from "../../src/secrets/secrets.ts";
import { silentLogger } from "../../src/util/log.ts";
import { startSecretsManagerFake, useFakeAwsCredentials, type SecretsManagerFake } from "../helpers/secrets-manager-fake.ts";
import { startUpstream, type Upstream, type UpstreamEcho } from "../helpers/upstream.ts";

// ------------------------------------------------------------------ keys, tokens, polling

interface TestKey {
  kid: string;
  privateKey: CryptoKey;
  /** Private JWK (what a signing-key secret holds), with kid. */
  privateJwk: JWK;
  /** Public JWK with kid. */
  publicJwk: JWK;
}

async function ecKey(kid: string): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
  return { kid, privateKey, privateJwk: { ...(await exportJWK(privateKey)), kid }, publicJwk: { ...(await exportJWK(publicKey)), kid } };
}

/** A SPIFFE bundle (JWK set) holding the keys as JWT-SVID keys. */
const svidBundle = (keys: TestKey[], extra: Record<string, unknown> = {}) => ({ keys: keys.map((k) => ({ ...k.publicJwk, kty: String(k.publicJwk.kty), use: "jwt-svid" })), ...extra });

let tokenSeq = 0;
/** A fresh JWT-SVID (a unique jti, so the gateway's verification cache never answers for it). */
function svid(key: TestKey, sub: string, opts: { aud?: string; ttlS?: number } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ jti: `t-${++tokenSeq}` })
    .setProtectedHeader({ alg: "ES256", kid: key.kid, typ: "JWT" })
    .setSubject(sub)
    .setAudience(opts.aud ?? "isthmus")
    .setIssuedAt(now)
    .setExpirationTime(now + (opts.ttlS ?? 300))
    .sign(key.privateKey);
}

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

interface Jwks {
  keys: JWK[];
}

async function jwksOf(gw: RunningGateway): Promise<Jwks> {
  const res = await fetch(`${gw.url}/.well-known/jwks.json`);
  expect(res.status).toBe(200);
  return (await res.json()) as Jwks;
}
const kidsOf = (j: Jwks) => j.keys.map((k) => k.kid);
/** Polls /.well-known/jwks.json until it publishes all of `kids`; resolves with that JWKS. */
const jwksWith = (gw: RunningGateway, ...kids: string[]) =>
  until(`${kids.join(", ")} published at /.well-known/jwks.json`, async () => {
    const j = await jwksOf(gw);
    return kids.every((k) => kidsOf(j).includes(k)) ? j : undefined;
  });

// ------------------------------------------------------------------ shared fixtures

const HOST = "checkout.shop";
const ROUTE: RouteInput = {
  hostnames: [HOST],
  // No `authorization`: an authenticated caller is required.
  rules: [{ backendRefs: [{ cluster: "east", service: "checkout.shop.svc.cluster.local", port: 8080 }] }],
};

let fake: SecretsManagerFake;
let restoreEnv: () => void;
let upstream: Upstream;
let callerKey: TestKey;
const client = new Agent({ connections: 32, keepAliveTimeout: 10_000 });

/** The SDK provider the gateway uses: the real client pointed at the fake. */
const awsSecrets = (): SecretsProvider => createAwsSecrets({ endpoint: fake.endpoint, region: "us-east-1", timeoutMs: 2_000 });

function clusters(extra: Record<string, ClusterInput> = {}): NodeGatewayOptions["config"] {
  const all: Record<string, ClusterInput> = {
    // The callers' cluster: an inline bundle with the caller key. Also the destination.
    east: { endpoint: upstream.url, trustDomain: "east.example", bundle: { jwks: svidBundle([callerKey]) } },
    ...extra,
  };
  return {
    clusters: Object.fromEntries(Object.entries(all).map(([n, c]) => [n, parseCluster(c, ["clusters", n])])),
    routes: { checkout: parseRoute(ROUTE, ["routes", "checkout"]) },
  };
}

const running: RunningGateway[] = [];
async function startGw(opts: Partial<NodeGatewayOptions> = {}, extraClusters: Record<string, ClusterInput> = {}): Promise<RunningGateway> {
  const gw = await startNodeGateway({
    port: 0,
    hostname: "127.0.0.1",
    log: silentLogger,
    secrets: awsSecrets(),
    secretsRefreshMs: 200,
    config: clusters(extraClusters),
    ...opts,
  });
  running.push(gw);
  return gw;
}

async function call(gw: RunningGateway, token: string | null): Promise<{ status: number; echo: UpstreamEcho | null }> {
  const res = await request(`${gw.url}/orders`, { dispatcher: client, headers: { host: HOST, ...(token ? { authorization: `Bearer ${token}` } : {}) } });
  const text = await res.body.text();
  return { status: res.statusCode, echo: res.statusCode === 200 ? (JSON.parse(text) as UpstreamEcho) : null };
}

async function adminStatus(gw: RunningGateway, token: string): Promise<number> {
  const res = await request(`${gw.url}/_isthmus/v1/routes`, { dispatcher: client, headers: { authorization: `Bearer ${token}` } });
  await res.body.dump();
  return res.statusCode;
}

const forwardedToken = (echo: UpstreamEcho | null): string => {
  const auth = echo?.headers.authorization;
  expect(auth).toMatch(/^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
  return String(auth).slice("Bearer ".length);
};

beforeAll(async () => {
  restoreEnv = useFakeAwsCredentials();
  fake = await startSecretsManagerFake();
  upstream = await startUpstream("east");
  callerKey = await ecKey("caller-1");
});

afterAll(async () => {
  await Promise.allSettled(running.map((g) => g.close()));
  await client.destroy();
  await upstream?.close();
  await fake?.close();
  restoreEnv?.();
  // Every call the SDK made was signed (SigV4): the fake refused none.
  expect(fake.unsigned).toBe(0);
});

// ------------------------------------------------------------------ the provider and its cache

describe("createAwsSecrets (real SDK client) against the fake", () => {
  it("reads AWSCURRENT and AWSPREVIOUS, and answers null for a missing secret or stage", async () => {
    const sm = awsSecrets();
    fake.put("app/db", "v1");
    expect(await sm.get("app/db", "AWSCURRENT")).toBe("v1");
    // No AWSPREVIOUS before the first rotation.
    expect(await sm.get("app/db", "AWSPREVIOUS")).toBeNull();
    fake.put("app/db", "v2");
    expect(await sm.get("app/db", "AWSCURRENT")).toBe("v2");
    expect(await sm.get("app/db", "AWSPREVIOUS")).toBe("v1");
    expect(await sm.get("app/absent", "AWSCURRENT")).toBeNull();

    // Real protocol calls: signed, JSON 1.1, the operation and the stage in the body.
    const seen = fake.calls.filter((c) => c.secretId === "app/db");
    expect(seen.map((c) => c.versionStage)).toEqual(["AWSCURRENT", "AWSPREVIOUS", "AWSCURRENT", "AWSPREVIOUS"]);
    for (const c of seen) {
      expect(c.target).toBe("secretsmanager.GetSecretValue");
      expect(String(c.headers.authorization)).toMatch(/^AWS4-HMAC-SHA256 Credential=test\/\d{8}\/us-east-1\/secretsmanager\/aws4_request/);
      expect(String(c.headers["content-type"])).toMatch(/^application\/x-amz-json-1\.1/);
    }
    expect(fake.calls.find((c) => c.secretId === "app/absent")?.errorType).toBe("ResourceNotFoundException");
  });

  it("throws on a service error (after the SDK's own retry), and rides out a single 500", async () => {
    const sm = awsSecrets();
    fake.put("app/flaky", "ok");
    fake.setDown(true);
    try {
      await expect(sm.get("app/flaky", "AWSCURRENT")).rejects.toThrow(/down/);
    } finally {
      fake.setDown(false);
    }
    // createAwsSecrets sets maxAttempts 2: one get was two calls.
    expect(fake.calls.filter((c) => c.secretId === "app/flaky" && c.status === 500)).toHaveLength(2);

    fake.failNext(1);
    expect(await sm.get("app/flaky", "AWSCURRENT")).toBe("ok");
  });

  it("takes its endpoint from AWS_ENDPOINT_URL_SECRETS_MANAGER when none is given (how `npm start` is pointed elsewhere)", async () => {
    fake.put("app/env-endpoint", "from-env");
    process.env.AWS_ENDPOINT_URL_SECRETS_MANAGER = fake.endpoint;
    try {
      expect(await createAwsSecrets({ region: "us-east-1" }).get("app/env-endpoint", "AWSCURRENT")).toBe("from-env");
    } finally {
      delete process.env.AWS_ENDPOINT_URL_SECRETS_MANAGER;
    }
  });

  it("every call is bounded by timeoutMs: a service that never answers gives an error, not a hang", async () => {
    const sm = createAwsSecrets({ endpoint: fake.endpoint, region: "us-east-1", timeoutMs: 300 });
    fake.put("app/slow", "late");
    fake.setHanging(true);
    try {
      await expect(sm.get("app/slow", "AWSCURRENT")).rejects.toThrow(/abort|timeout/i);
    } finally {
      fake.setHanging(false);
    }
    expect(await sm.get("app/slow", "AWSCURRENT")).toBe("late");
  });

  it("CachedSecrets: serves from cache until refreshMs, serves the stale value while the service is down, then picks up the new value", async () => {
    let t = 1_000_000;
    const cache = new CachedSecrets(awsSecrets(), { refreshMs: 1_000, now: () => t });
    fake.put("cache/x", "one");
    expect(await cache.get("cache/x")).toBe("one");
    const afterFirst = fake.callsFor("cache/x");
    expect(afterFirst).toBe(1);

    // Fresh: no call at all.
    t += 999;
    expect(await cache.get("cache/x")).toBe("one");
    expect(fake.callsFor("cache/x")).toBe(afterFirst);

    // Stale and the service down: the read answers at once with the last value; the refresh fails in the background.
    fake.setDown(true);
    fake.put("cache/x", "two");
    t += 2;
    expect(await cache.get("cache/x")).toBe("one");
    await fake.waitForCalls((calls) => calls.filter((c) => c.secretId === "cache/x" && c.status === 500).length >= 2);
    expect(await cache.get("cache/x")).toBe("one");
    expect(await cache.require("cache/x")).toBe("one");

    // Back up: a stale read starts a refresh and a later read sees the new value.
    fake.setDown(false);
    await until("the cache to serve the rotated value", async () => (await cache.get("cache/x")) === "two");
    const settled = fake.callsFor("cache/x");
    expect(await cache.get("cache/x")).toBe("two");
    expect(fake.callsFor("cache/x")).toBe(settled); // fresh again: no call
  });

  it("CachedSecrets: a first read that fails throws (and the next read tries again); require() names a missing secret", async () => {
    const cache = new CachedSecrets(awsSecrets(), { refreshMs: 60_000 });
    fake.put("cache/y", "y");
    fake.setDown(true);
    try {
      await expect(cache.get("cache/y")).rejects.toThrow();
    } finally {
      fake.setDown(false);
    }
    expect(await cache.get("cache/y")).toBe("y");

    const err = await cache.require("cache/none").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SecretNotFoundError);
    expect((err as Error).message).toContain("cache/none");
  });
});

// ------------------------------------------------------------------ the gateway's signing key

describe("gateway signing key from Secrets Manager", () => {
  it("publishes the secret's key at /.well-known/jwks.json and signs forwarded tokens with it", async () => {
    const k1 = await ecKey("k1");
    fake.put("gw/signing-basic", JSON.stringify(k1.privateJwk));
    const gw = await startGw({ signingKeySecretId: "gw/signing-basic" });
    expect(gw.signingKeys.get().origin).toBe("secret");

    const jwks = await jwksOf(gw);
    expect(kidsOf(jwks)).toEqual(["k1"]);
    // Public parts only.
    for (const k of jwks.keys) for (const m of ["d", "p", "q", "dp", "dq", "qi", "k"]) expect(k).not.toHaveProperty(m);
    expect(jwks.keys[0]).toMatchObject({ kty: "EC", crv: "P-256", x: k1.publicJwk.x, y: k1.publicJwk.y });

    const caller = "spiffe://east.example/ns/shop/sa/web";
    const { status, echo } = await call(gw, await svid(callerKey, caller));
    expect(status).toBe(200);
    const token = forwardedToken(echo);
    expect(decodeProtectedHeader(token).kid).toBe("k1");
    const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), { issuer: "isthmus", audience: "east.example" });
    expect(payload.sub).toBe(caller);
  });

  it("a missing signing key secret fails start-up with an error naming ISTHMUS_SIGNING_KEY_SECRET_ID and the secret id", async () => {
    const err = await startGw({ signingKeySecretId: "gw/does-not-exist" }).then(
      (gw) => gw,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain("ISTHMUS_SIGNING_KEY_SECRET_ID");
    expect((err as Error).message).toContain("gw/does-not-exist");
    expect((err as Error).message).toMatch(/not found/);
  });

  it("Secrets Manager failing at start fails start-up with a clear error (no silent ephemeral key)", async () => {
    const k = await ecKey("kx");
    fake.put("gw/signing-unreachable", JSON.stringify(k.privateJwk));
    fake.setDown(true, (c) => c.secretId === "gw/signing-unreachable");
    try {
      const err = await startGw({ signingKeySecretId: "gw/signing-unreachable" }).then(
        (gw) => gw,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toContain("ISTHMUS_SIGNING_KEY_SECRET_ID");
      expect((err as Error).message).toContain("gw/signing-unreachable");
    } finally {
      fake.setDown(false);
    }
  });

  const notPrivateJwks: Array<[string, () => Promise<string>]> = [
    ["not JSON", async () => "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----"],
    ["a public JWK (no d)", async () => JSON.stringify((await ecKey("pub")).publicJwk)],
    ["a JSON array", async () => JSON.stringify([(await ecKey("arr")).privateJwk])],
    ["a symmetric (oct) key", async () => JSON.stringify({ kty: "oct", k: "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA", kid: "hmac" })],
    ["an HS256 key carrying d", async () => JSON.stringify({ ...(await ecKey("hs")).privateJwk, alg: "HS256" })],
    ["an EC private JWK with broken coordinates", async () => JSON.stringify({ ...(await ecKey("broken")).privateJwk, x: "AAAA", y: "AAAA" })],
  ];
  it.each(notPrivateJwks)("a signing key secret holding %s fails start-up with an error naming the secret", async (what, value) => {
    const id = `gw/not-a-private-jwk-${notPrivateJwks.findIndex(([w]) => w === what)}`;
    fake.put(id, await value());
    const err = await startGw({ signingKeySecretId: id }).then(
      (gw) => gw,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain(id);
  });

  it("an unusable signing key secret names the setting too, like a missing one does", async () => {
    const id = "gw/public-jwk-only";
    fake.put(id, JSON.stringify((await ecKey("pub-only")).publicJwk));
    const err = await startGw({ signingKeySecretId: id }).then(
      (gw) => gw,
      (e: unknown) => e,
    );
    expect((err as Error).message).toContain(id);
    expect((err as Error).message).toMatch(/private/);
    expect((err as Error).message).toContain("ISTHMUS_SIGNING_KEY_SECRET_ID");
  });

  it("a rotation to an unusable value keeps signing with the current key", async () => {
    const k1 = await ecKey("u1");
    const id = "gw/signing-bad-rotation";
    fake.put(id, JSON.stringify(k1.privateJwk));
    const gw = await startGw({ signingKeySecretId: id, secretsRefreshMs: 200 });
    fake.put(id, JSON.stringify((await ecKey("u2-public")).publicJwk));
    // Let the gateway read the rotated (unusable) value: AWSCURRENT read twice after the put.
    const n = fake.callsFor(id, "AWSCURRENT");
    await fake.waitForCalls(() => fake.callsFor(id, "AWSCURRENT") >= n + 2);
    expect(kidsOf(await jwksOf(gw))[0]).toBe("u1");
    const { status, echo } = await call(gw, await svid(callerKey, "spiffe://east.example/ns/shop/sa/web"));
    expect(status).toBe(200);
    expect(decodeProtectedHeader(forwardedToken(echo)).kid).toBe("u1");
  });

  it("never publishes secret key material: a symmetric key left in AWSPREVIOUS stays out of jwks.json", async () => {
    const id = "gw/signing-after-hmac";
    // Someone first stored an HMAC key (the gateway refuses it as a signing key), then the right EC key.
    fake.put(id, JSON.stringify({ kty: "oct", k: "VGhpcy1pcy1hLXNoYXJlZC1ITUFDLXNlY3JldC0xMjM0NTY", alg: "HS256", kid: "hmac-1" }));
    const k1 = await ecKey("after-hmac");
    fake.put(id, JSON.stringify(k1.privateJwk));
    const gw = await startGw({ signingKeySecretId: id });
    const jwks = await jwksOf(gw);
    expect(kidsOf(jwks)).toContain("after-hmac");
    for (const k of jwks.keys) {
      expect(k).not.toHaveProperty("k");
      expect(k.kty).not.toBe("oct");
    }
  });

  it("rotation in the middle of traffic: no request fails, jwks.json publishes k2 and k1, every forwarded token verifies, tokens after it carry k2", async () => {
    const k1 = await ecKey("k1");
    const k2 = await ecKey("k2");
    const k3 = await ecKey("k3");
    const id = "gw/signing-rotating";
    fake.put(id, JSON.stringify(k1.privateJwk));
    const gw = await startGw({ signingKeySecretId: id, secretsRefreshMs: 200 });
    expect(kidsOf(await jwksOf(gw))).toEqual(["k1"]);

    interface Result {
      status: number;
      caller: string;
      token: string | null;
      /** The request started after the test saw k2 published. */
      startedAfterRotation: boolean;
      /** The request finished before the secret was rotated. */
      finishedBeforePut: boolean;
    }
    const results: Result[] = [];
    let stop = false;
    let rotationSeen = false;
    let putDone = false;
    let seq = 0;
    const worker = async () => {
      while (!stop) {
        const caller = `spiffe://east.example/ns/shop/sa/worker-${++seq}`;
        const startedAfterRotation = rotationSeen;
        const { status, echo } = await call(gw, await svid(callerKey, caller));
        const token = status === 200 && typeof echo?.headers.authorization === "string" ? echo.headers.authorization.slice(7) : null;
        results.push({ status, caller, token, startedAfterRotation, finishedBeforePut: !putDone });
      }
    };
    const workers = Array.from({ length: 6 }, () => worker());
    try {
      await until("traffic before the rotation", () => results.length >= 30);
      fake.put(id, JSON.stringify(k2.privateJwk));
      putDone = true;
      await jwksWith(gw, "k2");
      rotationSeen = true;
      // Current and previous. (AWSCURRENT and AWSPREVIOUS are separate reads that normally land in
      // the same refresh; see the AWSPREVIOUS test below for what happens when they do not.)
      const both = await jwksWith(gw, "k2", "k1");
      expect(new Set(kidsOf(both))).toEqual(new Set(["k2", "k1"]));
      await until("traffic after the rotation", () => results.filter((r) => r.startedAfterRotation).length >= 30);
    } finally {
      stop = true;
      await Promise.all(workers);
    }

    const finalJwks = await jwksOf(gw);
    expect(new Set(kidsOf(finalJwks))).toEqual(new Set(["k2", "k1"]));
    expect(finalJwks.keys.find((k) => k.kid === "k1")).toMatchObject({ x: k1.publicJwk.x, y: k1.publicJwk.y });
    expect(finalJwks.keys.find((k) => k.kid === "k2")).toMatchObject({ x: k2.publicJwk.x, y: k2.publicJwk.y });

    // No request failed.
    expect(results.filter((r) => r.status !== 200).map((r) => r.status)).toEqual([]);
    // Every forwarded token, before and after, verifies against the published keys.
    const keySet = createLocalJWKSet(finalJwks);
    const kidCounts: Record<string, number> = {};
    for (const r of results) {
      const token = r.token as string;
      const { payload, protectedHeader } = await jwtVerify(token, keySet, { issuer: "isthmus", audience: "east.example", algorithms: ["ES256"] });
      expect(payload.sub).toBe(r.caller);
      kidCounts[String(protectedHeader.kid)] = (kidCounts[String(protectedHeader.kid)] ?? 0) + 1;
    }
    expect(kidCounts.k1).toBeGreaterThan(0);
    expect(kidCounts.k2).toBeGreaterThan(0);
    for (const r of results.filter((x) => x.finishedBeforePut)) expect(decodeProtectedHeader(r.token as string).kid).toBe("k1");
    for (const r of results.filter((x) => x.startedAfterRotation)) expect(decodeProtectedHeader(r.token as string).kid).toBe("k2");

    // A second rotation: k3 signs, k2 is the previous, k1 is no longer published.
    fake.put(id, JSON.stringify(k3.privateJwk));
    await until("k3 and k2 published, k1 gone", async () => {
      const kids = kidsOf(await jwksOf(gw));
      return kids.length === 2 && kids.includes("k3") && kids.includes("k2");
    });
    const { status, echo } = await call(gw, await svid(callerKey, "spiffe://east.example/ns/shop/sa/after-k3"));
    expect(status).toBe(200);
    expect(decodeProtectedHeader(forwardedToken(echo)).kid).toBe("k3");
  });

  it("after a rotation, the key that signed until then stays published even when AWSPREVIOUS cannot be read at that moment", async () => {
    const k1 = await ecKey("p1");
    const k2 = await ecKey("p2");
    const id = "gw/signing-previous-unreadable";
    fake.put(id, JSON.stringify(k1.privateJwk));
    const gw = await startGw({ signingKeySecretId: id, secretsRefreshMs: 200 });
    // A token signed with p1 is out there (valid for minutes) when the rotation happens.
    const before = await call(gw, await svid(callerKey, "spiffe://east.example/ns/shop/sa/early"));
    expect(before.status).toBe(200);
    const early = forwardedToken(before.echo);
    expect(decodeProtectedHeader(early).kid).toBe("p1");

    // Reads of AWSPREVIOUS fail (throttling, a blip) while AWSCURRENT reads succeed.
    fake.setDown(true, (c) => c.secretId === id && c.versionStage === "AWSPREVIOUS");
    try {
      fake.put(id, JSON.stringify(k2.privateJwk));
      const jwks = await jwksWith(gw, "p2");
      expect(kidsOf(jwks)).toContain("p1");
      await jwtVerify(early, createLocalJWKSet(jwks), { issuer: "isthmus", audience: "east.example" });
    } finally {
      fake.setDown(false);
    }
  });
});

// ------------------------------------------------------------------ the admin token

describe("admin token from Secrets Manager", () => {
  it("works, and a rotation makes the new token work and the old one get 401", async () => {
    const id = "gw/admin-token";
    fake.put(id, "admin-token-one-0123456789abcdef");
    const gw = await startGw({ adminTokenSecretId: id, secretsRefreshMs: 200 });
    expect(await adminStatus(gw, "admin-token-one-0123456789abcdef")).toBe(200);
    expect(await adminStatus(gw, "some-other-token")).toBe(401);

    fake.put(id, "admin-token-two-fedcba9876543210");
    await until("the rotated admin token to be accepted", async () => (await adminStatus(gw, "admin-token-two-fedcba9876543210")) === 200);
    expect(await adminStatus(gw, "admin-token-one-0123456789abcdef")).toBe(401);
    expect(await adminStatus(gw, "admin-token-two-fedcba9876543210")).toBe(200);
  });

  it("a blip of Secrets Manager keeps the current admin token working", async () => {
    const id = "gw/admin-token-blip";
    fake.put(id, "admin-token-blip-0123456789abcdef");
    const gw = await startGw({ adminTokenSecretId: id, secretsRefreshMs: 200 });
    fake.setDown(true, (c) => c.secretId === id);
    try {
      const failedBefore = fake.calls.filter((c) => c.secretId === id && c.status === 500).length;
      await fake.waitForCalls((calls) => calls.filter((c) => c.secretId === id && c.status === 500).length >= failedBefore + 2);
      expect(await adminStatus(gw, "admin-token-blip-0123456789abcdef")).toBe(200);
    } finally {
      fake.setDown(false);
    }
  });

  it("a missing admin token secret fails start-up with an error naming ISTHMUS_ADMIN_TOKEN_SECRET_ID and the secret id", async () => {
    const err = await startGw({ adminTokenSecretId: "gw/admin-missing" }).then(
      (gw) => gw,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain("ISTHMUS_ADMIN_TOKEN_SECRET_ID");
    expect((err as Error).message).toContain("gw/admin-missing");
  });
});

// ------------------------------------------------------------------ a cluster bundle held in a secret

describe("cluster trust bundle by secretId", () => {
  it("verifies tokens with the bundle's JWT-SVID keys, picks up a rotated bundle, and reports a missing bundle secret", async () => {
    const w1 = await ecKey("w1");
    const w2 = await ecKey("w2");
    const stranger = await ecKey("stranger");
    const x509Only = await ecKey("x509");
    fake.put("bundles/west", JSON.stringify({ ...svidBundle([w1]), keys: [...svidBundle([w1]).keys, { ...x509Only.publicJwk, use: "x509-svid" }], spiffe_sequence: 1 }));
    const gw = await startGw(
      { secretsRefreshMs: 200, unknownKidCooldownMs: 100 },
      {
        west: { endpoint: upstream.url, trustDomain: "west.example", bundle: { secretId: "bundles/west" } },
        south: { endpoint: upstream.url, trustDomain: "south.example", bundle: { secretId: "bundles/missing" } },
      },
    );

    const caller = "spiffe://west.example/ns/pay/sa/api";
    const ok = await call(gw, await svid(w1, caller));
    expect(ok.status).toBe(200);
    const { payload } = await jwtVerify(forwardedToken(ok.echo), createLocalJWKSet(await jwksOf(gw)), { issuer: "isthmus", audience: "east.example" });
    expect(payload.sub).toBe(caller);

    // Keys that are not in the bundle, or not JWT-SVID keys, do not verify.
    expect((await call(gw, await svid(stranger, caller))).status).toBe(401);
    expect((await call(gw, await svid(x509Only, caller))).status).toBe(401);
    // A west key does not vouch for another trust domain.
    expect((await call(gw, await svid(w1, "spiffe://east.example/ns/shop/sa/web"))).status).toBe(401);

    // Rotated bundle secret: w2 is accepted once the refreshed secret is read.
    fake.put("bundles/west", JSON.stringify(svidBundle([w1, w2], { spiffe_sequence: 2 })));
    await until("a w2 token to be accepted", async () => (await call(gw, await svid(w2, caller))).status === 200);
    expect((await call(gw, await svid(w1, caller))).status).toBe(200);

    // A bundle secret that does not exist: start-up succeeds, tokens of that domain are refused, status says why.
    expect((await call(gw, await svid(w1, "spiffe://south.example/ns/a/sa/b"))).status).toBe(401);
    const south = gw.trust.status().find((s) => s.cluster === "south");
    expect(south?.loaded).toBe(false);
    expect(south?.lastError).toContain("bundles/missing");
  });
});
