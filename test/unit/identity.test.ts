// Unit tests of the identity building blocks: SPIFFE IDs and identity patterns
// (src/identity/spiffe.ts), trust-bundle key sets for jose (src/identity/jwks.ts), and the bounded
// expiring cache behind the verification and gateway-token caches (src/util/ttl-cache.ts).
import { createLocalJWKSet, errors as joseErrors, importJWK, jwtVerify } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { oidcKeySet, svidKeySet } from "../../src/identity/jwks.ts";
import { identityAdmitted, parseSpiffeId, serviceAccountIdentity } from "../../src/identity/spiffe.ts";
import { TtlCache } from "../../src/util/ttl-cache.ts";
import { bundleOf, claimsFor, headerFor, jwkEntry, jwtSvid, makeKey, signRaw, type TestKey } from "../helpers/identity.ts";

// ======================================================================== spiffe.ts

describe("parseSpiffeId", () => {
  it("splits a workload ID into trust domain and path", () => {
    expect(parseSpiffeId("spiffe://east.example/ns/shop/sa/web")).toEqual({ trustDomain: "east.example", path: "/ns/shop/sa/web" });
    expect(parseSpiffeId("spiffe://td/a")).toEqual({ trustDomain: "td", path: "/a" });
    expect(parseSpiffeId("spiffe://my_td-1.example/A.b_c-D/0")).toEqual({ trustDomain: "my_td-1.example", path: "/A.b_c-D/0" });
  });

  it("accepts segments that merely contain dots", () => {
    expect(parseSpiffeId("spiffe://td/a..b/.hidden/v1.2")).toEqual({ trustDomain: "td", path: "/a..b/.hidden/v1.2" });
  });

  it.each([
    ["no path", "spiffe://east.example"],
    ["only a slash as path", "spiffe://east.example/"],
    ["trailing slash", "spiffe://east.example/ns/shop/"],
    ["empty segment", "spiffe://east.example/ns//shop"],
    ["'.' segment", "spiffe://east.example/ns/./shop"],
    ["'..' segment", "spiffe://east.example/ns/../shop"],
    ["'..' as the whole path", "spiffe://east.example/.."],
    ["empty trust domain", "spiffe:///ns/shop"],
    ["upper-case trust domain", "spiffe://East.example/ns/shop"],
    ["port", "spiffe://east.example:8443/ns/shop"],
    ["userinfo", "spiffe://user@east.example/ns/shop"],
    ["query", "spiffe://east.example/ns/shop?x=1"],
    ["fragment", "spiffe://east.example/ns/shop#x"],
    ["percent-encoding", "spiffe://east.example/ns%2Fshop"],
    ["space", "spiffe://east.example/ns/sh op"],
    ["non-ASCII", "spiffe://east.example/ns/shöp"],
    ["upper-case scheme", "SPIFFE://east.example/ns/shop"],
    ["another scheme", "https://east.example/ns/shop"],
    ["no scheme", "east.example/ns/shop"],
    ["empty string", ""],
    ["over 2048 characters", `spiffe://east.example/${"a".repeat(2048)}`],
    ["trust domain over 255 characters", `spiffe://${"a".repeat(256)}/x`],
  ])("rejects %s", (_, id) => {
    expect(parseSpiffeId(id)).toBeNull();
  });

  it("takes IDs up to 2048 characters", () => {
    const id = `spiffe://td/${"a".repeat(2048 - "spiffe://td/".length)}`;
    expect(id).toHaveLength(2048);
    expect(parseSpiffeId(id)).not.toBeNull();
  });
});

describe("identityAdmitted", () => {
  const web = "spiffe://east.example/ns/shop/sa/web";

  it("admits an exact ID, and only that ID", () => {
    expect(identityAdmitted(web, [web])).toBe(true);
    expect(identityAdmitted("spiffe://east.example/ns/shop/sa/we", [web])).toBe(false);
    expect(identityAdmitted(`${web}2`, [web])).toBe(false);
    expect(identityAdmitted(`${web}/child`, [web])).toBe(false);
    expect(identityAdmitted("spiffe://west.example/ns/shop/sa/web", [web])).toBe(false);
  });

  it("a prefix pattern admits whole segments below the prefix", () => {
    const p = ["spiffe://east.example/ns/shop/*"];
    expect(identityAdmitted(web, p)).toBe(true);
    expect(identityAdmitted("spiffe://east.example/ns/shop/x", p)).toBe(true);
    expect(identityAdmitted("spiffe://east.example/ns/shop/sa/web/deeper", p)).toBe(true);
  });

  it("a prefix pattern stops at segment boundaries", () => {
    const p = ["spiffe://east.example/ns/shop/*"];
    expect(identityAdmitted("spiffe://east.example/ns/shopping/sa/x", p)).toBe(false);
    expect(identityAdmitted("spiffe://east.example/ns/sho/sa/x", p)).toBe(false);
    expect(identityAdmitted("spiffe://east.example/ns/shop", p)).toBe(false); // the prefix itself is not below it
    expect(identityAdmitted("spiffe://east.example/ns/Shop/sa/web", p)).toBe(false);
    expect(identityAdmitted("spiffe://east.example/ns/x/ns/shop/sa/web", p)).toBe(false);
  });

  it("a trust-domain pattern admits the whole domain and nothing that only starts like it", () => {
    const p = ["spiffe://east.example/*"];
    expect(identityAdmitted(web, p)).toBe(true);
    expect(identityAdmitted("spiffe://east.example/a", p)).toBe(true);
    expect(identityAdmitted("spiffe://east.example.evil/ns/shop/sa/web", p)).toBe(false);
    expect(identityAdmitted("spiffe://east.examplex/a", p)).toBe(false);
    expect(identityAdmitted("spiffe://west.example/a", p)).toBe(false);
    expect(identityAdmitted("spiffe://sub.east.example/a", p)).toBe(false);
  });

  it("a pattern's '*' is not a wildcard inside a segment, and an exact ID is not a prefix", () => {
    expect(identityAdmitted("spiffe://east.example/ns/shop/sa/web", ["spiffe://east.example/ns/*/sa/web"])).toBe(false);
    expect(identityAdmitted(web, ["spiffe://east.example/ns/shop"])).toBe(false);
  });

  it("any entry of the list may admit; an empty list admits nobody", () => {
    expect(identityAdmitted(web, ["spiffe://west.example/*", "spiffe://east.example/ns/other/*", web])).toBe(true);
    expect(identityAdmitted(web, ["spiffe://west.example/*", "spiffe://east.example/ns/other/*"])).toBe(false);
    expect(identityAdmitted(web, [])).toBe(false);
  });
});

describe("serviceAccountIdentity", () => {
  it("maps system:serviceaccount:<ns>:<sa> to spiffe://<td>/ns/<ns>/sa/<sa>", () => {
    expect(serviceAccountIdentity("east.example", "system:serviceaccount:shop:web")).toBe("spiffe://east.example/ns/shop/sa/web");
    expect(serviceAccountIdentity("td", "system:serviceaccount:kube-system:coredns")).toBe("spiffe://td/ns/kube-system/sa/coredns");
    expect(serviceAccountIdentity("td", "system:serviceaccount:a:web.frontend-1")).toBe("spiffe://td/ns/a/sa/web.frontend-1");
    expect(serviceAccountIdentity("td", "system:serviceaccount:0:1")).toBe("spiffe://td/ns/0/sa/1");
  });

  it("the result is a valid SPIFFE ID of that trust domain", () => {
    const id = serviceAccountIdentity("east.example", "system:serviceaccount:shop-v2:web.frontend");
    expect(parseSpiffeId(id as string)).toEqual({ trustDomain: "east.example", path: "/ns/shop-v2/sa/web.frontend" });
  });

  it("takes the longest legal names: namespace 63, service account 253", () => {
    const ns = `a${"b".repeat(61)}c`;
    const sa = `a${"b".repeat(251)}c`;
    expect(serviceAccountIdentity("td", `system:serviceaccount:${ns}:${sa}`)).toBe(`spiffe://td/ns/${ns}/sa/${sa}`);
    expect(serviceAccountIdentity("td", `system:serviceaccount:${ns}x:web`)).toBeNull();
    expect(serviceAccountIdentity("td", `system:serviceaccount:shop:${sa}x`)).toBeNull();
  });

  it.each([
    ["a node", "system:node:ip-10-0-0-1"],
    ["a user", "alice@example.com"],
    ["a SPIFFE ID", "spiffe://east.example/ns/shop/sa/web"],
    ["no name", "system:serviceaccount:shop"],
    ["an empty name", "system:serviceaccount:shop:"],
    ["an empty namespace", "system:serviceaccount::web"],
    ["an extra part", "system:serviceaccount:shop:web:extra"],
    ["an upper-case namespace", "system:serviceaccount:Shop:web"],
    ["an upper-case name", "system:serviceaccount:shop:Web"],
    ["a dot in the namespace", "system:serviceaccount:shop.v2:web"],
    ["a slash in the name", "system:serviceaccount:shop:web/admin"],
    ["a leading dash", "system:serviceaccount:-shop:web"],
    ["a trailing dash", "system:serviceaccount:shop:web-"],
    ["the group prefix", "system:serviceaccounts:shop"],
    ["a prefix before it", "x:system:serviceaccount:shop:web"],
    ["a newline after it", "system:serviceaccount:shop:web\n"],
  ])("refuses %s", (_, sub) => {
    expect(serviceAccountIdentity("east.example", sub)).toBeNull();
  });
});

// ======================================================================== jwks.ts

describe("trust-bundle key sets", () => {
  let es: TestKey;
  let es2: TestKey;
  let x509: TestKey;
  let rs: TestKey;

  beforeAll(async () => {
    [es, es2, x509, rs] = await Promise.all([makeKey("ES256", "jwt-1"), makeKey("ES256", "jwt-2"), makeKey("ES256", "x509-1"), makeKey("RS256", "oidc-1")]);
  });

  const verify = (token: string, set: ReturnType<typeof svidKeySet>) => jwtVerify(token, set.getKey, { audience: "isthmus" });

  it("jose alone does not accept a use of 'jwt-svid' (why the use is stripped)", async () => {
    const token = await jwtSvid(es, "spiffe://td/a");
    await expect(jwtVerify(token, createLocalJWKSet(bundleOf(jwkEntry(es))) as never)).rejects.toBeInstanceOf(joseErrors.JWKSNoMatchingKey);
  });

  it("svidKeySet keeps the jwt-svid keys, strips their use, and jose then verifies with them", async () => {
    const set = svidKeySet(bundleOf(jwkEntry(es), jwkEntry(es2), jwkEntry(x509, "x509-svid")));
    expect(set.size).toBe(2);
    expect([...set.kids].sort()).toEqual(["jwt-1", "jwt-2"]);
    const { payload } = await verify(await jwtSvid(es, "spiffe://td/a"), set);
    expect(payload.sub).toBe("spiffe://td/a");
    expect((await verify(await jwtSvid(es2, "spiffe://td/b"), set)).payload.sub).toBe("spiffe://td/b");
  });

  it("x509-svid keys and keys of any other use never verify a JWT", async () => {
    const set = svidKeySet(bundleOf(jwkEntry(es), jwkEntry(x509, "x509-svid"), jwkEntry(es2, "sig"), jwkEntry(rs, null)));
    expect([...set.kids]).toEqual(["jwt-1"]);
    await expect(verify(await jwtSvid(x509, "spiffe://td/a"), set)).rejects.toBeInstanceOf(joseErrors.JWKSNoMatchingKey);
    await expect(verify(await jwtSvid(es2, "spiffe://td/a"), set)).rejects.toBeInstanceOf(joseErrors.JWKSNoMatchingKey);
    await expect(verify(await jwtSvid(rs, "spiffe://td/a"), set)).rejects.toBeInstanceOf(joseErrors.JWKSNoMatchingKey);
  });

  it("does not modify the bundle it was given", () => {
    const bundle = bundleOf(jwkEntry(es));
    const copy = structuredClone(bundle);
    svidKeySet(bundle);
    expect(bundle).toEqual(copy);
  });

  it("skips keys without a kid (or with an empty one): a kid is needed to select a key", async () => {
    const noKid = { ...jwkEntry(es2) };
    delete noKid.kid;
    const set = svidKeySet(bundleOf(noKid, jwkEntry(es2, "jwt-svid", { kid: "" }), jwkEntry(es), jwkEntry(es2, "jwt-svid", { kid: 7 })));
    expect(set.size).toBe(1);
    expect([...set.kids]).toEqual(["jwt-1"]);
    // A token naming no kid does not get the kid-less key either.
    await expect(verify(await jwtSvid(es2, "spiffe://td/a", { kid: null }), set)).rejects.toThrow();
  });

  it.each(["d", "p", "q", "dp", "dq", "qi", "k"])("refuses a bundle whose jwt-svid key carries the private member %s", (member) => {
    const leaked = { ...jwkEntry(es), [member]: "AAAA" };
    expect(() => svidKeySet(bundleOf(jwkEntry(es2), leaked))).toThrow(/private or symmetric/);
  });

  it("refuses a bundle carrying a real private key (the whole private JWK pasted in)", () => {
    expect(() => svidKeySet(bundleOf({ ...es.privateJwk, use: "jwt-svid" }))).toThrow(/private or symmetric/);
    expect(() => svidKeySet(bundleOf({ kty: "oct", kid: "hmac", use: "jwt-svid", k: "c2VjcmV0" }))).toThrow(/private or symmetric/);
  });

  it("refuses a bundle carrying private key material on any key, not only on the jwt-svid ones", () => {
    // The contract in src/identity/jwks.ts: "a bundle that carries any of them is refused rather than used".
    expect(() => svidKeySet(bundleOf(jwkEntry(es), { ...x509.privateJwk, use: "x509-svid" }))).toThrow(/private or symmetric/);
  });

  it("refuses what is not a JWK set, and sets of more than 64 keys", () => {
    for (const bad of [null, undefined, 42, "keys", {}, { keys: "x" }, { keys: {} }, []]) expect(() => svidKeySet(bad)).toThrow(/not a JWK set/);
    const many = bundleOf(...Array.from({ length: 65 }, (_, i) => jwkEntry(es, "jwt-svid", { kid: `k${i}` })));
    expect(() => svidKeySet(many)).toThrow(/more than 64/);
    expect(svidKeySet(bundleOf(...many.keys.slice(0, 64))).size).toBe(64);
  });

  it("ignores entries that are not JWK objects", () => {
    const set = svidKeySet({ keys: [null, 1, "x", { use: "jwt-svid", kid: "no-kty" }, jwkEntry(es)] });
    expect([...set.kids]).toEqual(["jwt-1"]);
  });

  it("an empty selection gives an empty set (the caller decides that it is an error)", () => {
    expect(svidKeySet(bundleOf(jwkEntry(x509, "x509-svid"))).size).toBe(0);
    expect(svidKeySet(bundleOf()).size).toBe(0);
  });

  it("oidcKeySet keeps signing keys (use sig or none) and drops encryption keys", async () => {
    const enc = await makeKey("RS256", "enc-1");
    const set = oidcKeySet(bundleOf(jwkEntry(rs, "sig"), jwkEntry(es, null), jwkEntry(enc, "enc"), jwkEntry(x509, "jwt-svid")));
    expect([...set.kids].sort()).toEqual(["jwt-1", "oidc-1"]);
    const token = await jwtSvid(rs, "system:serviceaccount:shop:web");
    expect((await jwtVerify(token, set.getKey, { audience: "isthmus" })).payload.sub).toBe("system:serviceaccount:shop:web");
    await expect(jwtVerify(await jwtSvid(enc, "x"), set.getKey)).rejects.toBeInstanceOf(joseErrors.JWKSNoMatchingKey);
  });

  it("oidcKeySet refuses private key material too", () => {
    expect(() => oidcKeySet(bundleOf({ ...rs.privateJwk, use: "sig" }))).toThrow(/private or symmetric/);
  });

  it("a key whose alg is pinned is not used for another alg", async () => {
    // An RSA key published for RS256 must not verify a PS256 signature made with the same key.
    const set = oidcKeySet(bundleOf(jwkEntry(rs, "sig")));
    const ps: TestKey = { ...rs, alg: "PS256", privateKey: (await importJWK({ ...rs.privateJwk, alg: "PS256" }, "PS256")) as CryptoKey };
    const token = await signRaw(headerFor(ps), claimsFor("x"), ps);
    await expect(jwtVerify(token, set.getKey)).rejects.toBeInstanceOf(joseErrors.JWKSNoMatchingKey);
  });
});

// ======================================================================== ttl-cache.ts

describe("TtlCache", () => {
  function clock(start = 1_000) {
    let t = start;
    return { now: () => t, advance: (ms: number) => void (t += ms) };
  }

  it("returns a value until its expiry, and nothing from the expiry on", () => {
    const c = clock();
    const cache = new TtlCache<string>(10, c.now);
    cache.set("a", "A", 1_500);
    expect(cache.get("a")).toBe("A");
    c.advance(499);
    expect(cache.get("a")).toBe("A");
    c.advance(1);
    expect(cache.get("a")).toBeUndefined();
    expect(cache.size).toBe(0); // an expired entry is dropped when looked up
  });

  it("ignores entries that are already expired when set", () => {
    const c = clock();
    const cache = new TtlCache<string>(10, c.now);
    cache.set("past", "x", 999);
    cache.set("now", "x", 1_000);
    expect(cache.get("past")).toBeUndefined();
    expect(cache.get("now")).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it("setting a key again replaces its value and expiry", () => {
    const c = clock();
    const cache = new TtlCache<string>(10, c.now);
    cache.set("a", "old", 2_000);
    cache.set("a", "new", 1_100);
    expect(cache.size).toBe(1);
    expect(cache.get("a")).toBe("new");
    c.advance(100);
    expect(cache.get("a")).toBeUndefined();
  });

  it("is bounded: the least recently used entry goes first", () => {
    const c = clock();
    const cache = new TtlCache<number>(3, c.now);
    cache.set("a", 1, 10_000);
    cache.set("b", 2, 10_000);
    cache.set("c", 3, 10_000);
    expect(cache.get("a")).toBe(1); // a is now the most recently used
    cache.set("d", 4, 10_000); // evicts b
    expect(cache.size).toBe(3);
    expect(cache.get("b")).toBeUndefined();
    expect([cache.get("a"), cache.get("c"), cache.get("d")]).toEqual([1, 3, 4]);
    cache.set("c", 30, 10_000); // re-set refreshes recency: order is now a, d, c
    cache.set("e", 5, 10_000); // evicts a
    expect(cache.get("a")).toBeUndefined();
    expect([cache.get("d"), cache.get("c"), cache.get("e")]).toEqual([4, 30, 5]);
  });

  it("re-inserts on a hit only above half full: an entry hit then is kept over older ones", () => {
    const cache = new TtlCache<number>(4);
    const later = Date.now() + 60_000;
    cache.set("a", 1, later);
    cache.set("b", 2, later);
    expect(cache.get("a")).toBe(1); // 2 of 4: no re-insertion, a stays oldest
    cache.set("c", 3, later);
    cache.set("d", 4, later);
    cache.set("e", 5, later); // evicts a, the least recently set
    expect(cache.get("a")).toBeUndefined();
    expect(cache.get("b")).toBe(2); // 4 of 4: b becomes the most recently used
    cache.set("f", 6, later); // evicts c, not b
    expect(cache.get("c")).toBeUndefined();
    expect([cache.get("b"), cache.get("d"), cache.get("e"), cache.get("f")]).toEqual([2, 4, 5, 6]);
  });

  it("a flood of distinct keys never grows it past its bound", () => {
    const cache = new TtlCache<number>(100);
    for (let i = 0; i < 10_000; i++) cache.set(`k${i}`, i, Date.now() + 60_000);
    expect(cache.size).toBe(100);
    expect(cache.get("k9999")).toBe(9999);
    expect(cache.get("k9899")).toBeUndefined();
  });

  it("clear drops everything", () => {
    const cache = new TtlCache<number>(10);
    cache.set("a", 1, Date.now() + 60_000);
    cache.set("b", 2, Date.now() + 60_000);
    cache.clear();
    expect(cache.size).toBe(0);
    expect(cache.get("a")).toBeUndefined();
  });
});
