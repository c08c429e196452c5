import { describe, it, expect } from "vitest";
import { ValidationError, formatPath, type FieldError } from "../../src/config/errors.ts";
import { checkRouteReferences, parseCluster, parseName, parseRoute } from "../../src/config/validate.ts";

// ------------------------------------------------------------------ helpers

type Doc = Record<string, unknown>;

/** The example route of SPEC.md ("Admin API" / Route), fresh on every call. */
function specRoute(): Doc {
  return {
    hostnames: ["checkout.shop"],
    authorization: { identities: ["spiffe://east.example/ns/shop/sa/web"] },
    rules: [
      {
        name: "default",
        matches: [{ path: { type: "PathPrefix", value: "/" } }],
        backendRefs: [
          { cluster: "east", service: "checkout.shop.svc.cluster.local", port: 8080, weight: 90 },
          { cluster: "west", service: "checkout.shop.svc.cluster.local", port: 8080, weight: 10 },
        ],
        timeouts: { request: "2s", backendRequest: "800ms" },
        retry: { attempts: 2, codes: [502, 503, 504], backoff: "25ms" },
        sessionPersistence: { key: [{ header: "x-user-id" }, { cookie: "uid" }, { jwtClaim: "sub" }] },
      },
    ],
  };
}

/** A valid backend, with overrides. */
const be = (o: Doc = {}): Doc => ({ cluster: "east", service: "checkout.shop.svc.cluster.local", ...o });
/** A second valid backend (distinct from `be()`), with overrides: errors in it land on `backendRefs[1]`. */
const be2 = (o: Doc = {}): Doc => ({ cluster: "west", service: "checkout.shop.svc.cluster.local", ...o });
/** A route with one rule of two valid backends; `rule` overrides fields of that rule, `top` fields of the route. */
const route = (rule: Doc = {}, top: Doc = {}): Doc => ({ rules: [{ backendRefs: [be(), be2()], ...rule }], ...top });
/** A route whose single match is `match`. */
const withMatch = (match: Doc): Doc => route({ matches: [match] });
/** A valid cluster, with overrides. */
const cluster = (o: Doc = {}): Doc => ({ endpoint: "https://gw.east.example:4143", trustDomain: "east.example", ...o });

/** Runs `fn`, which must throw a ValidationError, and returns its field errors. */
function errorsOf(fn: () => unknown): FieldError[] {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect(thrown, "expected a ValidationError").toBeInstanceOf(ValidationError);
  return (thrown as ValidationError).errors;
}

const pathsOf = (errors: FieldError[]): string[] => errors.map((e) => e.path).sort();

// ------------------------------------------------------------------ valid documents

describe("parseRoute: valid documents", () => {
  it("accepts SPEC.md's example route unchanged (every field already explicit)", () => {
    expect(parseRoute(specRoute())).toEqual(specRoute());
  });

  it("applies defaults: weight 1, matches PathPrefix '/', hostnames []", () => {
    const out = parseRoute({ rules: [{ backendRefs: [{ cluster: "east", service: "checkout.shop" }] }] });
    expect(out).toEqual({
      hostnames: [],
      rules: [
        {
          matches: [{ path: { type: "PathPrefix", value: "/" } }],
          backendRefs: [{ cluster: "east", service: "checkout.shop", weight: 1 }],
        },
      ],
    });
  });

  it("defaults inside matches: an empty path is PathPrefix '/', header and query types are Exact", () => {
    const out = parseRoute(
      route({
        matches: [{ path: {} }, { path: { value: "/api" } }, { headers: [{ name: "x-env", value: "canary" }], queryParams: [{ name: "v", value: "2" }] }],
      }),
    );
    expect(out.rules[0]?.matches).toEqual([
      { path: { type: "PathPrefix", value: "/" } },
      { path: { type: "PathPrefix", value: "/api" } },
      { headers: [{ type: "Exact", name: "x-env", value: "canary" }], queryParams: [{ type: "Exact", name: "v", value: "2" }] },
    ]);
  });

  it("lower-cases hostnames and accepts a leading wildcard label", () => {
    const out = parseRoute(route({}, { hostnames: ["Checkout.SHOP", "*.Example.com", "api.example.com"] }));
    expect(out.hostnames).toEqual(["checkout.shop", "*.example.com", "api.example.com"]);
  });

  it("accepts weight 0 and 1000, port 1 and 65535, retry attempts 0 and 10, codes 400 and 599", () => {
    const out = parseRoute(
      route({
        backendRefs: [be({ weight: 0, port: 1 }), be2({ weight: 1000, port: 65535 })],
        retry: { attempts: 10, codes: [400, 599] },
      }),
    );
    expect(out.rules[0]?.backendRefs.map((b) => [b.weight, b.port])).toEqual([
      [0, 1],
      [1000, 65535],
    ]);
    expect(parseRoute(route({ retry: { attempts: 0 } })).rules[0]?.retry?.attempts).toBe(0);
  });

  it("accepts the same service in two clusters and on two ports (not duplicates)", () => {
    const doc = route({ backendRefs: [be({ port: 8080 }), be({ port: 9090 }), be2({ port: 8080 })] });
    expect(parseRoute(doc).rules[0]?.backendRefs).toHaveLength(3);
  });

  it("accepts authorization with unauthenticated: true, and SPIFFE identity patterns", () => {
    expect(parseRoute(route({}, { authorization: { unauthenticated: true } })).authorization).toEqual({ unauthenticated: true });
    const ids = ["spiffe://west.example/*", "spiffe://east.example/ns/shop/sa/web"];
    expect(parseRoute(route({}, { authorization: { identities: ids } })).authorization).toEqual({ identities: ids });
  });

  it("accepts timeouts at the one-hour limit and a backendRequest equal to request", () => {
    expect(parseRoute(route({ timeouts: { request: "1h", backendRequest: "1h" } })).rules[0]?.timeouts).toEqual({ request: "1h", backendRequest: "1h" });
    expect(parseRoute(route({ retry: { backoff: "1m" } })).rules[0]?.retry?.backoff).toBe("1m");
  });
});

describe("parseCluster: valid documents", () => {
  it("accepts SPEC.md's example cluster and defaults health.path to /ready", () => {
    const doc = {
      endpoint: "https://gw.east.example:4143",
      trustDomain: "east.example",
      bundle: { jwks: { keys: [{ kty: "EC", crv: "P-256", x: "x", y: "y", use: "jwt-svid" }] } },
      metrics: { remoteWrite: { url: "https://prometheus.east.example/api/v1/write" } },
      health: {},
    };
    expect(parseCluster(doc)).toEqual({ ...doc, health: { path: "/ready" } });
  });

  it("accepts each single bundle source, and kubernetes alongside one", () => {
    for (const bundle of [
      { url: "https://east.example/bundle.json" },
      { secretId: "isthmus/east-bundle" },
      { kubernetes: { issuer: "https://oidc.east.example", url: "https://oidc.east.example/keys" } },
      { kubernetes: { issuer: "https://oidc.east.example", jwks: { keys: [] } } },
      { secretId: "isthmus/east-bundle", kubernetes: { issuer: "https://oidc.east.example", url: "https://oidc.east.example/keys" } },
    ]) {
      expect(parseCluster(cluster({ bundle })).bundle).toEqual(bundle);
    }
  });

  it("accepts an endpoint with a base path and plain http", () => {
    expect(parseCluster(cluster({ endpoint: "http://gw.east.example/base/" })).endpoint).toBe("http://gw.east.example/base/");
  });
});

// ------------------------------------------------------------------ invalid documents

interface Case {
  name: string;
  kind: "route" | "cluster";
  doc: unknown;
  paths: string[];
  /** A fragment the (first) message must contain, where the wording matters to the user. */
  message?: string;
}

const r = (name: string, doc: unknown, paths: string[], message?: string): Case => ({ name, kind: "route", doc, paths, message });
const c = (name: string, doc: unknown, paths: string[], message?: string): Case => ({ name, kind: "cluster", doc, paths, message });

const seventeen = <T>(f: (i: number) => T): T[] => Array.from({ length: 17 }, (_, i) => f(i));

const invalid: Case[] = [
  // --- wrong types / shape
  r("body is a number", 42, ["body"]),
  r("body is null", null, ["body"]),
  r("body is an array", [route()], ["body"]),
  r("rules missing", { hostnames: ["a.example"] }, ["rules"]),
  r("rules empty", { rules: [] }, ["rules"], "at least one rule"),
  r("17 rules", { rules: seventeen(() => ({ backendRefs: [be()] })) }, ["rules"], "at most 16"),
  r("hostnames is a string", route({}, { hostnames: "a.example" }), ["hostnames"]),
  r("hostname is a number", route({}, { hostnames: ["a.example", 7] }), ["hostnames[1]"]),
  r("17 hostnames", route({}, { hostnames: seventeen((i) => `h${i}.example`) }), ["hostnames"]),
  r("backendRefs missing", { rules: [{ name: "a" }] }, ["rules[0].backendRefs"]),
  r("rule is a string", { rules: ["default"] }, ["rules[0]"]),
  // --- weights
  r("weight is a string", route({ backendRefs: [be(), be2({ weight: "5" })] }), ["rules[0].backendRefs[1].weight"], "integer"),
  r("negative weight", route({ backendRefs: [be(), be2({ weight: -1 })] }), ["rules[0].backendRefs[1].weight"], "0..1000"),
  r("weight 1001", route({ backendRefs: [be(), be2({ weight: 1001 })] }), ["rules[0].backendRefs[1].weight"], "0..1000"),
  r("non-integer weight", route({ backendRefs: [be(), be2({ weight: 2.5 })] }), ["rules[0].backendRefs[1].weight"], "integer"),
  // --- backends
  r("empty backendRefs", route({ backendRefs: [] }), ["rules[0].backendRefs"], "at least one backend"),
  r("17 backends", route({ backendRefs: seventeen((i) => be({ service: `s${i}.shop` })) }), ["rules[0].backendRefs"], "at most 16"),
  r("duplicate backends", route({ backendRefs: [be2(), be({ weight: 5 }), be()] }), ["rules[0].backendRefs[2]"], "duplicate backend"),
  r("duplicate backends with the same port", route({ backendRefs: [be({ port: 8080 }), be({ port: 8080, weight: 3 })] }), ["rules[0].backendRefs[1]"]),
  r("port 0", route({ backendRefs: [be(), be2({ port: 0 })] }), ["rules[0].backendRefs[1].port"], "1..65535"),
  r("port 70000", route({ backendRefs: [be(), be2({ port: 70000 })] }), ["rules[0].backendRefs[1].port"], "1..65535"),
  r("port as a string", route({ backendRefs: [be(), be2({ port: "8080" })] }), ["rules[0].backendRefs[1].port"]),
  r("service not a DNS name", route({ backendRefs: [be(), be2({ service: "Checkout_Svc" })] }), ["rules[0].backendRefs[1].service"]),
  r("cluster name not a DNS label", route({ backendRefs: [be(), be2({ cluster: "West.1" })] }), ["rules[0].backendRefs[1].cluster"]),
  // --- strict objects
  r("unknown field at top level", route({}, { hostname: ["a.example"] }), ["hostname"], 'unknown field "hostname"'),
  r("unknown field in a rule", route({ timeout: { request: "2s" } }), ["rules[0].timeout"], 'unknown field "timeout"'),
  r("unknown field in a backend", route({ backendRefs: [be(), be2({ wieght: 5 })] }), ["rules[0].backendRefs[1].wieght"], 'unknown field "wieght"'),
  r("unknown field in a path match", withMatch({ path: { type: "Exact", value: "/", caseInsensitive: true } }), ["rules[0].matches[0].path.caseInsensitive"]),
  r("two unknown fields in one object", route({ backendRefs: [be({ wieght: 5, prot: 80 }), be2()] }), ["rules[0].backendRefs[0].prot", "rules[0].backendRefs[0].wieght"]),
  // A key that is not an identifier is quoted, also as the first segment.
  r("unknown field with an odd name", route({}, { "my field": 1 }), ['["my field"]']),
  r("unknown field in timeouts", route({ timeouts: { idle: "5s" } }), ["rules[0].timeouts.idle"]),
  // --- durations
  r("bad request duration", route({ timeouts: { request: "2 seconds" } }), ["rules[0].timeouts.request"], "is not a duration"),
  r("fractional duration", route({ timeouts: { backendRequest: "1.5s" } }), ["rules[0].timeouts.backendRequest"]),
  r("request longer than an hour", route({ timeouts: { request: "61m" } }), ["rules[0].timeouts.request"], "at most 3600s"),
  r("backoff longer than a minute", route({ retry: { backoff: "61s" } }), ["rules[0].retry.backoff"], "at most 60s"),
  r("backendRequest longer than request", route({ timeouts: { request: "1s", backendRequest: "1s1ms" } }), ["rules[0].timeouts.backendRequest"], "longer than request"),
  // --- path matches
  r("path without leading slash", withMatch({ path: { value: "api" } }), ["rules[0].matches[0].path.value"], "start with '/'"),
  r("path with //", withMatch({ path: { value: "/api//v1" } }), ["rules[0].matches[0].path.value"]),
  r("path with /../", withMatch({ path: { value: "/api/../admin" } }), ["rules[0].matches[0].path.value"]),
  r("path ending in /..", withMatch({ path: { type: "Exact", value: "/api/.." } }), ["rules[0].matches[0].path.value"]),
  r("path with /./", withMatch({ path: { value: "/api/./v1" } }), ["rules[0].matches[0].path.value"]),
  r("path with %2F", withMatch({ path: { value: "/api%2Fv1" } }), ["rules[0].matches[0].path.value"]),
  r("path with a query", withMatch({ path: { value: "/api?v=1" } }), ["rules[0].matches[0].path.value"]),
  r("RegularExpression path type", withMatch({ path: { type: "RegularExpression", value: "/api/.*" } }), ["rules[0].matches[0].path.type"], "RegularExpression is not supported"),
  r("path value not a string", withMatch({ path: { value: 5 } }), ["rules[0].matches[0].path.value"]),
  r("bad path in the second match", route({ matches: [{ path: { value: "/" } }, { path: { value: "x" } }] }), ["rules[0].matches[1].path.value"]),
  // --- method, headers, query
  r("lower-case method", withMatch({ method: "get" }), ["rules[0].matches[0].method"], "must be one of GET"),
  r("unknown method", withMatch({ method: "FETCH" }), ["rules[0].matches[0].method"]),
  r("duplicate header match names (case-insensitive)", withMatch({ headers: [{ name: "X-Env", value: "a" }, { name: "x-env", value: "b" }] }), ["rules[0].matches[0].headers[1].name"], "duplicate header"),
  r("header name with a space", withMatch({ headers: [{ name: "x env", value: "a" }] }), ["rules[0].matches[0].headers[0].name"]),
  r("header match without value", withMatch({ headers: [{ name: "x-env" }] }), ["rules[0].matches[0].headers[0].value"]),
  r("RegularExpression header match", withMatch({ headers: [{ type: "RegularExpression", name: "x-env", value: ".*" }] }), ["rules[0].matches[0].headers[0].type"]),
  r("duplicate query param names", withMatch({ queryParams: [{ name: "v", value: "1" }, { name: "v", value: "2" }] }), ["rules[0].matches[0].queryParams[1].name"]),
  // --- rule names and hostnames
  r("duplicate rule names", { rules: [{ name: "a", backendRefs: [be()] }, { name: "b", backendRefs: [be()] }, { name: "a", backendRefs: [be()] }] }, ["rules[2].name"], "duplicate rule name (same as rules[0])"),
  r("rule name with upper case", route({ name: "Default" }), ["rules[0].name"]),
  r("duplicate hostnames (after lower-casing)", route({}, { hostnames: ["a.example", "b.example", "A.Example"] }), ["hostnames[2]"], "duplicate hostname (same as hostnames[0])"),
  r("hostname with underscore", route({}, { hostnames: ["a.example", "bad_name.example"] }), ["hostnames[1]"], "must be a hostname"),
  r("bare * hostname", route({}, { hostnames: ["*"] }), ["hostnames[0]"]),
  r("wildcard not in the first label", route({}, { hostnames: ["api.*.example"] }), ["hostnames[0]"]),
  r("hostname with a port", route({}, { hostnames: ["a.example:8080"] }), ["hostnames[0]"]),
  r("hostname with a trailing dot", route({}, { hostnames: ["a.example."] }), ["hostnames[0]"]),
  // --- retry
  r("retry attempts 11", route({ retry: { attempts: 11 } }), ["rules[0].retry.attempts"], "0..10"),
  r("retry attempts -1", route({ retry: { attempts: -1 } }), ["rules[0].retry.attempts"]),
  r("retry code 200", route({ retry: { codes: [502, 200] } }), ["rules[0].retry.codes[1]"], "400..599"),
  r("retry code 600", route({ retry: { codes: [600] } }), ["rules[0].retry.codes[0]"]),
  // --- session persistence
  r("sessionPersistence with an empty key list", route({ sessionPersistence: { key: [] } }), ["rules[0].sessionPersistence.key"], "at least one key"),
  r("session key with two fields", route({ sessionPersistence: { key: [{ cookie: "uid" }, { header: "x-user", cookie: "uid" }] } }), ["rules[0].sessionPersistence.key[1]"], "exactly one of header, cookie or jwtClaim"),
  r("session key with no field", route({ sessionPersistence: { key: [{}] } }), ["rules[0].sessionPersistence.key[0]"]),
  r("session key header not a header name", route({ sessionPersistence: { key: [{ header: "x user" }] } }), ["rules[0].sessionPersistence.key[0].header"]),
  // --- authorization
  r("authorization with both unauthenticated and identities", route({}, { authorization: { unauthenticated: true, identities: ["spiffe://east.example/ns/a/sa/b"] } }), ["authorization"], "exactly one of unauthenticated or identities"),
  r("authorization with neither", route({}, { authorization: {} }), ["authorization"]),
  r("unauthenticated: false", route({}, { authorization: { unauthenticated: false } }), ["authorization.unauthenticated"], "must be true"),
  r("identity not SPIFFE", route({}, { authorization: { identities: ["spiffe://east.example/ns/a/sa/b", "https://east.example/ns/a"] } }), ["authorization.identities[1]"], "SPIFFE ID"),
  r("identity with an upper-case trust domain", route({}, { authorization: { identities: ["spiffe://East.example/ns/a"] } }), ["authorization.identities[0]"]),
  r("identity pattern with * not at the end", route({}, { authorization: { identities: ["spiffe://east.example/*/sa/b"] } }), ["authorization.identities[0]"]),
  r("empty identity list", route({}, { authorization: { identities: [] } }), ["authorization.identities"], "at least one identity"),
  // --- clusters
  c("cluster body is a string", "https://gw.east.example", ["body"]),
  c("cluster missing everything", {}, ["endpoint", "trustDomain"]),
  c("endpoint not a URL", cluster({ endpoint: "gw.east.example" }), ["endpoint"], "absolute http(s) URL"),
  c("endpoint ftp:", cluster({ endpoint: "ftp://gw.east.example" }), ["endpoint"], "http or https"),
  c("endpoint with credentials", cluster({ endpoint: "https://admin:secret@gw.east.example" }), ["endpoint"], "credentials"),
  c("endpoint with a query", cluster({ endpoint: "https://gw.east.example/?x=1" }), ["endpoint"], "query or fragment"),
  c("endpoint with a fragment", cluster({ endpoint: "https://gw.east.example/#x" }), ["endpoint"]),
  c("endpoint link-local 169.254.169.254", cluster({ endpoint: "http://169.254.169.254/" }), ["endpoint"], "link-local"),
  c("endpoint link-local fe80::", cluster({ endpoint: "http://[fe80::1]:8080/" }), ["endpoint"], "link-local"),
  c("trustDomain with upper case", cluster({ trustDomain: "East.example" }), ["trustDomain"]),
  c("trustDomain with a slash", cluster({ trustDomain: "east.example/ns" }), ["trustDomain"]),
  c("unknown field in a cluster", cluster({ endpoints: ["https://x.example"] }), ["endpoints"], 'unknown field "endpoints"'),
  c("bundle with both jwks and url", cluster({ bundle: { jwks: { keys: [] }, url: "https://east.example/keys" } }), ["bundle"], "not jwks and url"),
  c("bundle with url and secretId", cluster({ bundle: { url: "https://east.example/keys", secretId: "s" } }), ["bundle"], "not url and secretId"),
  c("empty bundle", cluster({ bundle: {} }), ["bundle"], "give one of jwks, url, secretId or kubernetes"),
  c("kubernetes bundle with neither jwks nor url", cluster({ bundle: { kubernetes: { issuer: "https://oidc.east.example" } } }), ["bundle.kubernetes"], "exactly one of jwks or url"),
  c("kubernetes bundle with both jwks and url", cluster({ bundle: { kubernetes: { issuer: "https://oidc.east.example", jwks: { keys: [] }, url: "https://oidc.east.example/keys" } } }), ["bundle.kubernetes"]),
  c("kubernetes issuer not a URL", cluster({ bundle: { kubernetes: { issuer: "oidc.east.example", url: "https://oidc.east.example/keys" } } }), ["bundle.kubernetes.issuer"]),
  c("bundle url not http(s)", cluster({ bundle: { url: "file:///etc/keys.json" } }), ["bundle.url"]),
  c("bundle jwks key without kty", cluster({ bundle: { jwks: { keys: [{ kty: "EC" }, { crv: "P-256" }] } } }), ["bundle.jwks.keys[1].kty"]),
  c("health path without slash", cluster({ health: { path: "ready" } }), ["health.path"]),
  c("health interval not a duration", cluster({ health: { interval: "5" } }), ["health.interval"]),
  c("unknown field in health", cluster({ health: { port: 9090 } }), ["health.port"]),
  c("remoteWrite url with a query", cluster({ metrics: { remoteWrite: { url: "https://prom.east.example/write?tenant=a" } } }), ["metrics.remoteWrite.url"]),
];

describe("invalid documents report the exact field path", () => {
  it("has at least 40 cases", () => {
    expect(invalid.length).toBeGreaterThanOrEqual(40);
    expect(new Set(invalid.map((x) => x.name)).size).toBe(invalid.length);
  });

  it.each(invalid.map((x) => [x.name, x] as const))("%s", (_name, x) => {
    const errors = errorsOf(() => (x.kind === "route" ? parseRoute(x.doc) : parseCluster(x.doc)));
    expect(pathsOf(errors)).toEqual([...x.paths].sort());
    for (const e of errors) expect(e.message.length).toBeGreaterThan(0);
    if (x.message !== undefined) expect(errors[0]?.message).toContain(x.message);
  });
});

describe("every problem is reported, not just the first", () => {
  it("reports independent field errors across the whole route document", () => {
    const doc = {
      hostnames: ["ok.example", "bad_host.example"],
      extra: true,
      rules: [
        { backendRefs: [be(), be2({ weight: 1001 })] },
        { backendRefs: [be({ port: 0 })], timeouts: { request: "soon" }, matches: [{ method: "get" }] },
      ],
    };
    const errors = errorsOf(() => parseRoute(doc));
    expect(pathsOf(errors)).toEqual(
      ["hostnames[1]", "extra", "rules[0].backendRefs[1].weight", "rules[1].backendRefs[0].port", "rules[1].timeouts.request", "rules[1].matches[0].method"].sort(),
    );
  });

  it("reports every bad weight, each at its own index", () => {
    const doc = route({ backendRefs: [be({ weight: -1 }), be2({ weight: 1001 }), be({ service: "x.shop", weight: 0.5 })] });
    expect(pathsOf(errorsOf(() => parseRoute(doc)))).toEqual(["rules[0].backendRefs[0].weight", "rules[0].backendRefs[1].weight", "rules[0].backendRefs[2].weight"]);
  });

  it("reports a field error together with a cross-field check of a sibling object", () => {
    // A built-in check failing (weight) does not hide the route-level duplicate-hostname check.
    const doc = route({ backendRefs: [be(), be2({ weight: 1001 })] }, { hostnames: ["a.example", "a.example"] });
    expect(pathsOf(errorsOf(() => parseRoute(doc)))).toEqual(["hostnames[1]", "rules[0].backendRefs[1].weight"]);
  });

  it("reports every problem of a cluster document", () => {
    const errors = errorsOf(() => parseCluster({ endpoint: "ftp://gw.east.example", trustDomain: "East", bundle: {}, health: { path: "ready" } }));
    expect(pathsOf(errors)).toEqual(["bundle", "endpoint", "health.path", "trustDomain"]);
  });

  // Regression: custom issues pushed without `continue: true` are fatal to zod, which then skips every
  // enclosing .check(), so a bad duration, path, URL or duplicate used to hide the duplicate-hostname /
  // duplicate-rule-name / duplicate-backend / bundle checks of its parents.
  it.each([
    [
      "a bad duration hides duplicate hostnames",
      "route",
      route({ timeouts: { request: "2x" } }, { hostnames: ["a.example", "a.example"] }),
      ["hostnames[1]", "rules[0].timeouts.request"],
    ],
    [
      "a bad path value hides duplicate rule names",
      "route",
      { rules: [{ name: "a", backendRefs: [be()], matches: [{ path: { value: "api" } }] }, { name: "a", backendRefs: [be()] }] },
      ["rules[0].matches[0].path.value", "rules[1].name"],
    ],
    [
      "duplicate backends hide duplicate hostnames and rule names",
      "route",
      { hostnames: ["a.example", "a.example"], rules: [{ name: "a", backendRefs: [be(), be()] }, { name: "a", backendRefs: [be()] }] },
      ["hostnames[1]", "rules[0].backendRefs[1]", "rules[1].name"],
    ],
    [
      "backendRequest > request hides duplicate backends",
      "route",
      route({ backendRefs: [be(), be()], timeouts: { request: "1s", backendRequest: "2s" } }),
      ["rules[0].backendRefs[1]", "rules[0].timeouts.backendRequest"],
    ],
    [
      "a bad bundle url hides 'url and secretId'",
      "cluster",
      cluster({ bundle: { url: "ftp://east.example/keys", secretId: "s" } }),
      ["bundle", "bundle.url"],
    ],
  ] as const)("%s", (_name, kind, doc, paths) => {
    const errors = errorsOf(() => (kind === "route" ? parseRoute(doc) : parseCluster(doc)));
    expect(pathsOf(errors)).toEqual([...paths].sort());
  });

  it("prefixes paths with the caller's location (declarative config)", () => {
    const errors = errorsOf(() => parseRoute(route({ backendRefs: [be(), be2({ weight: 2000 })] }), ["routes", "checkout"]));
    expect(pathsOf(errors)).toEqual(["routes.checkout.rules[0].backendRefs[1].weight"]);
    const bodyErrors = errorsOf(() => parseCluster(7, ["clusters", "east"]));
    expect(pathsOf(bodyErrors)).toEqual(["clusters.east"]);
    // An unknown field too is reported at its own path under the prefix.
    expect(pathsOf(errorsOf(() => parseRoute(route({}, { colour: "blue" }), ["routes", "checkout"])))).toEqual(["routes.checkout.colour"]);
  });

  it("reports each unknown field of one object on its own, with its own message", () => {
    const errors = errorsOf(() => parseRoute(route({ backendRefs: [be({ wieght: 5, prot: 80 }), be2()] }, { colour: "blue" })));
    expect(errors.map((e) => [e.path, e.message]).sort()).toEqual([
      ["colour", 'unknown field "colour"'],
      ["rules[0].backendRefs[0].prot", 'unknown field "prot"'],
      ["rules[0].backendRefs[0].wieght", 'unknown field "wieght"'],
    ]);
  });

  it("ValidationError carries every error in its message", () => {
    let thrown: unknown;
    try {
      parseRoute(route({ backendRefs: [be({ weight: -1 }), be2({ port: 0 })] }));
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(ValidationError);
    const err = thrown as ValidationError;
    expect(err.name).toBe("ValidationError");
    expect(err.message).toContain("rules[0].backendRefs[0].weight: must be 0..1000");
    expect(err.message).toContain("rules[0].backendRefs[1].port: must be 1..65535");
  });
});

// ------------------------------------------------------------------ references, names, paths

describe("checkRouteReferences", () => {
  const doc = {
    rules: [
      { backendRefs: [be(), be2()] },
      { backendRefs: [be({ cluster: "north" }), be2(), be({ cluster: "south", service: "x.shop" })] },
    ],
  };

  it("passes when every backend names a known cluster", () => {
    expect(() => checkRouteReferences(parseRoute(doc), new Set(["east", "west", "north", "south"]))).not.toThrow();
  });

  it("reports every unknown cluster at its backend's path", () => {
    const errors = errorsOf(() => checkRouteReferences(parseRoute(doc), new Set(["east", "west"])));
    expect(errors.map((e) => e.path)).toEqual(["rules[1].backendRefs[0].cluster", "rules[1].backendRefs[2].cluster"]);
    expect(errors[0]?.message).toContain('"north"');
    expect(errors[1]?.message).toContain('"south"');
  });

  it("treats an empty cluster set as knowing nothing", () => {
    expect(errorsOf(() => checkRouteReferences(parseRoute(route()), new Set()))).toHaveLength(2);
  });
});

describe("parseName", () => {
  it("accepts DNS labels and reports others at path `name`", () => {
    expect(parseName("checkout-v2")).toBe("checkout-v2");
    for (const bad of ["", "Checkout", "-a", "a-", "a.b", "a".repeat(64), 5]) {
      expect(pathsOf(errorsOf(() => parseName(bad)))[0]).toBe("name");
    }
  });
});

describe("formatPath", () => {
  it.each([
    [[], ""],
    [["rules"], "rules"],
    [["rules", 0, "backendRefs", 1, "weight"], "rules[0].backendRefs[1].weight"],
    [["metrics", "remoteWrite", "url"], "metrics.remoteWrite.url"],
    [["routes", "checkout-v2", "rules", 3], "routes.checkout-v2.rules[3]"],
    [[0, "name"], "[0].name"],
    [["hostnames", 10], "hostnames[10]"],
    [["labels", "a b"], 'labels["a b"]'],
    [["labels", "1st"], 'labels["1st"]'],
    [["labels", 'say "hi"'], 'labels["say \\"hi\\""]'],
    [["x", "_private", "$ref"], "x._private.$ref"],
  ] as [PropertyKey[], string][])("%j -> %s", (path, out) => {
    expect(formatPath(path)).toBe(out);
  });

  // Regression: a first key rendered verbatim made ["a.b"] and ["a", "b"] both "a.b" (and ["my field"]
  // "my field"): the first key needs the same quoting as the others.
  it.each([
    [["a.b"], '["a.b"]'],
    [["my field"], '["my field"]'],
    [["a b", "c"], '["a b"].c'],
  ] as [PropertyKey[], string][])("quotes a first key that is not an identifier: %j -> %s", (path, out) => {
    expect(formatPath(path)).toBe(out);
  });

  it("renders different paths differently", () => {
    expect(formatPath(["a", "b"])).not.toBe(formatPath(["a", "b c"]));
    expect(formatPath(["rules", 0])).not.toBe(formatPath(["rules", "0"]));
  });
});
