// isthmus clusters; isthmus cluster register NAME --endpoint URL (--issuer URL | --bundle-url URL) [--trust-domain TD]
import { UsageError } from "./args.ts";
import { ApiError } from "./client.ts";
import type { ClusterView, Command, Ctx } from "./context.ts";
import { ms } from "./output.ts";

async function listClusters(ctx: Ctx): Promise<number> {
  const { items } = await ctx.client.admin<{ items: ClusterView[] }>("GET", "/clusters");
  if (ctx.out.json) {
    ctx.out.emit({ items });
    return 0;
  }
  if (items.length === 0) {
    ctx.out.line("No clusters registered. Add one with: isthmus cluster register NAME --endpoint URL --issuer URL --trust-domain TD");
    return 0;
  }
  const o = ctx.out;
  o.table(
    ["NAME", "ENDPOINT", "TRUST-DOMAIN", "ALIVE", "LATENCY", "LAST-ERROR"],
    items.map((c) => {
      const h = c.status?.health;
      const alive = !h || h.alive === null ? o.yellow("unknown") : h.alive ? o.green("yes") : o.red("no");
      const lastError = h?.lastError ? `${h.lastError}${h.consecutiveFailures > 0 ? ` (${h.consecutiveFailures}x)` : ""}` : "-";
      return [c.name, c.endpoint, c.trustDomain, alive, ms(h?.lastLatencyMs), lastError];
    }),
  );
  return 0;
}

/** What an OIDC discovery document must give us. */
interface Discovery {
  issuer: string;
  jwks_uri: string;
}

export class DiscoveryError extends Error {}

async function fetchJson(url: string, what: string): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url, { headers: { accept: "application/json" }, signal: AbortSignal.timeout(10_000), redirect: "follow" });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    throw new DiscoveryError(`cannot fetch ${what} ${url}: ${e.name === "TimeoutError" ? "no answer within 10 s" : (e.cause?.code ?? e.message)}`);
  }
  const text = await res.text();
  if (res.status !== 200) throw new DiscoveryError(`GET ${url} (${what}) answered HTTP ${res.status}`);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new DiscoveryError(`GET ${url} (${what}) did not answer JSON`);
  }
}

/** Reads ISSUER/.well-known/openid-configuration and checks it names this issuer and a JWKS URL. */
export async function discover(issuer: string): Promise<Discovery> {
  const url = `${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`;
  const doc = (await fetchJson(url, "the OIDC discovery document")) as Partial<Discovery> | null;
  if (!doc || typeof doc !== "object" || typeof doc.issuer !== "string") throw new DiscoveryError(`${url} has no "issuer"`);
  // Tokens carry the document's issuer as `iss`, and the gateway picks the cluster by exact `iss`.
  if (doc.issuer !== issuer) throw new DiscoveryError(`${url} names the issuer "${doc.issuer}", not "${issuer}": service-account tokens carry "${doc.issuer}" as iss; register with --issuer ${doc.issuer}`);
  if (typeof doc.jwks_uri !== "string" || !/^https?:\/\//.test(doc.jwks_uri)) throw new DiscoveryError(`${url} has no http(s) "jwks_uri"`);
  return { issuer: doc.issuer, jwks_uri: doc.jwks_uri };
}

async function register(ctx: Ctx): Promise<number> {
  const name = ctx.args[0] as string;
  const f = ctx.flags;
  if (!f.endpoint) throw new UsageError("cluster register needs --endpoint URL (where the gateway sends this cluster's traffic, e.g. its ingress)");
  if (!f.issuer && !f["bundle-url"])
    throw new UsageError("cluster register needs --issuer URL (the cluster's Kubernetes service-account issuer) or --bundle-url URL (a SPIFFE bundle endpoint), or both");

  const existing = await ctx.client.admin<ClusterView>("GET", `/clusters/${encodeURIComponent(name)}`).catch((err: unknown) => {
    if (err instanceof ApiError && (err.status === 404 || err.status === 400)) return null;
    throw err;
  });
  // The trust domain is never guessed: it must equal the one in the workloads' SPIFFE IDs and be unique.
  let trustDomainFrom = "--trust-domain";
  let trustDomain = f["trust-domain"];
  if (!trustDomain && existing) {
    trustDomain = existing.trustDomain;
    trustDomainFrom = "kept from the existing registration";
  }
  if (!trustDomain)
    throw new UsageError(
      `cluster register needs --trust-domain for a new cluster: the trust domain of the identities its workloads get ` +
        `(spiffe://<trust-domain>/ns/<ns>/sa/<sa>), unique across clusters. It cannot be derived from the issuer; ` +
        `Linkerd's default "cluster.local" is the same in every cluster, so pick one per cluster (e.g. ${name}.example.com).`,
    );

  const bundle: Record<string, unknown> = {};
  const notes: string[] = [];
  if (f["bundle-url"]) {
    bundle.url = f["bundle-url"];
    notes.push(`SPIFFE bundle endpoint ${f["bundle-url"]}`);
  }
  if (f.issuer) {
    let d: Discovery;
    try {
      d = await discover(f.issuer);
    } catch (err) {
      if (err instanceof DiscoveryError) {
        ctx.out.error(new Error(err.message));
        return 1;
      }
      throw err;
    }
    bundle.kubernetes = { issuer: d.issuer, url: d.jwks_uri };
    // A look at the keys now saves a puzzling 401 later; the gateway fetches them itself.
    const keys = await fetchJson(d.jwks_uri, "the issuer's JWKS").then(
      (j) => (Array.isArray((j as { keys?: unknown })?.keys) ? (j as { keys: unknown[] }).keys.length : null),
      (err: unknown) => {
        ctx.out.warn(`${(err as Error).message}; the gateway will fetch it itself, but it must be reachable from the gateway`);
        return undefined;
      },
    );
    if (keys === null) ctx.out.warn(`${d.jwks_uri} is not a JWK set (no "keys" array)`);
    notes.push(`Kubernetes issuer ${d.issuer}, keys from ${d.jwks_uri}${typeof keys === "number" ? ` (${keys} key${keys === 1 ? "" : "s"} now)` : ""}`);
  }

  const spec: Record<string, unknown> = { endpoint: f.endpoint, trustDomain, bundle };
  // Re-registering keeps what this command does not set.
  if (existing?.metrics) spec.metrics = existing.metrics;
  if (existing?.health) spec.health = existing.health;
  const res = await ctx.client.adminWithHeaders<ClusterView>("PUT", `/clusters/${encodeURIComponent(name)}`, spec);
  const outcome = res.status === 201 ? "created" : existing && existing.updatedAt === res.body.updatedAt ? "unchanged" : "updated";
  if (ctx.out.json) {
    ctx.out.emit({ outcome, trustDomainFrom, cluster: res.body });
    return 0;
  }
  ctx.out.line(`cluster/${name} ${outcome}`);
  ctx.out.line(`  endpoint:     ${f.endpoint}`);
  ctx.out.line(`  trust domain: ${trustDomain} (${trustDomainFrom})`);
  for (const n of notes) ctx.out.line(`  bundle:       ${n}`);
  return 0;
}

export const clusterCommands: Command[] = [
  { path: ["clusters"], args: [], flags: [], summary: "list clusters with their health (alive, probe latency, last error)", run: listClusters },
  {
    path: ["cluster", "register"],
    args: ["NAME"],
    synopsis: "NAME --endpoint URL (--issuer URL | --bundle-url URL) [--trust-domain TD]",
    flags: ["endpoint", "issuer", "trust-domain", "bundle-url"],
    summary: "register a cluster from its OIDC issuer (or SPIFFE bundle endpoint)",
    help:
      "Reads ISSUER/.well-known/openid-configuration, takes its jwks_uri, and registers the cluster with\n" +
      'bundle {"kubernetes": {"issuer", "url": jwks_uri}} so its projected service-account tokens are accepted.\n' +
      '--bundle-url adds (or instead gives) a SPIFFE bundle endpoint: bundle {"url"}.\n' +
      "--trust-domain is required for a new cluster (kept from the existing registration otherwise).",
    run: register,
  },
];
