// GET /explain: which route, rule and backends a request would get from the live table, and why.
import type { Hono } from "hono";
import { ValidationError } from "../config/errors.ts";
import { bucketOf } from "../routing/choose.ts";
import { findHostEntry, mismatch, normalizeHost, type RequestFacts } from "../routing/match.ts";
import type { CompiledBackend } from "../routing/table.ts";
import { chooseBackend, fromWebRequest, stickyKey } from "../proxy/forward.ts";
import type { AdminDeps, AdminEnv } from "./deps.ts";

export function registerExplainRoute(app: Hono<AdminEnv>, deps: AdminDeps): void {
  app.get("/explain", (c) => {
    const q = new URL(c.req.url).searchParams;
    const errors = [];
    const hostParam = q.get("host");
    if (!hostParam) errors.push({ path: "query.host", message: "is required" });
    const path = q.get("path") ?? "/";
    if (!path.startsWith("/")) errors.push({ path: "query.path", message: "must start with '/'" });
    const method = (q.get("method") ?? "GET").toUpperCase();
    const headers = new Headers();
    q.getAll("header").forEach((h, i) => {
      const colon = h.indexOf(":");
      if (colon <= 0) errors.push({ path: `query.header[${i}]`, message: 'must be "name:value"' });
      else {
        try {
          headers.append(h.slice(0, colon).trim(), h.slice(colon + 1).trim());
        } catch {
          errors.push({ path: `query.header[${i}]`, message: "is not a valid header" });
        }
      }
    });
    if (errors.length > 0) throw new ValidationError(errors);

    const url = new URL(`http://explain.invalid${path}`);
    const table = deps.routing.current;
    const host = normalizeHost(hostParam);
    const facts: RequestFacts = {
      host,
      path: url.pathname,
      method,
      header: (n) => headers.get(n) ?? undefined,
      query: (n) => url.searchParams.get(n) ?? undefined,
    };
    const entry = findHostEntry(table, host);
    const base = { tableVersion: table.version, request: { host, path: url.pathname, query: url.search, method } };
    if (!entry) return c.json({ ...base, matched: false, reason: `no route has hostname "${host}", a wildcard covering it, or no hostnames` });

    const considered = [];
    for (const m of entry.matches) {
      const why = mismatch(m, facts);
      considered.push({ route: m.rule.route, rule: m.rule.name, match: m.index, path: `${m.pathType} ${m.pathValue}`, method: m.method ?? null, fits: why === null, ...(why ? { reason: why } : {}) });
      if (why !== null) continue;
      const rule = m.rule;
      const request = new Request(url, { method: method === "GET" || method === "HEAD" ? method : "POST", headers });
      const key = stickyKey(rule, { header: (n) => headers.get(n) });
      const chosen = key !== undefined ? chooseBackend(rule, fromWebRequest(request, url, { clientAddress: "", proto: "http", body: null }), Math.random) : null;
      return c.json({
        ...base,
        matched: true,
        hostEntry: entry.hostname,
        route: { name: rule.route, revision: rule.revision },
        rule: { name: rule.name, index: rule.index, match: m.index },
        reason: `first match by Gateway API precedence among ${entry.matches.length} on host entry "${entry.hostname}"`,
        backends: rule.backends.map((b) => backendView(b, rule.totalWeight)),
        sticky: rule.sticky
          ? key === undefined
            ? { key: null, note: "no session key present: the choice is weighted random" }
            : { key, bucket: bucketOf(key), backend: chosen ? chosen.id : null }
          : null,
        timeouts: { requestMs: rule.requestTimeoutMs, backendRequestMs: rule.backendTimeoutMs },
        authorization: rule.authorization ?? { note: "any authenticated caller from a registered trust domain" },
        considered,
      });
    }
    return c.json({ ...base, matched: false, hostEntry: entry.hostname, reason: "no rule of the host entry fits", considered });
  });
}

function backendView(b: CompiledBackend, total: number) {
  return {
    cluster: b.cluster,
    service: b.service,
    port: b.port ?? null,
    weight: b.weight,
    share: total > 0 ? b.weight / total : 0,
    endpoint: b.target?.base ?? null,
    ...(b.target ? {} : { problem: `cluster "${b.cluster}" is not registered: requests chosen for it get 503` }),
  };
}
