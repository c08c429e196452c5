import { describe, it, expect } from "vitest";
import { parseCluster, parseRoute } from "../../src/config/validate.ts";
import { DEFAULT_REQUEST_TIMEOUT_MS, compileCluster, compileTable, sortByPrecedence } from "../../src/routing/compile.ts";
import { findHostEntry, matchRequest, mismatch, normalizeHost, prefixMatches, type RequestFacts } from "../../src/routing/match.ts";
import type { CompiledMatch, RoutingTable } from "../../src/routing/table.ts";
import type { StoredCluster, StoredRoute } from "../../src/store/types.ts";

// ------------------------------------------------------------------ helpers

type Doc = Record<string, unknown>;
const AT = "2025-01-01T00:00:00.000Z";

const storedCluster = (name: string, endpoint = `https://gw.${name}.example:4143`): StoredCluster => ({
  name,
  spec: parseCluster({ endpoint, trustDomain: `${name}.example` }),
  updatedAt: AT,
});

const storedRoute = (name: string, spec: Doc, revision = 1): StoredRoute => ({ name, revision, spec: parseRoute(spec), updatedAt: AT });

const be = (o: Doc = {}): Doc => ({ cluster: "east", service: "checkout.shop.svc.cluster.local", ...o });

/** A route of one rule with the given matches (none: the default PathPrefix "/"), optionally on hostnames. */
const simple = (name: string, matches?: Doc[], hostnames?: string[]): StoredRoute =>
  storedRoute(name, { ...(hostnames ? { hostnames } : {}), rules: [{ ...(matches ? { matches } : {}), backendRefs: [be()] }] });

const CLUSTERS = [storedCluster("east"), storedCluster("west")];
const build = (routes: StoredRoute[], clusters: StoredCluster[] = CLUSTERS): RoutingTable => compileTable({ version: 7, clusters, routes }, new Date(AT));

interface Req {
  host?: string;
  path?: string;
  method?: string;
  /** Lower-case header names, as RequestFacts promises to look them up. */
  headers?: Record<string, string>;
  query?: Record<string, string>;
}

/** RequestFacts over plain objects; header/query lookups are exact, so case folding must happen in the table. */
const facts = (r: Req = {}): RequestFacts => ({
  host: r.host ?? "shop.example",
  path: r.path ?? "/",
  method: r.method ?? "GET",
  header: (name) => r.headers?.[name],
  query: (name) => r.query?.[name],
});

/** "route/rule#match" of the winning match, or null. */
function hit(table: RoutingTable, r: Req = {}): string | null {
  const m = matchRequest(table, facts(r));
  return m === null ? null : `${m.rule.route}/${m.rule.name}#${m.index}`;
}

// ------------------------------------------------------------------ hosts

describe("normalizeHost", () => {
  it.each([
    ["api.example.com", "api.example.com"],
    ["API.Example.COM", "api.example.com"],
    ["api.example.com:8443", "api.example.com"],
    ["api.example.com.", "api.example.com"],
    ["API.EXAMPLE.COM.:443", "api.example.com"],
    ["  api.example.com  ", "api.example.com"],
    ["[::1]:8080", "[::1]"],
    ["[FE80::1]", "[fe80::1]"],
    ["10.0.0.1:80", "10.0.0.1"],
    ["", ""],
  ])("%j -> %j", (raw, want) => {
    expect(normalizeHost(raw)).toBe(want);
  });

  it("maps a missing Host to the empty string", () => {
    expect(normalizeHost(null)).toBe("");
    expect(normalizeHost(undefined)).toBe("");
  });
});

describe("host lookup", () => {
  const table = build([
    simple("exact", undefined, ["api.example.com"]),
    simple("wild", undefined, ["*.example.com"]),
    simple("deeper", undefined, ["*.eu.example.com"]),
    simple("any"),
  ]);

  it("exact host beats wildcard beats catch-all (routes without hostnames)", () => {
    expect(hit(table, { host: "api.example.com" })).toBe("exact/rule-0#0");
    expect(hit(table, { host: "web.example.com" })).toBe("wild/rule-0#0");
    expect(hit(table, { host: "shop.other.org" })).toBe("any/rule-0#0");
    expect(hit(table, { host: "" })).toBe("any/rule-0#0");
  });

  it("'*.example.com' matches one or more labels before the suffix, not the bare domain", () => {
    const t = build([simple("wild", undefined, ["*.example.com"])]);
    expect(hit(t, { host: "a.example.com" })).toBe("wild/rule-0#0");
    expect(hit(t, { host: "a.b.example.com" })).toBe("wild/rule-0#0");
    expect(hit(t, { host: "example.com" })).toBeNull();
    expect(hit(t, { host: "badexample.com" })).toBeNull();
    expect(hit(t, { host: "a.example.com.evil" })).toBeNull();
    expect(findHostEntry(t, "example.com")).toBeNull();
    expect(findHostEntry(t, ".example.com")).toBeNull();
  });

  it("the longest wildcard suffix wins", () => {
    expect(hit(table, { host: "paris.eu.example.com" })).toBe("deeper/rule-0#0");
    expect(hit(table, { host: "a.paris.eu.example.com" })).toBe("deeper/rule-0#0");
    expect(hit(table, { host: "eu.example.com" })).toBe("wild/rule-0#0");
  });

  it("matches a Host header with upper case, a port and a trailing dot once normalised", () => {
    expect(hit(table, { host: normalizeHost("API.Example.COM.:8443") })).toBe("exact/rule-0#0");
    expect(hit(table, { host: normalizeHost("Web.EXAMPLE.com:80") })).toBe("wild/rule-0#0");
  });

  it("matches route hostnames written in upper case (lower-cased at validation)", () => {
    const t = build([simple("upper", undefined, ["Checkout.SHOP"])]);
    expect(hit(t, { host: "checkout.shop" })).toBe("upper/rule-0#0");
  });

  it("labels host entries as written and keys wildcards by their dotted suffix", () => {
    expect(findHostEntry(table, "api.example.com")?.hostname).toBe("api.example.com");
    expect(findHostEntry(table, "x.example.com")?.hostname).toBe("*.example.com");
    expect(findHostEntry(table, "nowhere")?.hostname).toBe("*");
    expect([...table.wildcard.keys()].sort()).toEqual([".eu.example.com", ".example.com"]);
    expect([...table.exact.keys()]).toEqual(["api.example.com"]);
  });

  it("returns null without any route for the host", () => {
    const t = build([simple("exact", undefined, ["api.example.com"])]);
    expect(t.catchAll).toBeNull();
    expect(findHostEntry(t, "web.example.com")).toBeNull();
    expect(hit(t, { host: "web.example.com" })).toBeNull();
  });

  it("merges the matches of every route naming the same hostname", () => {
    const t = build([simple("a", [{ path: { value: "/a" } }], ["shop.example"]), simple("b", [{ path: { value: "/b" } }], ["shop.example", "*.shop.example"])]);
    expect(hit(t, { host: "shop.example", path: "/a" })).toBe("a/rule-0#0");
    expect(hit(t, { host: "shop.example", path: "/b" })).toBe("b/rule-0#0");
    expect(hit(t, { host: "x.shop.example", path: "/b" })).toBe("b/rule-0#0");
    expect(hit(t, { host: "x.shop.example", path: "/a" })).toBeNull();
  });
});

// ------------------------------------------------------------------ paths

describe("prefixMatches (PathPrefix matches whole path elements)", () => {
  it.each([
    ["/foo", "/foo", true],
    ["/foo", "/foo/", true],
    ["/foo", "/foo/bar", true],
    ["/foo", "/foo/bar/baz", true],
    ["/foo", "/foobar", false],
    ["/foo", "/fo", false],
    ["/foo", "/", false],
    ["/foo", "/bar/foo", false],
    ["/foo/", "/foo", true],
    ["/foo/", "/foo/", true],
    ["/foo/", "/foo/bar", true],
    ["/foo/", "/foobar", false],
    ["/foo/bar", "/foo/bar/x", true],
    ["/foo/bar", "/foo/barx", false],
    ["/foo/bar", "/foo", false],
    ["/", "/", true],
    ["/", "/anything/at/all", true],
  ])("prefix %j, path %j -> %s", (prefix, path, want) => {
    expect(prefixMatches(prefix, path)).toBe(want);
  });
});

describe("path matching through the table", () => {
  const table = build([simple("prefix", [{ path: { value: "/foo" } }]), simple("exact", [{ path: { type: "Exact", value: "/exact" } }])]);

  it("PathPrefix /foo matches /foo, /foo/ and /foo/bar but not /foobar", () => {
    for (const path of ["/foo", "/foo/", "/foo/bar"]) expect(hit(table, { path })).toBe("prefix/rule-0#0");
    expect(hit(table, { path: "/foobar" })).toBeNull();
  });

  it("Exact matches only the exact path", () => {
    expect(hit(table, { path: "/exact" })).toBe("exact/rule-0#0");
    expect(hit(table, { path: "/exact/" })).toBeNull();
    expect(hit(table, { path: "/exact/x" })).toBeNull();
    expect(hit(table, { path: "/Exact" })).toBeNull();
  });

  it("no fitting match gives null", () => {
    expect(hit(table, { path: "/" })).toBeNull();
    expect(hit(table, { path: "/bar" })).toBeNull();
  });

  it("a rule without matches is PathPrefix '/', and so is a match without a path", () => {
    const t = build([simple("default"), simple("method-only", [{ method: "DELETE" }])]);
    expect(hit(t, { path: "/any/thing" })).toBe("default/rule-0#0");
    expect(hit(t, { path: "/any/thing", method: "DELETE" })).toBe("method-only/rule-0#0");
    const m = t.catchAll?.matches.find((x) => x.rule.route === "method-only");
    expect([m?.pathType, m?.pathValue]).toEqual(["PathPrefix", "/"]);
  });
});

// ------------------------------------------------------------------ method, headers, query

describe("method, header and query matches", () => {
  const table = build([
    simple("post", [{ path: { value: "/orders" }, method: "POST" }]),
    simple("canary", [{ path: { value: "/cart" }, headers: [{ name: "X-Env", value: "canary" }] }]),
    simple("v2", [{ path: { value: "/search" }, queryParams: [{ name: "Version", value: "2" }] }]),
  ]);

  it("matches the method exactly", () => {
    expect(hit(table, { path: "/orders", method: "POST" })).toBe("post/rule-0#0");
    expect(hit(table, { path: "/orders", method: "GET" })).toBeNull();
    expect(hit(table, { path: "/orders", method: "post" })).toBeNull();
  });

  it("matches header names case-insensitively (the table lower-cases them) and values exactly", () => {
    const m = table.catchAll?.matches.find((x) => x.rule.route === "canary");
    expect(m?.headers).toEqual([["x-env", "canary"]]);
    expect(hit(table, { path: "/cart", headers: { "x-env": "canary" } })).toBe("canary/rule-0#0");
    expect(hit(table, { path: "/cart", headers: { "x-env": "Canary" } })).toBeNull();
    expect(hit(table, { path: "/cart", headers: { "x-env": "canary-2" } })).toBeNull();
    expect(hit(table, { path: "/cart" })).toBeNull();
  });

  it("matches query parameter names and values exactly", () => {
    expect(hit(table, { path: "/search", query: { Version: "2" } })).toBe("v2/rule-0#0");
    expect(hit(table, { path: "/search", query: { version: "2" } })).toBeNull();
    expect(hit(table, { path: "/search", query: { Version: "20" } })).toBeNull();
  });

  it("mismatch says why a match does not fit, and null when it does", () => {
    const matches = table.catchAll?.matches ?? [];
    const byRoute = (route: string): CompiledMatch => matches.find((x) => x.rule.route === route) as CompiledMatch;
    expect(mismatch(byRoute("post"), facts({ path: "/orders", method: "POST" }))).toBeNull();
    expect(mismatch(byRoute("post"), facts({ path: "/other", method: "POST" }))).toContain("/orders");
    expect(mismatch(byRoute("post"), facts({ path: "/orders", method: "GET" }))).toContain("method");
    expect(mismatch(byRoute("canary"), facts({ path: "/cart" }))).toContain("x-env");
    expect(mismatch(byRoute("v2"), facts({ path: "/search" }))).toContain("Version");
    const exact = build([simple("e", [{ path: { type: "Exact", value: "/e" } }])]).catchAll?.matches[0] as CompiledMatch;
    expect(mismatch(exact, facts({ path: "/e/" }))).toContain("exactly /e");
  });
});

// ------------------------------------------------------------------ precedence

describe("Gateway API precedence", () => {
  it("Exact beats PathPrefix, even a PathPrefix of the same value from an earlier route", () => {
    const t = build([simple("a-prefix", [{ path: { value: "/api/users" } }]), simple("z-exact", [{ path: { type: "Exact", value: "/api/users" } }])]);
    expect(hit(t, { path: "/api/users" })).toBe("z-exact/rule-0#0");
    expect(hit(t, { path: "/api/users/1" })).toBe("a-prefix/rule-0#0");
  });

  it("Exact beats a longer PathPrefix", () => {
    const t = build([simple("a-prefix", [{ path: { value: "/api/users/list" } }]), simple("z-exact", [{ path: { type: "Exact", value: "/api/users/list" } }, { path: { type: "Exact", value: "/x" } }])]);
    expect(t.catchAll?.matches.map((m) => `${m.pathType}:${m.pathValue}`)).toEqual(["Exact:/api/users/list", "Exact:/x", "PathPrefix:/api/users/list"]);
  });

  it("the longer prefix comes first", () => {
    const t = build([simple("a-short", [{ path: { value: "/api" } }]), simple("z-long", [{ path: { value: "/api/v2" } }])]);
    expect(hit(t, { path: "/api/v2/items" })).toBe("z-long/rule-0#0");
    expect(hit(t, { path: "/api/v1/items" })).toBe("a-short/rule-0#0");
  });

  it("a longer prefix beats a method match", () => {
    const t = build([simple("a-method", [{ path: { value: "/api" }, method: "GET" }]), simple("z-longer", [{ path: { value: "/api/v1" } }])]);
    expect(hit(t, { path: "/api/v1", method: "GET" })).toBe("z-longer/rule-0#0");
  });

  it("a method match beats none", () => {
    const t = build([simple("a-any", [{ path: { value: "/api" } }]), simple("z-post", [{ path: { value: "/api" }, method: "POST" }])]);
    expect(hit(t, { path: "/api", method: "POST" })).toBe("z-post/rule-0#0");
    expect(hit(t, { path: "/api", method: "GET" })).toBe("a-any/rule-0#0");
  });

  it("a method match beats more header matches", () => {
    const t = build([
      simple("a-headers", [{ path: { value: "/api" }, headers: [{ name: "a", value: "1" }, { name: "b", value: "2" }] }]),
      simple("z-method", [{ path: { value: "/api" }, method: "GET" }]),
    ]);
    expect(hit(t, { path: "/api", method: "GET", headers: { a: "1", b: "2" } })).toBe("z-method/rule-0#0");
  });

  it("more header matches come first", () => {
    const t = build([
      simple("a-one", [{ path: { value: "/api" }, headers: [{ name: "x-env", value: "canary" }] }]),
      simple("z-two", [{ path: { value: "/api" }, headers: [{ name: "x-env", value: "canary" }, { name: "x-tier", value: "gold" }] }]),
    ]);
    expect(hit(t, { path: "/api", headers: { "x-env": "canary", "x-tier": "gold" } })).toBe("z-two/rule-0#0");
    expect(hit(t, { path: "/api", headers: { "x-env": "canary" } })).toBe("a-one/rule-0#0");
  });

  it("more header matches beat more query matches", () => {
    const t = build([
      simple("a-query", [{ path: { value: "/api" }, queryParams: [{ name: "a", value: "1" }, { name: "b", value: "2" }] }]),
      simple("z-header", [{ path: { value: "/api" }, headers: [{ name: "h", value: "1" }] }]),
    ]);
    expect(hit(t, { path: "/api", headers: { h: "1" }, query: { a: "1", b: "2" } })).toBe("z-header/rule-0#0");
  });

  it("more query matches come first", () => {
    const t = build([
      simple("a-one", [{ path: { value: "/api" }, queryParams: [{ name: "v", value: "2" }] }]),
      simple("z-two", [{ path: { value: "/api" }, queryParams: [{ name: "v", value: "2" }, { name: "beta", value: "1" }] }]),
    ]);
    expect(hit(t, { path: "/api", query: { v: "2", beta: "1" } })).toBe("z-two/rule-0#0");
    expect(hit(t, { path: "/api", query: { v: "2" } })).toBe("a-one/rule-0#0");
  });

  it("then route name order, whatever order the routes come in", () => {
    const routes = [simple("charlie"), simple("alpha"), simple("bravo")];
    expect(hit(build(routes), { path: "/x" })).toBe("alpha/rule-0#0");
    expect(hit(build([...routes].reverse()), { path: "/x" })).toBe("alpha/rule-0#0");
    expect(build(routes).catchAll?.matches.map((m) => m.rule.route)).toEqual(["alpha", "bravo", "charlie"]);
  });

  it("then rule order and match order within a route", () => {
    const t = build([
      storedRoute("r", {
        rules: [
          { name: "first", matches: [{ path: { value: "/a" } }, { path: { value: "/b" } }], backendRefs: [be()] },
          { name: "second", matches: [{ path: { value: "/b" } }, { path: { value: "/a" } }], backendRefs: [be()] },
        ],
      }),
    ]);
    expect(hit(t, { path: "/a" })).toBe("r/first#0");
    expect(hit(t, { path: "/b" })).toBe("r/first#1");
  });

  it("sortByPrecedence is a stable sort that leaves its input alone", () => {
    const t = build([simple("a", [{ path: { value: "/" } }, { path: { type: "Exact", value: "/" } }])]);
    const input = [...(t.catchAll?.matches ?? [])].reverse();
    const copy = [...input];
    const sorted = sortByPrecedence(input);
    expect(input).toEqual(copy);
    expect(sorted.map((m) => m.pathType)).toEqual(["Exact", "PathPrefix"]);
  });
});

// ------------------------------------------------------------------ compiled rules

describe("compileTable", () => {
  it("records version, build time, routes and clusters", () => {
    const t = build([storedRoute("checkout", { hostnames: ["checkout.shop"], rules: [{ backendRefs: [be()] }] }, 12)]);
    expect(t.version).toBe(7);
    expect(t.builtAt).toBe(AT);
    expect([...t.routes]).toEqual([["checkout", { revision: 12, hostnames: ["checkout.shop"] }]]);
    expect([...t.clusters.keys()]).toEqual(["east", "west"]);
    expect(t.warnings).toEqual([]);
    const rule = t.exact.get("checkout.shop")?.matches[0]?.rule;
    expect([rule?.route, rule?.revision]).toEqual(["checkout", 12]);
  });

  it("an empty input compiles to an empty table", () => {
    const t = compileTable({ version: 0, clusters: [], routes: [] });
    expect([t.exact.size, t.wildcard.size, t.catchAll, t.routes.size, t.clusters.size, t.warnings]).toEqual([0, 0, null, 0, 0, []]);
  });

  it("compiles a backend whose cluster is not registered with target null and a warning", () => {
    const t = build([storedRoute("checkout", { rules: [{ name: "main", backendRefs: [be(), be({ cluster: "north" })] }] })]);
    const rule = t.catchAll?.matches[0]?.rule;
    expect(rule?.backends.map((b) => b.target?.name ?? null)).toEqual(["east", null]);
    expect(t.warnings).toHaveLength(1);
    expect(t.warnings[0]).toContain("checkout");
    expect(t.warnings[0]).toContain("main");
    expect(t.warnings[0]).toContain('"north"');
  });

  it("links backends to their compiled cluster, whose base drops a trailing slash", () => {
    const t = build([simple("r")], [storedCluster("east", "https://gw.east.example/base/")]);
    expect(t.catchAll?.matches[0]?.rule.backends[0]?.target).toBe(t.clusters.get("east"));
    expect(t.clusters.get("east")?.base).toBe("https://gw.east.example/base");
    expect(t.clusters.get("east")?.trustDomain).toBe("east.example");
    expect(compileCluster("x", parseCluster({ endpoint: "https://gw.x.example:4143", trustDomain: "x" })).base).toBe("https://gw.x.example:4143");
    expect(compileCluster("x", parseCluster({ endpoint: "http://gw.x.example:80/", trustDomain: "x" })).base).toBe("http://gw.x.example");
  });

  const ruleWith = (rule: Doc) => build([storedRoute("r", { rules: [{ backendRefs: [be()], ...rule }] })]).catchAll?.matches[0]?.rule;

  it.each([
    ["no timeouts: the default request timeout for both", undefined, DEFAULT_REQUEST_TIMEOUT_MS, DEFAULT_REQUEST_TIMEOUT_MS],
    ["request and backendRequest as given", { request: "2s", backendRequest: "800ms" }, 2_000, 800],
    ["backendRequest defaults to request", { request: "3s" }, 3_000, 3_000],
    ["backendRequest capped by the default request timeout", { backendRequest: "30s" }, DEFAULT_REQUEST_TIMEOUT_MS, DEFAULT_REQUEST_TIMEOUT_MS],
    ["backendRequest below the default", { backendRequest: "5s" }, DEFAULT_REQUEST_TIMEOUT_MS, 5_000],
    ['request "0s" maps to one hour', { request: "0s" }, 3_600_000, 3_600_000],
    ['request "0s" with a backendRequest', { request: "0s", backendRequest: "5s" }, 3_600_000, 5_000],
    ['backendRequest "0s" is capped by request', { request: "1s", backendRequest: "0s" }, 1_000, 1_000],
  ])("timeouts: %s", (_name, timeouts, request, backend) => {
    const rule = ruleWith(timeouts === undefined ? {} : { timeouts });
    expect(DEFAULT_REQUEST_TIMEOUT_MS).toBe(15_000);
    expect([rule?.requestTimeoutMs, rule?.backendTimeoutMs]).toEqual([request, backend]);
  });

  it("authority is service or service:port, with port 80 omitted; id is cluster/service:port", () => {
    const rule = ruleWith({
      backendRefs: [be({ service: "a.shop" }), be({ service: "b.shop", port: 80 }), be({ service: "c.shop", port: 8080 }), be({ cluster: "west", service: "d.shop", port: 443 })],
    });
    expect(rule?.backends.map((b) => b.authority)).toEqual(["a.shop", "b.shop", "c.shop:8080", "d.shop:443"]);
    expect(rule?.backends.map((b) => b.id)).toEqual(["east/a.shop:", "east/b.shop:80", "east/c.shop:8080", "west/d.shop:443"]);
    expect(rule?.backends.map((b) => [b.cluster, b.service, b.port])).toEqual([
      ["east", "a.shop", undefined],
      ["east", "b.shop", 80],
      ["east", "c.shop", 8080],
      ["west", "d.shop", 443],
    ]);
  });

  it("names rules without a name rule-<index>", () => {
    const t = build([
      storedRoute("r", {
        rules: [
          { matches: [{ path: { value: "/a" } }], backendRefs: [be()] },
          { name: "canary", matches: [{ path: { value: "/b" } }], backendRefs: [be()] },
          { matches: [{ path: { value: "/c" } }], backendRefs: [be()] },
        ],
      }),
    ]);
    expect(hit(t, { path: "/a" })).toBe("r/rule-0#0");
    expect(hit(t, { path: "/b" })).toBe("r/canary#0");
    expect(hit(t, { path: "/c" })).toBe("r/rule-2#0");
    expect(matchRequest(t, facts({ path: "/c" }))?.rule.index).toBe(2);
  });

  it("carries weights, total weight, session keys (header names lower-cased) and authorization", () => {
    const t = build([
      storedRoute("checkout", {
        authorization: { identities: ["spiffe://east.example/ns/shop/sa/web"] },
        rules: [
          {
            backendRefs: [be({ weight: 90 }), be({ cluster: "west", weight: 10 })],
            sessionPersistence: { key: [{ header: "X-User-Id" }, { cookie: "UID" }, { jwtClaim: "sub" }] },
          },
          { backendRefs: [be({ weight: 0 }), be({ cluster: "west" })] },
        ],
      }),
    ]);
    const [sticky, plain] = [0, 1].map((i) => t.catchAll?.matches.find((m) => m.rule.index === i)?.rule);
    expect(sticky?.backends.map((b) => b.weight)).toEqual([90, 10]);
    expect(sticky?.totalWeight).toBe(100);
    expect(sticky?.sessionKeys).toEqual([{ header: "x-user-id" }, { cookie: "UID" }, { jwtClaim: "sub" }]);
    expect(sticky?.sticky).not.toBeNull();
    expect(sticky?.authorization).toEqual({ identities: ["spiffe://east.example/ns/shop/sa/web"] });
    expect(plain?.totalWeight).toBe(1);
    expect(plain?.sessionKeys).toEqual([]);
    expect(plain?.sticky).toBeNull();
  });

  it("shares one compiled rule between all its matches and hostnames", () => {
    const t = build([storedRoute("r", { hostnames: ["a.example", "*.b.example"], rules: [{ matches: [{ path: { value: "/x" } }, { path: { value: "/y" } }], backendRefs: [be()] }] })]);
    const rules = new Set([...(t.exact.get("a.example")?.matches ?? []), ...(t.wildcard.get(".b.example")?.matches ?? [])].map((m) => m.rule));
    expect(rules.size).toBe(1);
    expect(t.exact.get("a.example")?.matches.map((m) => m.index)).toEqual([0, 1]);
  });
});
