// Workload identity end to end (SPEC.md "Identity"): real key pairs per trust domain (ES256 for
// east, RS256 for west, RS256 for the Kubernetes service-account issuers), real signed tokens, sent
// through the real Node gateway to real upstreams. Covers the refusal of every malformed, forged,
// expired, misdirected or hostile token (401, and no upstream call), authorization by identity
// (403), the Kubernetes projected-token path, the gateway-signed token the destination receives
// (verified against the gateway's published JWKS), and the caches that keep repeated work free.
import { randomUUID } from "node:crypto";
import { createLocalJWKSet, createRemoteJWKSet, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWK } from "jose";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfigText, type DeclarativeConfig } from "../../src/config/declarative.ts";
import { ValidationError } from "../../src/config/errors.ts";
import type { ClusterInput, RouteInput } from "../../src/config/schemas.ts";
import { parseCluster, parseRoute } from "../../src/config/validate.ts";
import { startNodeGateway, type RunningGateway } from "../../src/runtime/node.ts";
import { StaticSecrets } from "../../src/secrets/secrets.ts";
import { silentLogger } from "../../src/util/log.ts";
import { Closer } from "../helpers/gateway.ts";
import {
  b64url,
  bearer,
  bundleOf,
  claimsFor,
  decodeToken,
  headerFor,
  jwkEntry,
  jwtSvid,
  makeKey,
  nowS,
  projectedToken,
  publicPem,
  segment,
  signHmac,
  signRaw,
  unsignedToken,
  type TestKey,
} from "../helpers/identity.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

const ADMIN_TOKEN = "identity-test-admin-token-0123456789";
const AUDIENCE = "isthmus";
const ISSUER = "https://isthmus.gateway.test";
const SIGNING_SECRET = "isthmus/signing-key";
const EAST_ISSUER = "https://oidc.east.example";
const WEST_ISSUER = "https://oidc.west.example";
const SERVICE = "api.shop.svc.cluster.local";

const WEB = "spiffe://east.example/ns/shop/sa/web";
const CART = "spiffe://east.example/ns/shop/sa/cart";
const PAY_API = "spiffe://west.example/ns/pay/sa/api";

const INVALID_TOKEN = 'Bearer realm="isthmus", error="invalid_token"';
const NO_TOKEN = 'Bearer realm="isthmus"';

interface Keys {
  east: TestKey;
  east2: TestKey;
  eastX509: TestKey;
  eastEd: TestKey;
  west: TestKey;
  westX509: TestKey;
  eastSa: TestKey;
  westSa: TestKey;
  stranger: TestKey;
  strangerRsa: TestKey;
  gw: TestKey;
  gwPrevious: TestKey;
}

async function makeKeys(): Promise<Keys> {
  const [east, east2, eastX509, eastEd, west, westX509, eastSa, westSa, stranger, strangerRsa, gw, gwPrevious] = await Promise.all([
    makeKey("ES256", "east-jwt-1"),
    makeKey("ES256", "east-jwt-2"),
    makeKey("ES256", "east-x509-1"),
    makeKey("EdDSA", "east-ed-1"),
    makeKey("RS256", "west-jwt-1"),
    makeKey("RS256", "west-x509-1"),
    makeKey("RS256", "east-sa-1"),
    makeKey("RS256", "west-sa-1"),
    makeKey("ES256", "stranger-1"),
    makeKey("RS256", "stranger-rsa-1"),
    makeKey("ES256", "gw-signing-2"),
    makeKey("ES256", "gw-signing-1"),
  ]);
  return { east, east2, eastX509, eastEd, west, westX509, eastSa, westSa, stranger, strangerRsa, gw, gwPrevious };
}

function eastCluster(k: Keys, endpoint: string): ClusterInput {
  return {
    endpoint,
    trustDomain: "east.example",
    bundle: {
      // Two JWT keys, an X.509-SVID key that must never verify a JWT, and an Ed25519 JWT key whose alg is not allowed.
      jwks: bundleOf(jwkEntry(k.east), jwkEntry(k.east2), jwkEntry(k.eastX509, "x509-svid"), jwkEntry(k.eastEd)),
      kubernetes: { issuer: EAST_ISSUER, jwks: bundleOf(jwkEntry(k.eastSa, "sig")) },
    },
  };
}

function westCluster(k: Keys, endpoint: string): ClusterInput {
  return {
    endpoint,
    trustDomain: "west.example",
    bundle: {
      jwks: bundleOf(jwkEntry(k.west), jwkEntry(k.westX509, "x509-svid")),
      kubernetes: { issuer: WEST_ISSUER, jwks: bundleOf(jwkEntry(k.westSa, null)) },
    },
  };
}

const backend = (cluster: string) => [{ backendRefs: [{ cluster, service: SERVICE, port: 8080 }] }];

function config(clusters: Record<string, ClusterInput>, routes: Record<string, RouteInput>): DeclarativeConfig {
  return {
    clusters: Object.fromEntries(Object.entries(clusters).map(([n, c]) => [n, parseCluster(c, ["clusters", n])])),
    routes: Object.fromEntries(Object.entries(routes).map(([n, r]) => [n, parseRoute(r, ["routes", n])])),
  };
}

async function startGateway(k: Keys, cfg: DeclarativeConfig): Promise<RunningGateway> {
  return startNodeGateway({
    port: 0,
    hostname: "127.0.0.1",
    log: silentLogger,
    config: cfg,
    adminToken: ADMIN_TOKEN,
    audience: AUDIENCE,
    issuer: ISSUER,
    signingKeySecretId: SIGNING_SECRET,
    secrets: new StaticSecrets({ [SIGNING_SECRET]: { AWSCURRENT: JSON.stringify(k.gw.privateJwk), AWSPREVIOUS: JSON.stringify(k.gwPrevious.privateJwk) } }),
  });
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

function client(closer: Closer): Agent {
  const agent = new Agent({ connections: 16, keepAliveTimeout: 10_000 });
  closer.add({ close: () => agent.close() });
  return agent;
}

async function send(agent: Agent, gw: RunningGateway, host: string, headers: Record<string, string | string[]> = {}, path = "/api/items"): Promise<Reply> {
  const res = await request(`${gw.url}${path}`, { dispatcher: agent, headers: { ...headers, host } });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

async function admin(agent: Agent, gw: RunningGateway, method: "PUT" | "DELETE", path: string, body?: unknown): Promise<number> {
  const res = await request(`${gw.url}/_isthmus/v1${path}`, {
    dispatcher: agent,
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  await res.body.text();
  return res.statusCode;
}

/** The Authorization header the upstream received on its latest request. */
function forwardedAuthorization(up: Upstream): string | undefined {
  const h = up.received.at(-1)?.headers.authorization;
  return typeof h === "string" ? h : undefined;
}

function problemOf(r: Reply): Record<string, unknown> {
  expect(String(r.headers["content-type"])).toMatch(/^application\/problem\+json/);
  return JSON.parse(r.text) as Record<string, unknown>;
}

// ======================================================================== the main gateway

describe("workload identity through the real gateway", () => {
  const closer = new Closer();
  let k: Keys;
  let east: Upstream;
  let west: Upstream;
  let gw: RunningGateway;
  let agent: Agent;
  const call = (host: string, headers: Record<string, string | string[]> = {}, path?: string) => send(agent, gw, host, headers, path);

  beforeAll(async () => {
    k = await makeKeys();
    east = closer.add(await startUpstream("east"));
    west = closer.add(await startUpstream("west"));
    gw = closer.add(
      await startGateway(
        k,
        config(
          { east: eastCluster(k, east.url), west: westCluster(k, west.url) },
          {
            any: { hostnames: ["any.test"], rules: backend("east") },
            "to-west": { hostnames: ["west.test"], rules: backend("west") },
            open: { hostnames: ["open.test"], authorization: { unauthenticated: true }, rules: backend("east") },
            shop: { hostnames: ["shop.test"], authorization: { identities: ["spiffe://east.example/ns/shop/*", PAY_API] }, rules: backend("east") },
            "web-only": { hostnames: ["web.test"], authorization: { identities: [WEB] }, rules: backend("west") },
          },
        ),
      ),
    );
    agent = client(closer);
  });
  afterAll(() => closer.closeAll());

  // -------------------------------------------------------------------- valid tokens

  describe("valid tokens are accepted", () => {
    it("an ES256 JWT-SVID of east and an RS256 JWT-SVID of west reach the upstream", async () => {
      const e = await call("any.test", bearer(await jwtSvid(k.east, WEB)));
      expect(e.status).toBe(200);
      expect(JSON.parse(e.text)).toMatchObject({ cluster: "east", path: "/api/items" });
      const w = await call("any.test", bearer(await jwtSvid(k.west, PAY_API)));
      expect(w.status).toBe(200);
    });

    it("the second JWT key of a bundle verifies too", async () => {
      expect((await call("any.test", bearer(await jwtSvid(k.east2, CART)))).status).toBe(200);
    });

    it("accepts aud as an array that contains ours, typ JOSE, and no typ at all", async () => {
      expect((await call("any.test", bearer(await jwtSvid(k.east, WEB, { aud: ["other", AUDIENCE] })))).status).toBe(200);
      expect((await call("any.test", bearer(await jwtSvid(k.east, WEB, { typ: "JOSE" })))).status).toBe(200);
      expect((await call("any.test", bearer(await jwtSvid(k.east, WEB, { typ: null })))).status).toBe(200);
    });

    it("leeway: expired 25 s ago is accepted (within the 30 s leeway), 31 s ago is refused", async () => {
      const within = await call("any.test", bearer(await jwtSvid(k.east, WEB, { exp: nowS() - 25, iat: nowS() - 325 })));
      expect(within.status).toBe(200);
      const before = east.requests;
      const beyond = await call("any.test", bearer(await jwtSvid(k.east, WEB, { exp: nowS() - 31, iat: nowS() - 331 })));
      expect(beyond.status).toBe(401);
      expect(beyond.headers["www-authenticate"]).toBe(INVALID_TOKEN);
      expect(east.requests).toBe(before);
    });

    it("a token just under the 8 KiB limit is accepted (the limit is not lower than documented)", async () => {
      const t = await jwtSvid(k.east, WEB, { claims: { pad: "x".repeat(5700) } });
      expect(t.length).toBeGreaterThan(7500);
      expect(`Bearer ${t}`.length).toBeLessThanOrEqual(8192);
      expect((await call("any.test", bearer(t))).status).toBe(200);
    });

    it("nbf within the leeway is accepted", async () => {
      expect((await call("any.test", bearer(await jwtSvid(k.east, WEB, { nbf: nowS() + 10 })))).status).toBe(200);
    });
  });

  // -------------------------------------------------------------------- bad tokens

  describe("bad tokens: 401 invalid_token and no upstream call", () => {
    interface BadCase {
      name: string;
      headers: () => Promise<Record<string, string | string[]>>;
      /** Refused on its structure, bundle membership or claims, before any signature work. */
      noSignatureWork?: boolean;
    }
    const tok = (make: () => Promise<string>) => async () => bearer(await make());
    const auth = (value: () => Promise<string>) => async () => ({ authorization: await value() });
    const good = () => jwtSvid(k.east, WEB);
    /** A valid token with one character of segment `i` replaced (never the final one, whose low bits may be padding). */
    const tamper = async (i: number) => {
      const parts = (await good()).split(".");
      const s = parts[i] as string;
      const at = Math.floor(s.length / 2);
      parts[i] = s.slice(0, at) + (s[at] === "A" ? "B" : "A") + s.slice(at + 1);
      return parts.join(".");
    };
    const eastHeader = () => headerFor(k.east);
    const eastClaims = (o = {}) => claimsFor(WEB, o);

    const cases: BadCase[] = [
      // --- algorithms
      { name: "alg none, no signature", noSignatureWork: true, headers: tok(async () => unsignedToken({ alg: "none", kid: k.east.kid, typ: "JWT" }, eastClaims())) },
      { name: "alg none, empty signature segment and no kid", noSignatureWork: true, headers: tok(async () => unsignedToken({ alg: "none" }, eastClaims())) },
      { name: "alg none with a real ES256 signature", noSignatureWork: true, headers: tok(() => signRaw({ alg: "none", kid: k.east.kid }, eastClaims(), k.east)) },
      { name: "alg NONE (case variant) with a real signature", noSignatureWork: true, headers: tok(() => signRaw({ alg: "NONE", kid: k.east.kid }, eastClaims(), k.east)) },
      { name: "alg missing", noSignatureWork: true, headers: tok(() => signRaw({ kid: k.east.kid, typ: "JWT" }, eastClaims(), k.east)) },
      { name: "HS256 keyed with the east public key PEM (alg confusion)", noSignatureWork: true, headers: tok(async () => signHmac({ alg: "HS256", kid: k.east.kid, typ: "JWT" }, eastClaims(), await publicPem(k.east))) },
      { name: "HS256 keyed with the east public JWK JSON (alg confusion)", noSignatureWork: true, headers: tok(() => signHmac({ alg: "HS256", kid: k.east.kid }, eastClaims(), JSON.stringify(jwkEntry(k.east)))) },
      { name: "HS256 keyed with the west public key PEM, west kid (alg confusion on RSA)", noSignatureWork: true, headers: tok(async () => signHmac({ alg: "HS256", kid: k.west.kid }, claimsFor(PAY_API), await publicPem(k.west))) },
      { name: "HS512, not on the list", noSignatureWork: true, headers: tok(() => signHmac({ alg: "HS512", kid: k.east.kid }, eastClaims(), "a shared secret of 32+ bytes....", "SHA-512")) },
      { name: "EdDSA, not on the list, even though its Ed25519 key is in the bundle", noSignatureWork: true, headers: tok(() => jwtSvid(k.eastEd, WEB)) },
      { name: "ES256 header naming the Ed25519 key of the bundle (alg does not fit the key)", headers: tok(() => signRaw({ alg: "ES256", kid: k.eastEd.kid }, eastClaims(), k.east)) },
      { name: "RS256 signature with an ES256 key's kid", headers: tok(() => signRaw({ alg: "RS256", kid: k.east.kid }, eastClaims(), k.west)) },
      { name: "ES256 header over an RS256 signature", headers: tok(() => signRaw({ alg: "ES256", kid: k.east.kid }, eastClaims(), k.west)) },
      // --- kid and keys
      { name: "unknown kid", noSignatureWork: true, headers: tok(() => jwtSvid(k.stranger, WEB)) },
      { name: "missing kid", noSignatureWork: true, headers: tok(() => jwtSvid(k.east, WEB, { kid: null })) },
      { name: "empty kid", noSignatureWork: true, headers: tok(() => jwtSvid(k.east, WEB, { kid: "" })) },
      { name: "kid longer than 256 characters", noSignatureWork: true, headers: tok(() => jwtSvid(k.east, WEB, { kid: "k".repeat(300) })) },
      { name: "kid that is not a string", noSignatureWork: true, headers: tok(() => jwtSvid(k.east, WEB, { kid: 1 as unknown as string })) },
      { name: "sub in east signed by west's key with west's kid", noSignatureWork: true, headers: tok(() => jwtSvid(k.west, WEB)) },
      { name: "sub in west signed by east's key with east's kid", noSignatureWork: true, headers: tok(() => jwtSvid(k.east, PAY_API)) },
      { name: "signed by the east X.509-SVID key (use x509-svid) with its kid", noSignatureWork: true, headers: tok(() => jwtSvid(k.eastX509, WEB)) },
      { name: "signed by the west X.509-SVID key (use x509-svid) with its kid", noSignatureWork: true, headers: tok(() => jwtSvid(k.westX509, PAY_API)) },
      { name: "a stranger's key claiming east's kid (forged signature)", headers: tok(() => jwtSvid(k.stranger, WEB, { kid: k.east.kid })) },
      { name: "a stranger's RSA key claiming west's kid (forged signature)", headers: tok(() => jwtSvid(k.strangerRsa, PAY_API, { kid: k.west.kid })) },
      { name: "signed by the east Kubernetes issuer key, sub a SPIFFE ID, no iss", noSignatureWork: true, headers: tok(() => jwtSvid(k.eastSa, WEB)) },
      // --- time
      { name: "expired an hour ago", headers: tok(() => jwtSvid(k.east, WEB, { exp: nowS() - 3600, iat: nowS() - 7200 })) },
      { name: "expired 31 s ago (beyond the 30 s leeway)", headers: tok(() => jwtSvid(k.east, WEB, { exp: nowS() - 31 })) },
      { name: "exp missing", headers: tok(() => jwtSvid(k.east, WEB, { exp: null })) },
      { name: "exp a string", headers: tok(() => jwtSvid(k.east, WEB, { claims: { exp: String(nowS() + 300) } })) },
      { name: "nbf in the future (2 minutes)", headers: tok(() => jwtSvid(k.east, WEB, { nbf: nowS() + 120 })) },
      // --- audience
      { name: "wrong aud", headers: tok(() => jwtSvid(k.east, WEB, { aud: "someone-else" })) },
      { name: "aud differing only in case", headers: tok(() => jwtSvid(k.east, WEB, { aud: "ISTHMUS" })) },
      { name: "aud array without ours", headers: tok(() => jwtSvid(k.east, WEB, { aud: ["a", "b", "isthmus-admin"] })) },
      { name: "aud missing", headers: tok(() => jwtSvid(k.east, WEB, { aud: null })) },
      { name: "aud empty array", headers: tok(() => jwtSvid(k.east, WEB, { aud: [] })) },
      // --- subject
      { name: "sub missing", noSignatureWork: true, headers: tok(() => jwtSvid(k.east, undefined)) },
      { name: "sub not a SPIFFE ID", noSignatureWork: true, headers: tok(() => jwtSvid(k.east, "web.shop.svc.cluster.local")) },
      { name: "sub a number", noSignatureWork: true, headers: tok(() => signRaw(eastHeader(), { ...eastClaims(), sub: 42 }, k.east)) },
      { name: "sub without path", noSignatureWork: true, headers: tok(() => jwtSvid(k.east, "spiffe://east.example")) },
      { name: "sub with only a slash as path", noSignatureWork: true, headers: tok(() => jwtSvid(k.east, "spiffe://east.example/")) },
      { name: "sub with a '..' segment", noSignatureWork: true, headers: tok(() => jwtSvid(k.east, "spiffe://east.example/ns/shop/../admin")) },
      { name: "sub with a '.' segment", noSignatureWork: true, headers: tok(() => jwtSvid(k.east, "spiffe://east.example/ns/./shop/sa/web")) },
      { name: "sub with an empty segment", noSignatureWork: true, headers: tok(() => jwtSvid(k.east, "spiffe://east.example/ns//sa/web")) },
      { name: "sub with a trailing slash", noSignatureWork: true, headers: tok(() => jwtSvid(k.east, `${WEB}/`)) },
      { name: "sub with a percent-encoded slash", noSignatureWork: true, headers: tok(() => jwtSvid(k.east, "spiffe://east.example/ns%2Fshop/sa/web")) },
      { name: "sub with an upper-case trust domain", noSignatureWork: true, headers: tok(() => jwtSvid(k.east, "spiffe://EAST.example/ns/shop/sa/web")) },
      { name: "sub with a port in the trust domain", noSignatureWork: true, headers: tok(() => jwtSvid(k.east, "spiffe://east.example:443/ns/shop/sa/web")) },
      { name: "sub with userinfo before the trust domain", noSignatureWork: true, headers: tok(() => jwtSvid(k.east, "spiffe://west.example@east.example/ns/shop/sa/web")) },
      { name: "sub with a query", noSignatureWork: true, headers: tok(() => jwtSvid(k.east, `${WEB}?admin=1`)) },
      { name: "sub with the scheme in upper case", noSignatureWork: true, headers: tok(() => jwtSvid(k.east, "SPIFFE://east.example/ns/shop/sa/web")) },
      { name: "sub of an unregistered trust domain", noSignatureWork: true, headers: tok(() => jwtSvid(k.east, "spiffe://north.example/ns/shop/sa/web")) },
      { name: "sub of a trust domain that only extends a registered one", noSignatureWork: true, headers: tok(() => jwtSvid(k.east, "spiffe://east.example.evil/ns/shop/sa/web")) },
      // --- integrity
      { name: "tampered payload (sub changed after signing)", headers: tok(async () => {
        const [h, , s] = (await good()).split(".");
        return `${h}.${segment(claimsFor(CART))}.${s}`;
      }) },
      { name: "tampered payload (one character)", headers: tok(() => tamper(1)) },
      { name: "tampered signature (one character)", headers: tok(() => tamper(2)) },
      { name: "tampered header (kid switched to the other east key)", headers: tok(async () => {
        const [, p, s] = (await good()).split(".");
        return `${segment(headerFor(k.east2))}.${p}.${s}`;
      }) },
      { name: "truncated signature", headers: tok(async () => (await good()).slice(0, -12)) },
      { name: "signature segment empty", noSignatureWork: true, headers: tok(async () => `${(await good()).split(".").slice(0, 2).join(".")}.`) },
      // --- structure
      { name: "2 segments", noSignatureWork: true, headers: tok(async () => (await good()).split(".").slice(0, 2).join(".")) },
      { name: "4 segments", noSignatureWork: true, headers: tok(async () => `${await good()}.${b64url("extra")}`) },
      { name: "a JWE-looking 5-part token", noSignatureWork: true, headers: tok(async () => [segment({ alg: "RSA-OAEP-256", enc: "A256GCM", kid: k.east.kid }), b64url("encrypted-key"), b64url("iv-iv-iv-iv"), b64url("ciphertext"), b64url("tag")].join(".")) },
      { name: "oversize token (> 8 KiB), otherwise valid", noSignatureWork: true, headers: tok(() => jwtSvid(k.east, WEB, { claims: { pad: "x".repeat(9000) } })) },
      { name: "non-base64url characters (+ and /)", noSignatureWork: true, headers: tok(async () => {
        const [h, p, s] = (await good()).split(".");
        return `${h}.${(p as string).slice(0, 4)}+/${(p as string).slice(6)}.${s}`;
      }) },
      { name: "base64 padding", noSignatureWork: true, headers: tok(async () => `${await good()}==`) },
      { name: "header not JSON", noSignatureWork: true, headers: tok(() => signRaw("not json at all", eastClaims(), k.east)) },
      { name: "header a JSON array", noSignatureWork: true, headers: tok(() => signRaw([eastHeader()], eastClaims(), k.east)) },
      { name: "payload not JSON", noSignatureWork: true, headers: tok(() => signRaw(eastHeader(), "sub=spiffe://east.example/ns/shop/sa/web", k.east)) },
      { name: "payload a JSON array (properly signed)", noSignatureWork: true, headers: tok(() => signRaw(eastHeader(), [eastClaims()], k.east)) },
      { name: "payload a JSON string (properly signed)", noSignatureWork: true, headers: tok(() => signRaw(eastHeader(), JSON.stringify(WEB), k.east)) },
      { name: "payload null (properly signed)", noSignatureWork: true, headers: tok(() => signRaw(eastHeader(), "null", k.east)) },
      { name: "header not UTF-8", noSignatureWork: true, headers: tok(async () => {
        const [, p, s] = (await good()).split(".");
        return `${b64url(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]))}.${p}.${s}`;
      }) },
      // --- header parameters
      { name: "extra header parameter jku", noSignatureWork: true, headers: tok(() => jwtSvid(k.stranger, WEB, { kid: k.east.kid, header: { jku: "https://attacker.example/jwks.json" } })) },
      { name: "extra header parameter x5u", noSignatureWork: true, headers: tok(() => jwtSvid(k.east, WEB, { header: { x5u: "https://attacker.example/cert.pem" } })) },
      { name: "extra header parameter jwk (the attacker's own key embedded)", noSignatureWork: true, headers: tok(() => jwtSvid(k.stranger, WEB, { kid: k.east.kid, header: { jwk: jwkEntry(k.stranger, "sig") } })) },
      { name: "extra header parameter x5c", noSignatureWork: true, headers: tok(() => jwtSvid(k.east, WEB, { header: { x5c: ["MIIB"] } })) },
      { name: "crit header parameter", noSignatureWork: true, headers: tok(() => jwtSvid(k.east, WEB, { header: { crit: ["exp"] } })) },
      { name: "b64 false (unencoded payload)", noSignatureWork: true, headers: tok(() => jwtSvid(k.east, WEB, { header: { b64: false, crit: ["b64"] } })) },
      { name: "cty header parameter (nested JWT)", noSignatureWork: true, headers: tok(() => jwtSvid(k.east, WEB, { header: { cty: "JWT" } })) },
      { name: "typ at+jwt", noSignatureWork: true, headers: tok(() => jwtSvid(k.east, WEB, { typ: "at+jwt" })) },
      { name: "typ a number", noSignatureWork: true, headers: tok(() => jwtSvid(k.east, WEB, { typ: 1 as unknown as string })) },
      // --- the Authorization header itself
      { name: "two Authorization headers (the same valid token twice)", noSignatureWork: true, headers: async () => {
        const t = await good();
        return { authorization: [`Bearer ${t}`, `Bearer ${t}`] };
      } },
      { name: "two Authorization headers (a valid token, then garbage)", noSignatureWork: true, headers: async () => ({ authorization: [`Bearer ${await good()}`, "Bearer x.y.z"] }) },
      { name: "two tokens in one header", noSignatureWork: true, headers: auth(async () => `Bearer ${await good()}, Bearer ${await good()}`) },
      { name: "lowercase bearer", noSignatureWork: true, headers: auth(async () => `bearer ${await good()}`) },
      { name: "upper-case BEARER", noSignatureWork: true, headers: auth(async () => `BEARER ${await good()}`) },
      { name: "Basic credentials", noSignatureWork: true, headers: auth(async () => `Basic ${Buffer.from("web:secret").toString("base64")}`) },
      { name: "Basic scheme carrying a valid JWT", noSignatureWork: true, headers: auth(async () => `Basic ${await good()}`) },
      { name: "empty Bearer", noSignatureWork: true, headers: auth(async () => "Bearer") },
      { name: "Bearer followed by spaces only", noSignatureWork: true, headers: auth(async () => "Bearer    ") },
      { name: "the token without a scheme", noSignatureWork: true, headers: auth(good) },
      { name: "two spaces between Bearer and the token", noSignatureWork: true, headers: auth(async () => `Bearer  ${await good()}`) },
      { name: "a tab between Bearer and the token", noSignatureWork: true, headers: auth(async () => `Bearer\t${await good()}`) },
      { name: "whitespace inside the token", noSignatureWork: true, headers: auth(async () => `Bearer ${(await good()).replace(".", ". ")}`) },
      { name: "a second word after the token", noSignatureWork: true, headers: auth(async () => `Bearer ${await good()} extra`) },
      // --- Kubernetes tokens in the wrong place, or not quite right
      { name: "a Kubernetes token of an unregistered issuer (goes to the SVID path)", noSignatureWork: true, headers: tok(() => projectedToken(k.eastSa, { issuer: "https://oidc.north.example" })) },
      { name: "a Kubernetes token without iss (goes to the SVID path)", noSignatureWork: true, headers: tok(async () => {
        const t = decodeToken(await projectedToken(k.eastSa, { issuer: EAST_ISSUER }));
        delete t.payload.iss;
        return signRaw(t.header, t.payload, k.eastSa);
      }) },
      { name: "a JWT-SVID sent to the Kubernetes path (iss registered, sub a SPIFFE ID)", noSignatureWork: true, headers: tok(() => jwtSvid(k.eastSa, WEB, { iss: EAST_ISSUER, claims: { "kubernetes.io": { namespace: "shop" } } })) },
      { name: "Kubernetes token for the wrong audience", headers: tok(() => projectedToken(k.eastSa, { issuer: EAST_ISSUER, aud: ["https://kubernetes.default.svc"] })) },
      { name: "Kubernetes token whose sub is not a service account", noSignatureWork: true, headers: tok(() => projectedToken(k.eastSa, { issuer: EAST_ISSUER, sub: "system:node:ip-10-0-0-1" })) },
      { name: "Kubernetes token whose sub lacks the service account name", noSignatureWork: true, headers: tok(() => projectedToken(k.eastSa, { issuer: EAST_ISSUER, sub: "system:serviceaccount:shop" })) },
      { name: "Kubernetes token whose sub has an upper-case namespace", noSignatureWork: true, headers: tok(() => projectedToken(k.eastSa, { issuer: EAST_ISSUER, sub: "system:serviceaccount:Shop:web" })) },
      { name: "Kubernetes token without the kubernetes.io claim", noSignatureWork: true, headers: tok(() => projectedToken(k.eastSa, { issuer: EAST_ISSUER, omitKubernetesClaim: true })) },
      { name: "Kubernetes token with iss east signed by west's issuer key", noSignatureWork: true, headers: tok(() => projectedToken(k.westSa, { issuer: EAST_ISSUER })) },
      { name: "Kubernetes token with iss east signed by east's JWT-SVID key", noSignatureWork: true, headers: tok(() => projectedToken(k.east, { issuer: EAST_ISSUER })) },
      { name: "Kubernetes token signed by a stranger claiming the issuer's kid", headers: tok(() => projectedToken(k.strangerRsa, { issuer: EAST_ISSUER, kid: k.eastSa.kid })) },
      { name: "Kubernetes token expired", headers: tok(() => projectedToken(k.eastSa, { issuer: EAST_ISSUER, exp: nowS() - 600, iat: nowS() - 4200, nbf: nowS() - 4200 })) },
      { name: "Kubernetes token with exp missing", headers: tok(() => projectedToken(k.eastSa, { issuer: EAST_ISSUER, exp: null })) },
      { name: "Kubernetes token with the issuer's trailing slash", noSignatureWork: true, headers: tok(() => projectedToken(k.eastSa, { issuer: `${EAST_ISSUER}/` })) },
    ];

    it(`covers at least 40 bad tokens (has ${cases.length})`, () => {
      expect(cases.length).toBeGreaterThanOrEqual(40);
      expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
    });

    it.each(cases)("refuses: $name", async (c) => {
      const headers = await c.headers();
      const before = { east: east.requests, west: west.requests, checks: gw.verifier.signatureChecks };
      const r = await call("any.test", headers);
      expect(r.status).toBe(401);
      expect(r.headers["www-authenticate"]).toBe(INVALID_TOKEN);
      expect(problemOf(r)).toMatchObject({ status: 401, title: "Unauthenticated" });
      expect(east.requests).toBe(before.east);
      expect(west.requests).toBe(before.west);
      if (c.noSignatureWork) expect(gw.verifier.signatureChecks).toBe(before.checks);
    });

    it("a missing token gets 401 with a challenge and no error code, and no upstream call", async () => {
      const before = east.requests;
      const r = await call("any.test");
      expect(r.status).toBe(401);
      expect(r.headers["www-authenticate"]).toBe(NO_TOKEN);
      expect(problemOf(r)).toMatchObject({ status: 401 });
      // A token elsewhere than the Authorization header does not count.
      const elsewhere = await call("any.test", { "proxy-authorization": `Bearer ${await good()}`, cookie: `token=${await good()}` }, `/api/items?access_token=${await good()}`);
      expect(elsewhere.status).toBe(401);
      expect(elsewhere.headers["www-authenticate"]).toBe(NO_TOKEN);
      expect(east.requests).toBe(before);
    });

    it("the refusal never echoes the token back", async () => {
      const t = await jwtSvid(k.east, WEB, { aud: "wrong" });
      const r = await call("any.test", bearer(t));
      expect(r.status).toBe(401);
      expect(r.text).not.toContain(t.split(".")[2]);
      expect(JSON.stringify(r.headers)).not.toContain(t.split(".")[2]);
    });
  });

  // -------------------------------------------------------------------- authorization

  describe("authorization by identity", () => {
    it("a route without authorization admits any valid caller of a registered trust domain", async () => {
      for (const [key, id] of [
        [k.east, "spiffe://east.example/ns/anything/sa/at-all"],
        [k.east2, "spiffe://east.example/a"],
        [k.west, "spiffe://west.example/ns/pay/sa/worker"],
      ] as const) {
        expect((await call("any.test", bearer(await jwtSvid(key, id)))).status).toBe(200);
      }
    });

    it("an unauthenticated route admits a request with no token", async () => {
      const before = east.requests;
      const r = await call("open.test");
      expect(r.status).toBe(200);
      expect(east.requests).toBe(before + 1);
      expect(east.received.at(-1)?.headers.authorization).toBeUndefined();
    });

    it("an unauthenticated route neither verifies nor strips the Authorization header: it passes through untouched", async () => {
      const checks = gw.verifier.signatureChecks;
      const signed = gw.tokens.signatures;
      const garbage = "Bearer not.a.token";
      expect((await call("open.test", { authorization: garbage })).status).toBe(200);
      expect(forwardedAuthorization(east)).toBe(garbage);
      const basic = `Basic ${Buffer.from("u:p").toString("base64")}`;
      expect((await call("open.test", { authorization: basic })).status).toBe(200);
      expect(forwardedAuthorization(east)).toBe(basic);
      expect(gw.verifier.signatureChecks).toBe(checks);
      expect(gw.tokens.signatures).toBe(signed);
    });

    it("identities: exact IDs and ns/shop/* patterns admit (200), on segment boundaries only", async () => {
      for (const [key, id] of [
        [k.east, WEB],
        [k.east, CART],
        [k.east2, "spiffe://east.example/ns/shop/sa/cart/v2"],
        [k.west, PAY_API],
      ] as const) {
        const r = await call("shop.test", bearer(await jwtSvid(key, id)));
        expect(r.status, id).toBe(200);
      }
    });

    it("identities: a valid caller that is not admitted gets 403 problem+json and no upstream call", async () => {
      for (const [key, id] of [
        [k.east, "spiffe://east.example/ns/shopping/sa/web"],
        [k.east, "spiffe://east.example/ns/shop"],
        [k.east, "spiffe://east.example/ns/other/sa/web"],
        [k.east, "spiffe://east.example/shop/sa/web"],
        [k.west, "spiffe://west.example/ns/shop/sa/web"],
        [k.west, "spiffe://west.example/ns/pay/sa/api2"],
        [k.west, "spiffe://west.example/ns/pay/sa/api/v2"],
      ] as const) {
        const before = { east: east.requests, west: west.requests };
        const r = await call("shop.test", bearer(await jwtSvid(key, id)));
        expect(r.status, id).toBe(403);
        expect(r.headers["www-authenticate"]).toBeUndefined();
        const p = problemOf(r);
        expect(p).toMatchObject({ status: 403, title: "Forbidden" });
        expect(String(p.detail)).toContain(id);
        expect(east.requests).toBe(before.east);
        expect(west.requests).toBe(before.west);
      }
    });

    it("authentication comes first: an invalid token on a restricted route is 401, not 403", async () => {
      const r = await call("shop.test", bearer(await jwtSvid(k.east, WEB, { aud: "nope" })));
      expect(r.status).toBe(401);
      expect(r.headers["www-authenticate"]).toBe(INVALID_TOKEN);
      expect((await call("shop.test")).status).toBe(401);
    });

    it("an exact identity admits exactly that ID", async () => {
      expect((await call("web.test", bearer(await jwtSvid(k.east, WEB)))).status).toBe(200);
      expect((await call("web.test", bearer(await jwtSvid(k.east, CART)))).status).toBe(403);
      expect((await call("web.test", bearer(await jwtSvid(k.east, `${WEB}/x`)))).status).toBe(403);
      expect((await call("web.test", bearer(await jwtSvid(k.east, "spiffe://east.example/ns/shop/sa/we")))).status).toBe(403);
    });
  });

  // -------------------------------------------------------------------- Kubernetes tokens

  describe("Kubernetes projected service-account tokens", () => {
    it("a projected token of east's issuer is spiffe://east.example/ns/shop/sa/web", async () => {
      const t = await projectedToken(k.eastSa, { issuer: EAST_ISSUER, namespace: "shop", serviceAccount: "web" });
      // web.test admits exactly that identity and forwards to west.
      const r = await call("web.test", bearer(t));
      expect(r.status).toBe(200);
      const forwarded = forwardedAuthorization(west) ?? "";
      expect(forwarded).toMatch(/^Bearer /);
      expect(decodeToken(forwarded.slice(7)).payload).toMatchObject({ sub: WEB, aud: "west.example", iss: ISSUER });
    });

    it("another service account of the same issuer is a different identity: 403 on the exact route, 200 on the pattern route", async () => {
      const t = await projectedToken(k.eastSa, { issuer: EAST_ISSUER, namespace: "shop", serviceAccount: "cart" });
      expect((await call("web.test", bearer(t))).status).toBe(403);
      expect((await call("shop.test", bearer(t))).status).toBe(200);
      expect(decodeToken((forwardedAuthorization(east) ?? "").slice(7)).payload.sub).toBe(CART);
    });

    it("west's issuer maps to west's trust domain, whatever the token's namespace", async () => {
      const t = await projectedToken(k.westSa, { issuer: WEST_ISSUER, namespace: "pay", serviceAccount: "api" });
      expect((await call("shop.test", bearer(t))).status).toBe(200);
      expect(decodeToken((forwardedAuthorization(east) ?? "").slice(7)).payload.sub).toBe(PAY_API);
      // Same namespace and name, west's issuer: not east's web.
      const w = await projectedToken(k.westSa, { issuer: WEST_ISSUER, namespace: "shop", serviceAccount: "web" });
      expect((await call("web.test", bearer(w))).status).toBe(403);
    });

    it("service-account names with dots and dashes keep their name", async () => {
      const t = await projectedToken(k.eastSa, { issuer: EAST_ISSUER, namespace: "shop-v2", serviceAccount: "web.frontend-1" });
      expect((await call("any.test", bearer(t))).status).toBe(200);
      expect(decodeToken((forwardedAuthorization(east) ?? "").slice(7)).payload.sub).toBe("spiffe://east.example/ns/shop-v2/sa/web.frontend-1");
    });

    it("exactly one cluster owns each issuer (trust status)", () => {
      const k8s = gw.trust.status().filter((s) => s.kind === "kubernetes");
      expect(k8s.map((s) => [s.issuer, s.cluster, s.trustDomain]).sort()).toEqual([
        [EAST_ISSUER, "east", "east.example"],
        [WEST_ISSUER, "west", "west.example"],
      ]);
    });
  });

  // -------------------------------------------------------------------- destination side

  describe("the destination receives the gateway's token, never the caller's", () => {
    it("publishes the current and previous signing keys, public members only", async () => {
      const res = await request(`${gw.url}/.well-known/jwks.json`, { dispatcher: agent });
      expect(res.statusCode).toBe(200);
      expect(String(res.headers["content-type"])).toMatch(/^application\/json/);
      const jwks = (await res.body.json()) as { keys: JWK[] };
      expect(jwks.keys.map((j) => j.kid)).toEqual([k.gw.kid, k.gwPrevious.kid]);
      for (const j of jwks.keys) {
        for (const m of ["d", "p", "q", "dp", "dq", "qi", "k"]) expect(j, `${j.kid} carries ${m}`).not.toHaveProperty(m);
        expect(j).toMatchObject({ kty: "EC", crv: "P-256", alg: "ES256" });
      }
      expect(jwks.keys[0]).toMatchObject({ x: k.gw.publicJwk.x, y: k.gw.publicJwk.y });
    });

    it("forwards Authorization: Bearer <gateway token>; it verifies with the published JWKS (iss, sub, aud east.example, short exp, kid)", async () => {
      const caller = await jwtSvid(k.east, WEB);
      const r = await call("any.test", { ...bearer(caller), "x-request-id": "r-1" });
      expect(r.status).toBe(200);
      const rec = east.received.at(-1);
      expect(rec).toBeDefined();
      // The caller's token is nowhere in what crossed, in any header, nor any of its segments' signature.
      const crossed = (rec?.rawHeaders ?? []).join("\n");
      expect(crossed).not.toContain(caller);
      expect(crossed).not.toContain(caller.split(".")[2]);
      expect(rec?.rawHeaders.filter((h, i) => i % 2 === 0 && h.toLowerCase() === "authorization")).toHaveLength(1);
      const forwarded = forwardedAuthorization(east) ?? "";
      expect(forwarded).toMatch(/^Bearer [A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
      const token = forwarded.slice("Bearer ".length);
      expect(token).not.toBe(caller);

      const jwks = createRemoteJWKSet(new URL(`${gw.url}/.well-known/jwks.json`));
      const { payload, protectedHeader } = await jwtVerify(token, jwks, { issuer: ISSUER, audience: "east.example", algorithms: ["ES256"] });
      expect(protectedHeader).toMatchObject({ alg: "ES256", kid: k.gw.kid, typ: "JWT" });
      expect(payload.sub).toBe(WEB);
      expect(payload.aud).toBe("east.example");
      const now = nowS();
      expect(payload.exp).toBeGreaterThan(now);
      expect((payload.exp as number) - (payload.iat as number)).toBeLessThanOrEqual(300);
      expect(payload.exp as number).toBeLessThanOrEqual(now + 300 + 1);
      // Scoped: not valid for the other trust domain.
      await expect(jwtVerify(token, jwks, { issuer: ISSUER, audience: "west.example" })).rejects.toBeInstanceOf(joseErrors.JWTClaimValidationFailed);
      // Signed by the gateway's key, not by any trust-domain key.
      await expect(jwtVerify(token, createLocalJWKSet(bundleOf(jwkEntry(k.east, "sig"))))).rejects.toBeInstanceOf(joseErrors.JWKSNoMatchingKey);
    });

    it("the audience is the destination cluster's trust domain: west.example for a west backend", async () => {
      const caller = await jwtSvid(k.east, WEB);
      expect((await call("west.test", bearer(caller))).status).toBe(200);
      const rec = west.received.at(-1);
      expect((rec?.rawHeaders ?? []).join("\n")).not.toContain(caller);
      const token = (forwardedAuthorization(west) ?? "").slice(7);
      const { payload } = await jwtVerify(token, createRemoteJWKSet(new URL(`${gw.url}/.well-known/jwks.json`)), { issuer: ISSUER, audience: "west.example" });
      expect(payload.sub).toBe(WEB);
      expect(decodeProtectedHeader(token).kid).toBe(k.gw.kid);
    });

    it("an RS256 west caller going to east gets an east-scoped token naming the west identity", async () => {
      const caller = await jwtSvid(k.west, PAY_API);
      expect((await call("any.test", bearer(caller))).status).toBe(200);
      const { payload } = await jwtVerify((forwardedAuthorization(east) ?? "").slice(7), createRemoteJWKSet(new URL(`${gw.url}/.well-known/jwks.json`)), {
        issuer: ISSUER,
        audience: "east.example",
      });
      expect(payload.sub).toBe(PAY_API);
    });
  });

  // -------------------------------------------------------------------- caches

  describe("caches", () => {
    const fresh = (ns: string) => `spiffe://east.example/ns/${ns}/sa/${randomUUID().slice(0, 8)}`;

    it("a repeated token costs one signature check; the repeats are cache hits", async () => {
      const N = 8;
      const t = await jwtSvid(k.east, fresh("cache"));
      const checks = gw.verifier.signatureChecks;
      const hits = gw.verifier.cacheHits;
      for (let i = 0; i < N; i++) expect((await call("any.test", bearer(t))).status).toBe(200);
      expect(gw.verifier.signatureChecks).toBe(checks + 1);
      expect(gw.verifier.cacheHits).toBe(hits + N - 1);

      const other = await jwtSvid(k.east, fresh("cache"));
      expect((await call("any.test", bearer(other))).status).toBe(200);
      expect((await call("any.test", bearer(other))).status).toBe(200);
      expect(gw.verifier.signatureChecks).toBe(checks + 2);
      expect(gw.verifier.cacheHits).toBe(hits + N);
    });

    it("a refused token is not cached as valid: a tampered copy of a cached token is still refused", async () => {
      const t = await jwtSvid(k.east, fresh("cache"));
      expect((await call("any.test", bearer(t))).status).toBe(200);
      const [h, , s] = t.split(".");
      const forged = `${h}.${segment(claimsFor(WEB))}.${s}`;
      expect((await call("web.test", bearer(forged))).status).toBe(401);
      expect((await call("web.test", bearer(forged))).status).toBe(401);
    });

    it("gateway tokens are signed once per (caller, audience), not per request", async () => {
      const a = fresh("gwtok");
      const b = fresh("gwtok");
      const ta = await jwtSvid(k.east, a);
      const ta2 = await jwtSvid(k.east, a, { iat: nowS() - 1 }); // another token of the same caller
      const tb = await jwtSvid(k.east, b);
      const start = gw.tokens.signatures;
      const forwarded: string[] = [];
      for (let i = 0; i < 3; i++) {
        expect((await call("any.test", bearer(ta))).status).toBe(200);
        forwarded.push(forwardedAuthorization(east) ?? "");
      }
      expect((await call("any.test", bearer(ta2))).status).toBe(200);
      forwarded.push(forwardedAuthorization(east) ?? "");
      expect(gw.tokens.signatures).toBe(start + 1);
      expect(new Set(forwarded).size).toBe(1);

      for (let i = 0; i < 2; i++) expect((await call("west.test", bearer(ta))).status).toBe(200);
      expect(gw.tokens.signatures).toBe(start + 2);
      expect(forwardedAuthorization(west)).not.toBe(forwarded[0]);

      for (let i = 0; i < 2; i++) expect((await call("any.test", bearer(tb))).status).toBe(200);
      expect(gw.tokens.signatures).toBe(start + 3);
      expect(decodeToken((forwardedAuthorization(east) ?? "").slice(7)).payload.sub).toBe(b);
    });
  });
});

// ======================================================================== issuer ownership

describe("a Kubernetes issuer belongs to exactly one cluster", () => {
  const closer = new Closer();
  let k: Keys;
  let up: Upstream;
  let agent: Agent;
  const SHARED = "https://oidc.shared.example";

  beforeAll(async () => {
    k = await makeKeys();
    up = closer.add(await startUpstream("shared"));
  });
  afterAll(() => closer.closeAll());

  const clusterWith = (td: string, issuer: string): ClusterInput => ({ endpoint: up.url, trustDomain: td, bundle: { kubernetes: { issuer, jwks: bundleOf(jwkEntry(k.eastSa, "sig")) } } });
  const routesFor = (names: string[]): Record<string, RouteInput> =>
    Object.fromEntries(names.map((n) => [`to-${n}`, { hostnames: [`${n}.test`], authorization: { identities: [`spiffe://${n}.example/*`] }, rules: backend(n) }]));

  it("declared by two clusters in one config: the file is refused, naming the clash; the gateway does not start", async () => {
    const cfg = config({ alpha: clusterWith("alpha.example", SHARED), beta: clusterWith("beta.example", SHARED) }, routesFor(["alpha", "beta"]));
    await expect(startGateway(k, cfg)).rejects.toThrow(/issuer .*already used by cluster "alpha"/);
    // The same document through the file parser: a field error with its path, before anything is written.
    const doc = JSON.stringify({ clusters: { alpha: { endpoint: "https://a.example", trustDomain: "alpha.example", bundle: { kubernetes: { issuer: SHARED, jwks: { keys: [] } } } }, beta: { endpoint: "https://b.example", trustDomain: "beta.example", bundle: { kubernetes: { issuer: SHARED, jwks: { keys: [] } } } } } });
    expect(() => parseConfigText(doc)).toThrow(ValidationError);
    try {
      parseConfigText(doc);
    } catch (err) {
      expect((err as ValidationError).errors).toEqual([{ path: "clusters.beta.bundle.kubernetes.issuer", message: 'already used by cluster "alpha"' }]);
    }
  });

  it("registering another cluster with an owned issuer does not take the issuer over", async () => {
    const gw = closer.add(await startGateway(k, config({ east: clusterWith("east.example", SHARED) }, routesFor(["east"]))));
    agent = client(closer);
    const t = await projectedToken(k.eastSa, { issuer: SHARED });
    expect((await send(agent, gw, "east.test", bearer(t))).status).toBe(200);

    // "aaa" sorts before "east": identities must not silently move to it.
    const status = await admin(agent, gw, "PUT", "/clusters/aaa", clusterWith("aaa.example", SHARED));
    // Refused like a duplicate trust domain: an issuer belongs to exactly one cluster.
    expect(status).toBe(409);
    await gw.routing.reload();

    const owner = gw.trust.status().find((s) => s.kind === "kubernetes" && s.issuer === SHARED);
    expect(owner?.cluster).toBe("east");
    expect((await send(agent, gw, "east.test", bearer(t))).status).toBe(200);
  });
});

// ======================================================================== bundle changes and the cache

describe("bundle changes reach tokens already verified", () => {
  const closer = new Closer();
  let k: Keys;
  let up: Upstream;
  let gw: RunningGateway;
  let agent: Agent;

  beforeAll(async () => {
    k = await makeKeys();
    up = closer.add(await startUpstream("east"));
    gw = closer.add(
      await startGateway(
        k,
        config(
          {
            east: { endpoint: up.url, trustDomain: "east.example", bundle: { jwks: bundleOf(jwkEntry(k.east)) } },
            // A caller-only cluster: no route sends traffic to it, so it can be deleted.
            north: { endpoint: up.url, trustDomain: "north.example", bundle: { jwks: bundleOf(jwkEntry(k.stranger)) } },
          },
          { any: { hostnames: ["any.test"], rules: backend("east") } },
        ),
      ),
    );
    agent = client(closer);
  });
  afterAll(() => closer.closeAll());

  it("a key removed from the bundle stops verifying at once, even for a token verified (and cached) before", async () => {
    const cached = await jwtSvid(k.east, WEB);
    expect((await send(agent, gw, "any.test", bearer(cached))).status).toBe(200);
    expect((await send(agent, gw, "any.test", bearer(cached))).status).toBe(200);

    // Rotate: east's bundle now holds only east-jwt-2 (east-jwt-1 is withdrawn, e.g. compromised).
    const status = await admin(agent, gw, "PUT", "/clusters/east", { endpoint: up.url, trustDomain: "east.example", bundle: { jwks: bundleOf(jwkEntry(k.east2)) } });
    expect(status).toBe(200);
    await gw.routing.reload();

    const before = up.requests;
    // A token of the withdrawn key never seen before: refused.
    expect((await send(agent, gw, "any.test", bearer(await jwtSvid(k.east, CART)))).status).toBe(401);
    // A token of the new key: accepted.
    expect((await send(agent, gw, "any.test", bearer(await jwtSvid(k.east2, CART)))).status).toBe(200);
    expect(up.requests).toBe(before + 1);

    // Cached before the change: the cache honours a verdict only while the same bundle holds the kid.
    const r = await send(agent, gw, "any.test", bearer(cached));
    expect(r.status).toBe(401);
    expect(r.headers["www-authenticate"]).toBe(INVALID_TOKEN);
    expect(up.requests).toBe(before + 1);
  });

  it("a deleted cluster's trust domain stops being accepted at once, even for a token verified (and cached) before", async () => {
    const NORTH = "spiffe://north.example/ns/ops/sa/probe";
    const cached = await jwtSvid(k.stranger, NORTH);
    expect((await send(agent, gw, "any.test", bearer(cached))).status).toBe(200);

    expect(await admin(agent, gw, "DELETE", "/clusters/north")).toBe(204);
    await gw.routing.reload();
    expect(gw.trust.svid("north.example")).toBeUndefined();

    const before = up.requests;
    expect((await send(agent, gw, "any.test", bearer(await jwtSvid(k.stranger, NORTH, { iat: nowS() - 1 })))).status).toBe(401);
    expect((await send(agent, gw, "any.test", bearer(cached))).status).toBe(401);
    expect(up.requests).toBe(before);
  });
});
