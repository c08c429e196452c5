// Schemas of the public resources (SPEC.md "Admin API"): Cluster and Route, in Gateway API HTTPRoute
// vocabulary. Objects are strict so a misspelt field is an error, not silently ignored config.
import { z } from "zod";
import { parseDuration } from "./duration.ts";

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const HOSTNAME = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const SPIFFE_ID = /^spiffe:\/\/[a-z0-9._-]+(\/[A-Za-z0-9._~!$&'()+,;=:@%-]+)*$/;
const SPIFFE_PATTERN = /^spiffe:\/\/[a-z0-9._-]+(\/[A-Za-z0-9._~!$&'()+,;=:@%-]+)*\/\*$/;
/** SPIFFE_ID or SPIFFE_PATTERN as one JSON Schema pattern (for the OpenAPI document). */
const SPIFFE_ID_OR_PATTERN = "^spiffe://[a-z0-9._-]+(/[A-Za-z0-9._~!$&'()+,;=:@%-]+)*(/\\*)?$";
/** HOSTNAME before lower-casing, as a JSON Schema pattern. */
const HOSTNAME_ANY_CASE = "^(\\*\\.)?[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*$";

/** Longest timeout accepted anywhere: an hour is already far past any sane HTTP exchange. */
export const MAX_TIMEOUT_MS = 3_600_000;

export const resourceName = z
  .string()
  .min(1, "must not be empty")
  .max(63, "must be at most 63 characters")
  .regex(DNS_LABEL, "must be a DNS label: lowercase letters, digits and '-', starting and ending alphanumeric");

/**
 * What JSON Schema can say of a Gateway API duration (the OpenAPI document carries it): one to four
 * `<integer><unit>` parts. The parser is stricter (each unit once, a maximum), never looser.
 */
export const DURATION_JSON_SCHEMA = { pattern: "^([0-9]{1,5}(h|ms|m|s)){1,4}$", maxLength: 32 } as const;

const duration = (max = MAX_TIMEOUT_MS) =>
  z
    .string()
    .check((ctx) => {
      const ms = parseDuration(ctx.value);
      if (ms === undefined)
        ctx.issues.push({ code: "custom", continue: true, input: ctx.value, message: `"${ctx.value}" is not a duration (e.g. "800ms", "2s", "1m30s")` });
      else if (ms > max) ctx.issues.push({ code: "custom", continue: true, input: ctx.value, message: `must be at most ${max / 1000}s` });
    })
    .meta({ ...DURATION_JSON_SCHEMA, description: `a duration such as "800ms", "2s" or "1m30s", at most ${max / 1000}s` });

function httpUrl(what: string, opts: { allowPath: boolean }) {
  return z
    .string()
    .max(2048)
    .check((ctx) => {
      const fail = (message: string): void => void ctx.issues.push({ code: "custom", continue: true, input: ctx.value, message });
      let url: URL;
      try {
        url = new URL(ctx.value);
      } catch {
        return fail(`${what} must be an absolute http(s) URL`);
      }
      if (url.protocol !== "http:" && url.protocol !== "https:") return fail(`${what} must use http or https`);
      if (url.username || url.password) return fail(`${what} must not carry credentials`);
      if (url.search || url.hash || ctx.value.includes("?") || ctx.value.includes("#"))
        return fail(`${what} must not have a query or fragment`);
      if (!opts.allowPath && url.pathname !== "/") return fail(`${what} must not have a path`);
      // Link-local addresses include cloud metadata services (169.254.169.254): never a valid target.
      const host = url.hostname.replace(/^\[|\]$/g, "");
      if (/^169\.254\./.test(host) || /^fe80:/i.test(host)) return fail(`${what} must not be a link-local address`);
    })
    .meta({ description: `an absolute http(s) URL without credentials, query or fragment${opts.allowPath ? "" : " or path"}; link-local addresses are refused` });
}

// ---------------------------------------------------------------- Cluster

const jwks = z.looseObject({
  keys: z.array(z.looseObject({ kty: z.string() })).max(64, "at most 64 keys"),
});

const kubernetesIssuer = z
  .strictObject({
    issuer: z.string().url("issuer must be a URL").max(2048),
    jwks: jwks.optional(),
    url: httpUrl("url", { allowPath: true }).optional(),
  })
  .check((ctx) => {
    if ((ctx.value.jwks === undefined) === (ctx.value.url === undefined))
      ctx.issues.push({ code: "custom", continue: true, input: ctx.value, message: "give exactly one of jwks or url" });
  });

const bundle = z
  .strictObject({
    jwks: jwks.optional(),
    url: httpUrl("url", { allowPath: true }).optional(),
    secretId: z.string().min(1).max(2048).optional(),
    kubernetes: kubernetesIssuer.optional(),
  })
  .check((ctx) => {
    const sources = ["jwks", "url", "secretId"].filter((k) => ctx.value[k as "jwks"] !== undefined);
    if (sources.length > 1)
      ctx.issues.push({ code: "custom", continue: true, input: ctx.value, message: `give one of jwks, url or secretId, not ${sources.join(" and ")}` });
    if (sources.length === 0 && ctx.value.kubernetes === undefined)
      ctx.issues.push({ code: "custom", continue: true, input: ctx.value, message: "give one of jwks, url, secretId or kubernetes" });
  });

export const clusterSchema = z.strictObject({
  endpoint: httpUrl("endpoint", { allowPath: true }),
  trustDomain: z.string().min(1).max(255).regex(TRUST_DOMAIN, "must be a SPIFFE trust domain: lowercase letters, digits, '.', '-', '_'"),
  bundle: bundle.optional(),
  metrics: z.strictObject({ remoteWrite: z.strictObject({ url: httpUrl("url", { allowPath: true }) }).optional() }).optional(),
  health: z
    .strictObject({
      path: z.string().startsWith("/", "must start with '/'").max(1024).default("/ready"),
      interval: duration().optional(),
      timeout: duration().optional(),
    })
    .optional(),
});
export type Cluster = z.output<typeof clusterSchema>;
export type ClusterInput = z.input<typeof clusterSchema>;

// ---------------------------------------------------------------- Route

const pathMatch = z
  .strictObject({
    type: z.enum(["Exact", "PathPrefix"], { error: 'must be "Exact" or "PathPrefix" (RegularExpression is not supported)' }).default("PathPrefix"),
    value: z.string().max(1024).default("/"),
  })
  .check((ctx) => {
    const v = ctx.value.value;
    const bad = (message: string): void => void ctx.issues.push({ code: "custom", continue: true, input: v, path: ["value"], message });
    if (!v.startsWith("/")) return bad("must start with '/'");
    if (/\/\/|\/\.\.?(\/|$)|%2f|%2F|#|\?/.test(v)) return bad("must not contain '//', '/./', '/../', '%2F', '#' or '?'");
  });

const headerMatch = z.strictObject({
  type: z.enum(["Exact"], { error: 'must be "Exact" (RegularExpression is not supported)' }).default("Exact"),
  name: z.string().min(1).max(256).regex(HEADER_NAME, "must be an HTTP header name"),
  value: z.string().max(4096),
});

const queryMatch = z.strictObject({
  type: z.enum(["Exact"], { error: 'must be "Exact"' }).default("Exact"),
  name: z.string().min(1).max(256),
  value: z.string().max(4096),
});

const HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"] as const;

const routeMatch = z
  .strictObject({
    path: pathMatch.optional(),
    method: z.enum(HTTP_METHODS, { error: `must be one of ${HTTP_METHODS.join(", ")}` }).optional(),
    headers: z.array(headerMatch).max(16).optional(),
    queryParams: z.array(queryMatch).max(16).optional(),
  })
  .check((ctx) => {
    uniqueBy(ctx, ctx.value.headers ?? [], (h) => h.name.toLowerCase(), "headers", "name", "header");
    uniqueBy(ctx, ctx.value.queryParams ?? [], (q) => q.name, "queryParams", "name", "query parameter");
  });

export const backendRefSchema = z.strictObject({
  cluster: resourceName,
  service: z.string().min(1).max(253).regex(DNS_NAME, "must be a DNS name such as checkout.shop.svc.cluster.local"),
  port: z.int("must be an integer").min(1, "must be 1..65535").max(65535, "must be 1..65535").optional(),
  weight: z.int("must be an integer").min(0, "must be 0..1000").max(1000, "must be 0..1000").default(1),
  /** Clusters that take this backend's share, in order, while it is unavailable (same service and port). */
  failover: z.array(resourceName).min(1, "at least one cluster").max(4, "at most 4 clusters").optional(),
});
export type BackendRef = z.output<typeof backendRefSchema>;

const sessionKey = z
  .strictObject({
    header: z.string().min(1).max(256).regex(HEADER_NAME, "must be an HTTP header name").optional(),
    cookie: z.string().min(1).max(256).regex(HEADER_NAME, "must be a cookie name").optional(),
    jwtClaim: z.string().min(1).max(256).optional(),
  })
  .check((ctx) => {
    const n = Object.values(ctx.value).filter((v) => v !== undefined).length;
    if (n !== 1) ctx.issues.push({ code: "custom", continue: true, input: ctx.value, message: "give exactly one of header, cookie or jwtClaim" });
  });

const ruleSchema = z
  .strictObject({
    name: resourceName.optional(),
    matches: z.array(routeMatch).max(64, "at most 64 matches").default([{ path: { type: "PathPrefix", value: "/" } }]),
    backendRefs: z.array(backendRefSchema).min(1, "at least one backend is required").max(16, "at most 16 backends"),
    timeouts: z
      .strictObject({ request: duration().optional(), backendRequest: duration().optional() })
      .check((ctx) => {
        const req = ctx.value.request === undefined ? undefined : parseDuration(ctx.value.request);
        const be = ctx.value.backendRequest === undefined ? undefined : parseDuration(ctx.value.backendRequest);
        if (req && be && be > req)
          ctx.issues.push({ code: "custom", continue: true, input: ctx.value, path: ["backendRequest"], message: "must not be longer than request" });
      })
      .optional(),
    retry: z
      .strictObject({
        attempts: z.int("must be an integer").min(0, "must be 0..10").max(10, "must be 0..10").optional(),
        codes: z.array(z.int("must be an integer").min(400, "must be 400..599").max(599, "must be 400..599")).max(32).optional(),
        backoff: duration(60_000).optional(),
      })
      .optional(),
    sessionPersistence: z.strictObject({ key: z.array(sessionKey).min(1, "at least one key").max(8) }).optional(),
  })
  .check((ctx) => {
    uniqueBy(ctx, ctx.value.backendRefs, (b) => `${b.cluster}/${b.service}:${b.port ?? ""}`, "backendRefs", undefined, "backend");
  });

const authorizationSchema = z
  .strictObject({
    unauthenticated: z.literal(true, { error: "must be true (omit authorization to require any authenticated caller)" }).optional(),
    identities: z
      .array(
        z
          .string()
          .max(2048)
          .refine((s) => SPIFFE_ID.test(s) || SPIFFE_PATTERN.test(s), "must be a SPIFFE ID (spiffe://td/path) or a pattern ending in /*")
          .meta({ pattern: SPIFFE_ID_OR_PATTERN, description: "a SPIFFE ID (spiffe://td/path), or a pattern ending in /* that admits every ID under it" }),
      )
      .min(1, "at least one identity")
      .max(256)
      .optional(),
  })
  .check((ctx) => {
    const n = (ctx.value.unauthenticated !== undefined ? 1 : 0) + (ctx.value.identities !== undefined ? 1 : 0);
    if (n !== 1) ctx.issues.push({ code: "custom", continue: true, input: ctx.value, message: "give exactly one of unauthenticated or identities" });
  });

export const routeSchema = z
  .strictObject({
    hostnames: z
      .array(
        z
          .string()
          .max(253)
          .toLowerCase()
          .regex(HOSTNAME, "must be a hostname, optionally with a leading '*.'")
          .refine((h) => h.split(".").every((l) => l.length <= 63), "each label must be at most 63 characters")
          // Hostnames are lower-cased before they are checked, so the documented pattern takes either case.
          .meta({ pattern: HOSTNAME_ANY_CASE, description: "a hostname (either case; stored lower-cased), optionally with a leading '*.'" }),
      )
      .max(16, "at most 16 hostnames")
      .default([]),
    authorization: authorizationSchema.optional(),
    rules: z.array(ruleSchema).min(1, "at least one rule is required").max(16, "at most 16 rules"),
  })
  .check((ctx) => {
    uniqueBy(ctx, ctx.value.hostnames, (h) => h, "hostnames", undefined, "hostname");
    uniqueBy(ctx, ctx.value.rules.filter((r) => r.name !== undefined), (r) => r.name as string, "rules", "name", "rule name");
    const matches = ctx.value.rules.reduce((n, r) => n + r.matches.length, 0);
    if (matches > 128) ctx.issues.push({ code: "custom", continue: true, input: ctx.value, path: ["rules"], message: "at most 128 matches per route" });
  });
export type Route = z.output<typeof routeSchema>;
export type RouteInput = z.input<typeof routeSchema>;
export type RouteRule = Route["rules"][number];
export type RouteMatch = RouteRule["matches"][number];

interface IssueSink {
  value: unknown;
  issues: { push(issue: { code: "custom"; continue?: boolean; input: unknown; path?: PropertyKey[]; message: string }): void };
}

function uniqueBy<T>(ctx: IssueSink, items: readonly T[], key: (item: T) => string, field: string, sub: string | undefined, what: string): void {
  const seen = new Map<string, number>();
  items.forEach((item, i) => {
    const k = key(item);
    const first = seen.get(k);
    if (first !== undefined)
      ctx.issues.push({ code: "custom", continue: true, input: item, path: sub ? [field, i, sub] : [field, i], message: `duplicate ${what} (same as ${field}[${first}])` });
    else seen.set(k, i);
  });
}
