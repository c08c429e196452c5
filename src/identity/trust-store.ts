// The trust bundles of the registered clusters: one key source per trust domain (JWT-SVIDs) and
// one per Kubernetes service-account issuer. Bundles of different trust domains are never merged,
// and an issuer belongs to exactly one cluster.
import type { Cluster } from "../config/schemas.ts";
import type { CompiledCluster } from "../routing/table.ts";
import type { CachedSecrets } from "../secrets/secrets.ts";
import { canonicalJson } from "../util/canonical-json.ts";
import { silentLogger, type Logger } from "../util/log.ts";
import { fetchJson, type FetchLike } from "./fetch-json.ts";
import { KeySource, type BundleLoader, type LoadedBundle } from "./key-source.ts";

export interface TrustEntry {
  cluster: string;
  trustDomain: string;
  source: KeySource;
}

export interface IssuerEntry extends TrustEntry {
  issuer: string;
}

export interface TrustStoreDeps {
  fetch: FetchLike;
  secrets?: CachedSecrets;
  log?: Logger;
  now?: () => number;
  /** Refresh of bundles fetched by URL when they give no hint, and of secret-held bundles. */
  defaultRefreshS?: number;
  unknownKidCooldownMs?: number;
}

export class TrustStore {
  private byDomain = new Map<string, TrustEntry>();
  private byIssuer = new Map<string, IssuerEntry>();
  /** Sources survive table swaps when their cluster's bundle config did not change. */
  private sources = new Map<string, KeySource>();
  private readonly log: Logger;

  constructor(private readonly deps: TrustStoreDeps) {
    this.log = deps.log ?? silentLogger;
  }

  svid(trustDomain: string): TrustEntry | undefined {
    return this.byDomain.get(trustDomain);
  }

  issuer(iss: string): IssuerEntry | undefined {
    return this.byIssuer.get(iss);
  }

  /** Rebuilds the maps from the registered clusters; starts loading new bundles at once. */
  sync(clusters: ReadonlyMap<string, CompiledCluster>): void {
    const byDomain = new Map<string, TrustEntry>();
    const byIssuer = new Map<string, IssuerEntry>();
    const keep = new Map<string, KeySource>();
    const source = (key: string, make: () => KeySource): KeySource => {
      const s = keep.get(key) ?? this.sources.get(key) ?? make();
      keep.set(key, s);
      return s;
    };
    // The current owner of an issuer keeps it; a newcomer claiming it is ignored (the store also refuses it).
    const ordered = [...clusters.values()].sort((a, b) => {
      const ao = this.byIssuer.get(a.spec.bundle?.kubernetes?.issuer ?? "")?.cluster === a.name ? 0 : 1;
      const bo = this.byIssuer.get(b.spec.bundle?.kubernetes?.issuer ?? "")?.cluster === b.name ? 0 : 1;
      return ao - bo || a.name.localeCompare(b.name);
    });
    for (const c of ordered) {
      const b = c.spec.bundle;
      if (!b) continue;
      if (b.jwks || b.url || b.secretId) {
        const key = `svid|${c.trustDomain}|${canonicalJson({ jwks: b.jwks, url: b.url, secretId: b.secretId })}`;
        byDomain.set(c.trustDomain, { cluster: c.name, trustDomain: c.trustDomain, source: source(key, () => this.svidSource(c.name, b)) });
      }
      if (b.kubernetes) {
        const k = b.kubernetes;
        const owner = byIssuer.get(k.issuer);
        if (owner) {
          this.log.error("a Kubernetes issuer can belong to one cluster only; ignoring it for this one", { issuer: k.issuer, cluster: c.name, owner: owner.cluster });
          continue;
        }
        const key = `oidc|${c.trustDomain}|${canonicalJson(k)}`;
        byIssuer.set(k.issuer, { cluster: c.name, trustDomain: c.trustDomain, issuer: k.issuer, source: source(key, () => this.oidcSource(c.name, k)) });
      }
    }
    this.sources = keep;
    this.byDomain = byDomain;
    this.byIssuer = byIssuer;
    // Load new bundles now (inline ones too), so a bad bundle shows in /bundles before any token needs it.
    for (const s of keep.values()) {
      if (s.peek()) s.refreshIfDue();
      else void s.current().catch(() => undefined);
    }
  }

  status(): Array<{ cluster: string; trustDomain: string; kind: "jwt-svid" | "kubernetes"; issuer?: string } & ReturnType<KeySource["status"]>> {
    return [
      ...[...this.byDomain.values()].map((e) => ({ cluster: e.cluster, trustDomain: e.trustDomain, kind: "jwt-svid" as const, ...e.source.status() })),
      ...[...this.byIssuer.values()].map((e) => ({ cluster: e.cluster, trustDomain: e.trustDomain, kind: "kubernetes" as const, issuer: e.issuer, ...e.source.status() })),
    ];
  }

  private svidSource(cluster: string, b: NonNullable<Cluster["bundle"]>): KeySource {
    const opts = { kind: "jwt-svid" as const, defaultRefreshS: this.deps.defaultRefreshS, unknownKidCooldownMs: this.deps.unknownKidCooldownMs, now: this.deps.now, log: this.log };
    if (b.jwks) {
      const jwks = b.jwks;
      return new KeySource(`cluster ${cluster}: inline jwks`, async () => ({ jwks }), { ...opts, refreshes: false });
    }
    if (b.url) return new KeySource(`cluster ${cluster}: bundle endpoint ${b.url}`, this.urlLoader(b.url, true), { ...opts, refreshes: true });
    return new KeySource(`cluster ${cluster}: secret ${String(b.secretId)}`, this.secretLoader(b.secretId as string), { ...opts, refreshes: true });
  }

  private oidcSource(cluster: string, k: NonNullable<NonNullable<Cluster["bundle"]>["kubernetes"]>): KeySource {
    const opts = { kind: "oidc" as const, defaultRefreshS: this.deps.defaultRefreshS, unknownKidCooldownMs: this.deps.unknownKidCooldownMs, now: this.deps.now, log: this.log };
    if (k.jwks) {
      const jwks = k.jwks;
      return new KeySource(`cluster ${cluster}: kubernetes issuer ${k.issuer} (inline jwks)`, async () => ({ jwks }), { ...opts, refreshes: false });
    }
    return new KeySource(`cluster ${cluster}: kubernetes issuer ${k.issuer} (${String(k.url)})`, this.urlLoader(k.url as string, false), { ...opts, refreshes: true });
  }

  private urlLoader(url: string, spiffe: boolean): BundleLoader {
    return async (): Promise<LoadedBundle> => {
      const doc = await fetchJson(this.deps.fetch, url);
      return spiffe ? spiffeBundle(doc) : { jwks: doc };
    };
  }

  private secretLoader(id: string): BundleLoader {
    return async () => {
      if (!this.deps.secrets) throw new Error("no secrets provider configured");
      const text = await this.deps.secrets.get(id);
      if (text === null) throw new Error(`secret "${id}" not found`);
      return spiffeBundle(JSON.parse(text) as unknown);
    };
  }
}

function spiffeBundle(doc: unknown): LoadedBundle {
  const d = doc as { spiffe_refresh_hint?: unknown; spiffe_sequence?: unknown };
  return {
    jwks: doc,
    refreshHintS: typeof d?.spiffe_refresh_hint === "number" ? d.spiffe_refresh_hint : undefined,
    sequence: typeof d?.spiffe_sequence === "number" ? d.spiffe_sequence : undefined,
  };
}
