// isthmus check: named checks with a pass/warn/fail and a reason each, like `linkerd multicluster
// check`: the gateway and its store, the clock, the admin token, the signing key, every cluster's
// endpoint health and trust bundle, and routes pointing at unknown or unhealthy clusters.
// Exit 1 when any check fails (warnings do not fail).
import { X509Certificate } from "node:crypto";
import { ApiError, ConnectionError, type RawResponse } from "./client.ts";
import type { ClusterView, Command, Ctx, RouteView } from "./context.ts";
import { ruleName } from "./context.ts";

export type CheckStatus = "pass" | "warn" | "fail";

export interface CheckResult {
  category: string;
  name: string;
  status: CheckStatus;
  reason: string;
  hint?: string;
}

/** Clock skew beyond which the check warns: the gateway's token leeway is 30 s. */
export const MAX_SKEW_MS = 30_000;
/** Certificates in a bundle that expire sooner than this are a warning. */
const EXPIRY_WARN_MS = 7 * 24 * 3600 * 1000;

/** The status of one bundle as a gateway with a bundle-status endpoint reports it (GET /_isthmus/v1/bundles). */
export interface BundleStatus {
  cluster: string;
  trustDomain: string;
  kind: "jwt-svid" | "kubernetes";
  issuer?: string;
  source: string;
  loaded: boolean;
  keys: number;
  loadedAt: string | null;
  nextRefreshAt: string | null;
  lastError: string | null;
  /** Earliest expiry of a certificate (x5c) in the bundle, when it carries any. */
  expiresAt?: string | null;
}

type Bundle = NonNullable<ClusterView["bundle"]>;

const RANK: Record<CheckStatus, number> = { pass: 0, warn: 1, fail: 2 };
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** Whether a route needs a verified caller, and which trust domains its identities name. */
function callerNeeds(r: RouteView): { needsIdentity: boolean; domains: Set<string> | "any" } {
  if (r.authorization?.unauthenticated) return { needsIdentity: false, domains: new Set() };
  if (!r.authorization?.identities) return { needsIdentity: true, domains: "any" };
  return { needsIdentity: true, domains: new Set(r.authorization.identities.map((i) => /^spiffe:\/\/([^/]+)/.exec(i)?.[1] ?? "")) };
}

/** What can be told of an inline JWK set without the gateway: usable keys and certificate expiry. */
export function inspectJwks(jwks: { keys: Array<Record<string, unknown>> }, kind: "jwt-svid" | "kubernetes", now = Date.now()): { status: CheckStatus; reason: string } {
  const usable = jwks.keys.filter((k) => typeof k.kid === "string" && k.kid !== "" && (kind === "jwt-svid" ? k.use === "jwt-svid" : k.use === undefined || k.use === "sig"));
  if (usable.length === 0)
    return { status: "fail", reason: kind === "jwt-svid" ? 'no key with use "jwt-svid" and a kid: every JWT-SVID of this cluster is refused' : 'no signing key (use "sig" or none) with a kid: every service-account token is refused' };
  let earliest: { at: number; kid: string } | null = null;
  for (const k of jwks.keys) {
    const x5c = Array.isArray(k.x5c) ? k.x5c[0] : undefined;
    if (typeof x5c !== "string") continue;
    try {
      const at = Date.parse(new X509Certificate(Buffer.from(x5c, "base64")).validTo);
      if (!earliest || at < earliest.at) earliest = { at, kid: String(k.kid ?? "?") };
    } catch {
      // not a certificate: the gateway does not use x5c either
    }
  }
  const base = `${plural(usable.length, kind === "jwt-svid" ? "jwt-svid key" : "signing key")} inline (kid ${usable.map((k) => k.kid as string).join(", ")})`;
  if (earliest && earliest.at <= now) return { status: "fail", reason: `${base}; the certificate of kid ${earliest.kid} expired at ${new Date(earliest.at).toISOString()}` };
  if (earliest && earliest.at - now < EXPIRY_WARN_MS) return { status: "warn", reason: `${base}; the certificate of kid ${earliest.kid} expires at ${new Date(earliest.at).toISOString()}` };
  return { status: "pass", reason: earliest ? `${base}; certificates valid until ${new Date(earliest.at).toISOString()}` : base };
}

export function bundleFromStatus(entries: BundleStatus[], now: number): { status: CheckStatus; reason: string } {
  const parts: string[] = [];
  let status: CheckStatus = "pass";
  const worst = (s: CheckStatus) => {
    if (RANK[s] > RANK[status]) status = s;
  };
  for (const e of entries) {
    const what = e.kind === "kubernetes" ? `issuer ${e.issuer ?? "?"}` : "jwt-svid bundle";
    if (!e.loaded) {
      worst("fail");
      parts.push(`${what}: not loaded${e.lastError ? `: ${e.lastError}` : ""}`);
      continue;
    }
    let text = `${what}: ${plural(e.keys, "key")}, loaded ${e.loadedAt ?? "?"}`;
    if (e.lastError) {
      worst("warn");
      text += `; last refresh failed (${e.lastError}), serving the last good keys`;
    }
    const exp = e.expiresAt ? Date.parse(e.expiresAt) : NaN;
    if (Number.isFinite(exp) && exp <= now) {
      worst("fail");
      text += `; expired at ${e.expiresAt}`;
    } else if (Number.isFinite(exp) && exp - now < EXPIRY_WARN_MS) {
      worst("warn");
      text += `; expires at ${e.expiresAt}`;
    }
    parts.push(text);
  }
  return { status, reason: parts.join("; ") };
}

function describeBundleSource(b: Bundle): string {
  const parts: string[] = [];
  if (b.url) parts.push(`SPIFFE bundle endpoint ${b.url}`);
  if (b.secretId) parts.push(`secret ${b.secretId}`);
  if (b.kubernetes?.url) parts.push(`Kubernetes issuer ${b.kubernetes.issuer} (keys from ${b.kubernetes.url})`);
  return parts.join(", ");
}

/** The gateway's public signing keys: destinations verify its tokens with them. */
async function signingKeyCheck(c: Ctx["client"]): Promise<CheckResult> {
  const r = (status: CheckStatus, reason: string): CheckResult => ({ category: "identity", name: "signing key loaded and published", status, reason });
  try {
    const jwks = await c.raw("GET", "/.well-known/jwks.json");
    const keys = jwks.status === 200 ? ((JSON.parse(jwks.text) as { keys?: Array<{ kid?: string }> }).keys ?? []) : [];
    if (jwks.status !== 200) return r("fail", `/.well-known/jwks.json answered HTTP ${jwks.status}: the gateway has no signing key, so destinations get no identity`);
    if (keys.length === 0) return r("fail", "/.well-known/jwks.json lists no keys");
    return r("pass", `${plural(keys.length, "key")} published (kid ${keys.map((k) => k.kid ?? "?").join(", ")})`);
  } catch (err) {
    return r("fail", err instanceof ConnectionError ? err.reason : `/.well-known/jwks.json is not JSON: ${String(err)}`);
  }
}

export async function runChecks(ctx: Ctx, now = Date.now()): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const add = (category: string, name: string, status: CheckStatus, reason: string, hint?: string) => results.push({ category, name, status, reason, ...(hint ? { hint } : {}) });
  const c = ctx.client;

  // --- gateway
  let health: RawResponse;
  try {
    health = await c.raw("GET", "/_isthmus/healthz");
  } catch (err) {
    add("gateway", "gateway answers", "fail", err instanceof ConnectionError ? err.reason : String(err), `is ISTHMUS_URL (or --url) right? ${c.base}`);
    return results;
  }
  add("gateway", "gateway answers", health.status === 200 ? "pass" : "fail", health.status === 200 ? `healthz answered in ${health.receivedAt - health.sentAt}ms` : `healthz answered HTTP ${health.status}`);

  const date = health.headers.get("date");
  const gatewayAt = date ? Date.parse(date) : NaN;
  if (!Number.isFinite(gatewayAt)) add("gateway", "clock skew", "warn", "the gateway's answer has no Date header: skew unknown");
  else {
    // The Date header has one-second resolution: compare with the middle of the exchange, allow 1 s.
    const local = (health.sentAt + health.receivedAt) / 2;
    const skew = gatewayAt - local;
    const beyond = Math.max(0, Math.abs(skew) - 1000);
    const side = skew > 0 ? "ahead of" : "behind";
    if (beyond > MAX_SKEW_MS)
      add("gateway", "clock skew", "warn", `the gateway's clock is about ${Math.round(Math.abs(skew) / 1000)}s ${side} this machine's (over ${MAX_SKEW_MS / 1000}s)`, "token expiry allows 30 s of leeway: sync clocks (NTP) on the gateway and the clusters");
    else add("gateway", "clock skew", "pass", beyond === 0 ? "within 1s of this machine" : `${Math.round(Math.abs(skew) / 1000)}s ${side} this machine`);
  }

  try {
    const ready = await c.raw("GET", "/_isthmus/readyz");
    const body = JSON.parse(ready.text) as {
      store?: { kind: string; reachable: boolean; lastError: string | null; downSince: string | null };
      routingTable?: { loaded: boolean; version: number; routes: number; clusters: number; warnings: string[] };
      note?: string;
    };
    const s = body.store;
    const t = body.routingTable;
    if (ready.status === 200) add("gateway", "store reachable", "pass", `${s?.kind ?? "?"} store; routing table version ${t?.version ?? "?"}: ${plural(t?.routes ?? 0, "route")}, ${plural(t?.clusters ?? 0, "cluster")}`);
    else {
      const why = [s && !s.reachable ? `${s.kind} store unreachable${s.downSince ? ` since ${s.downSince}` : ""}${s.lastError ? `: ${s.lastError}` : ""}` : "", t && !t.loaded ? "routing table not loaded" : "", body.note ?? ""].filter(Boolean);
      add("gateway", "store reachable", "fail", `readyz answered ${ready.status}: ${why.join("; ") || "not ready"}`);
    }
    for (const w of t?.warnings ?? []) add("gateway", "routing table", "warn", w);
  } catch (err) {
    add("gateway", "store reachable", "fail", err instanceof ConnectionError ? err.reason : `readyz did not answer JSON: ${String(err)}`);
  }

  // Independent of the admin API: reported even when the admin calls fail.
  const signingKey = await signingKeyCheck(c);
  let clusters: ClusterView[];
  let routes: RouteView[];
  try {
    [clusters, routes] = await Promise.all([c.admin<{ items: ClusterView[] }>("GET", "/clusters").then((r) => r.items), c.admin<{ items: RouteView[] }>("GET", "/routes").then((r) => r.items)]);
    add("gateway", "admin API answers with the token", "pass", `${plural(clusters.length, "cluster")}, ${plural(routes.length, "route")}`);
  } catch (err) {
    if (err instanceof ApiError) add("gateway", "admin API answers with the token", "fail", `${err.status} ${err.problem.title ?? ""}: ${err.problem.detail ?? ""}`.trim(), typeof err.problem.hint === "string" ? err.problem.hint : undefined);
    else add("gateway", "admin API answers with the token", "fail", err instanceof ConnectionError ? err.reason : String(err));
    results.push(signingKey);
    return results;
  }
  results.push(signingKey);

  // --- clusters: endpoint health
  if (clusters.length === 0) add("clusters", "clusters registered", "warn", "no clusters: register one with isthmus cluster register");
  for (const cl of clusters) {
    const h = cl.status?.health;
    const name = `${cl.name}: endpoint healthy`;
    if (!h) add("clusters", name, "warn", "the gateway reports no probe for this cluster yet");
    else if (h.alive === true) add("clusters", name, "pass", `alive, probe GET ${h.url} in ${h.lastLatencyMs ?? "?"}ms`);
    else if (h.alive === false)
      add("clusters", name, "fail", `not alive: ${h.lastError ?? "probe failing"} (${plural(h.consecutiveFailures, "consecutive failure")}, last success ${h.lastSuccessAt ?? "never"}) probing ${h.url}`, `the probe is GET ${h.url} and expects 200; is ${cl.endpoint} reachable from the gateway?`);
    else if (h.lastError) add("clusters", name, "warn", `not yet alive: ${h.lastError} (${plural(h.consecutiveFailures, "failure")} so far) probing ${h.url}`);
    else add("clusters", name, "warn", `not probed yet (${h.url})`);
  }

  // --- clusters: trust bundles
  let bundleStatus: BundleStatus[] | null = null;
  try {
    bundleStatus = (await c.admin<{ items: BundleStatus[] }>("GET", "/bundles")).items;
  } catch {
    // No bundle-status endpoint on this gateway (404), or no answer: judge from the clusters' declarations.
  }
  const withBundle = clusters.filter((x) => x.bundle);
  for (const cl of clusters) {
    const name = `${cl.name}: trust bundle`;
    const b = cl.bundle;
    if (!b) {
      const namedBy = routes.filter((r) => {
        const need = callerNeeds(r);
        return need.domains !== "any" && need.domains.has(cl.trustDomain);
      });
      const anyCaller = routes.filter((r) => callerNeeds(r).domains === "any");
      if (namedBy.length > 0)
        add("clusters", name, "fail", `no bundle declared, but ${namedBy.map((r) => `route ${r.name}`).join(", ")} admit${namedBy.length === 1 ? "s" : ""} identities of ${cl.trustDomain}: those callers can never authenticate`, `give the cluster a bundle: isthmus cluster register ${cl.name} --endpoint ${cl.endpoint} --issuer <its service-account issuer>`);
      else if (anyCaller.length > 0)
        add("clusters", name, "warn", `no bundle declared: workloads of ${cl.trustDomain} cannot call ${anyCaller.map((r) => `route ${r.name}`).join(", ")} (an authenticated caller is required); fine if this cluster only receives traffic`);
      else add("clusters", name, "pass", "no bundle declared (no route needs an identity from it)");
      continue;
    }
    const status = bundleStatus?.filter((s) => s.cluster === cl.name) ?? null;
    if (status && status.length > 0) {
      const r = bundleFromStatus(status, now);
      add("clusters", name, r.status, r.reason);
      continue;
    }
    const inline = [b.jwks ? inspectJwks(b.jwks, "jwt-svid", now) : null, b.kubernetes?.jwks ? inspectJwks(b.kubernetes.jwks, "kubernetes", now) : null].filter((x) => x !== null);
    const fetched = describeBundleSource(b);
    const worst = inline.find((x) => x.status === "fail") ?? inline.find((x) => x.status === "warn");
    if (worst) add("clusters", name, worst.status, inline.map((x) => x.reason).join("; "));
    else if (fetched)
      add(
        "clusters",
        name,
        "warn",
        `${inline.length > 0 ? `${inline.map((x) => x.reason).join("; ")}; ` : ""}fetched by the gateway from ${fetched}: whether it loaded is not visible (this gateway has no bundle-status endpoint)`,
        "watch the gateway log for bundle fetch errors, or upgrade to a gateway serving GET /_isthmus/v1/bundles",
      );
    else add("clusters", name, "pass", inline.map((x) => x.reason).join("; "));
  }

  // --- routes: backends on unknown or unhealthy clusters; callers that can authenticate
  const byName = new Map(clusters.map((x) => [x.name, x]));
  const alive = (name: string) => byName.get(name)?.status?.health?.alive ?? null;
  for (const r of routes) {
    const fails: string[] = [];
    const warns: string[] = [];
    let backends = 0;
    const used = new Set<string>();
    r.rules.forEach((rule, i) => {
      for (const b of rule.backendRefs) {
        backends++;
        used.add(b.cluster);
        const where = `rule ${ruleName(rule, i)} -> ${b.cluster} (weight ${b.weight})`;
        const cl = byName.get(b.cluster);
        const failover = (b.failover ?? []).filter((f) => alive(f) === true);
        for (const f of b.failover ?? []) if (!byName.has(f)) fails.push(`rule ${ruleName(rule, i)}: failover cluster ${f} is not registered`);
        if (!cl) {
          fails.push(`${where}: cluster ${b.cluster} is not registered`);
          continue;
        }
        const a = alive(b.cluster);
        const why = cl.status?.health?.lastError ? ` (${cl.status.health.lastError})` : "";
        if (a === false) {
          if (b.weight === 0) warns.push(`${where}: cluster not alive${why}, no traffic at weight 0`);
          else if (failover.length > 0) warns.push(`${where}: cluster not alive${why}; its share fails over to ${failover.join(", ")}`);
          else fails.push(`${where}: cluster not alive${why}`);
        } else if (a === null && b.weight > 0) warns.push(`${where}: cluster health not known yet`);
      }
    });
    const name = `${r.name}: backends`;
    if (fails.length > 0) add("routes", name, "fail", [...fails, ...warns].join("; "), "see `isthmus clusters` for each cluster's probe");
    else if (warns.length > 0) add("routes", name, "warn", warns.join("; "));
    else add("routes", name, "pass", `${plural(backends, "backend")} in ${plural(used.size, "cluster")}, all alive`);

    const need = callerNeeds(r);
    const authName = `${r.name}: callers can authenticate`;
    if (!need.needsIdentity) add("routes", authName, "pass", "open to unauthenticated callers");
    else if (need.domains === "any") {
      if (withBundle.length === 0) add("routes", authName, "fail", "the route needs an authenticated caller but no cluster declares a trust bundle: every call gets 401", "register clusters with a bundle: isthmus cluster register NAME --issuer ... or --bundle-url ...");
      else add("routes", authName, "pass", `any authenticated caller; clusters with a bundle: ${withBundle.map((x) => x.name).join(", ")}`);
    } else {
      const problems: string[] = [];
      const ok: string[] = [];
      for (const td of need.domains) {
        const owner = clusters.find((x) => x.trustDomain === td);
        if (!owner) problems.push(`trust domain ${td} belongs to no registered cluster`);
        else if (!owner.bundle) problems.push(`cluster ${owner.name} (${td}) declares no trust bundle`);
        else ok.push(`${owner.name} (${td})`);
      }
      if (problems.length > 0) add("routes", authName, "fail", `${problems.join("; ")}: those callers get 401`);
      else add("routes", authName, "pass", `identities of ${ok.join(", ")}`);
    }
  }
  return results;
}

const SYMBOL: Record<CheckStatus, string> = { pass: "√", warn: "‼", fail: "×" };

async function check(ctx: Ctx): Promise<number> {
  const results = await runChecks(ctx);
  const count = (s: CheckStatus) => results.filter((r) => r.status === s).length;
  const failed = count("fail");
  const summary = { passed: count("pass"), warnings: count("warn"), failed };
  if (ctx.out.json) {
    ctx.out.emit({ url: ctx.client.base, ok: failed === 0, summary, checks: results });
    return failed > 0 ? 1 : 0;
  }
  const o = ctx.out;
  const paint = (s: CheckStatus, t: string) => (s === "pass" ? o.green(t) : s === "warn" ? o.yellow(t) : o.red(t));
  let category = "";
  for (const r of results) {
    if (r.category !== category) {
      if (category !== "") o.line();
      category = r.category;
      o.line(o.bold(category));
      o.line("-".repeat(category.length));
    }
    if (r.status === "pass") o.line(`${paint("pass", SYMBOL.pass)} ${r.name} ${o.dim(`(${r.reason})`)}`);
    else {
      o.line(`${paint(r.status, SYMBOL[r.status])} ${r.name}`);
      o.line(`    ${r.reason}`);
      if (r.hint) o.line(`    ${o.dim(`hint: ${r.hint}`)}`);
    }
  }
  o.line();
  o.line(`Status check results are ${paint(failed > 0 ? "fail" : "pass", failed > 0 ? SYMBOL.fail : SYMBOL.pass)} (${summary.passed} passed, ${plural(summary.warnings, "warning")}, ${summary.failed} failed)`);
  return failed > 0 ? 1 : 0;
}

export const checkCommands: Command[] = [
  {
    path: ["check"],
    args: [],
    flags: [],
    summary: "check the gateway, its store, clock, signing key, clusters, trust bundles and routes",
    help: "Each check prints √ (pass), ‼ (warning) or × (fail) with its reason. Exit 1 when any check fails.",
    run: check,
  },
];
