// Verifies the caller's token (SPEC.md "Identity"): a JWT-SVID checked against the bundle of the
// trust domain its `sub` names, or a Kubernetes projected service-account token checked against
// the keys of the issuer that registered it. Every check fails closed; verified tokens are cached
// by the SHA-256 of their bytes, so a repeated token costs a hash and a map lookup.
import { errors as joseErrors, jwtVerify } from "jose";
import { createHash } from "node:crypto";
import { TtlCache } from "../util/ttl-cache.ts";
import { parseSpiffeId, serviceAccountIdentity } from "./spiffe.ts";
import type { TrustEntry, TrustStore } from "./trust-store.ts";

export const ALLOWED_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"];
const ALLOWED = new Set(ALLOWED_ALGORITHMS);
const HEADER_PARAMS = new Set(["alg", "kid", "typ"]);
const TOKEN = /^Bearer ([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/;

export interface VerifiedCaller {
  /** The caller's SPIFFE ID. */
  identity: string;
  cluster: string;
  trustDomain: string;
  kind: "jwt-svid" | "kubernetes";
  claims: Readonly<Record<string, unknown>>;
  /** SHA-256 prefix of the token, for logs (never the token itself). */
  tokenId: string;
}

interface CacheEntry {
  caller: VerifiedCaller;
  /** What verified it: a hit is honoured only while the same bundle still holds the same kid. */
  source: TrustEntry["source"];
  kid: string;
  issuer?: string;
  /** The answer to a hit, made once. */
  hit?: VerifyResult;
}

export type VerifyResult = { ok: true; caller: VerifiedCaller } | { ok: false; missing: boolean; reason: string; tokenId?: string };

export interface VerifierOptions {
  audience: string;
  /** At most 30 s (SPEC.md). */
  clockToleranceS?: number;
  maxTokenBytes?: number;
  cacheEntries?: number;
  /** How long a verified token may be served from cache at most, whatever its expiry. */
  cacheTtlMs?: number;
  now?: () => number;
}

export class CallerVerifier {
  /** Signature verifications performed (a cache hit does none). */
  signatureChecks = 0;
  cacheHits = 0;
  private readonly cache: TtlCache<CacheEntry>;
  private readonly recentIds = new Map<string, string>();
  private readonly now: () => number;

  constructor(
    private readonly trust: TrustStore,
    private readonly opts: VerifierOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.cache = new TtlCache(opts.cacheEntries ?? 10_000, this.now);
  }

  /**
   * The answer for a token verified before and still trusted, without a promise: the hot path's
   * common case. Undefined when the token must go through `verify`.
   */
  verifyCached(authorization: string | null): VerifyResult | undefined {
    if (authorization === null) return undefined;
    // Only tokens that matched TOKEN are remembered, so a hit needs neither the regex nor a hash.
    const tokenId = this.recentIds.get(authorization);
    return tokenId === undefined ? undefined : this.cachedVerdict(tokenId);
  }

  /** `authorization` is the Authorization header as received (several headers joined by ", "). */
  async verify(authorization: string | null): Promise<VerifyResult> {
    if (authorization === null || authorization === "") return { ok: false, missing: true, reason: "no Authorization header" };
    if (authorization.length > (this.opts.maxTokenBytes ?? 8192)) return fail("token too large");
    const m = TOKEN.exec(authorization);
    if (!m) return fail('Authorization must be exactly "Bearer <compact JWS>" (one header, one token)');
    const token = authorization.slice(7);
    const tokenId = this.tokenIdOf(authorization, token);
    const hit = this.cachedVerdict(tokenId);
    if (hit) return hit;

    const header = decodeSegment(m[1] as string);
    const payload = decodeSegment(m[2] as string);
    if (!header || !payload) return fail("token header or payload is not base64url JSON", tokenId);
    const unknownParam = Object.keys(header).find((k) => !HEADER_PARAMS.has(k));
    if (unknownParam !== undefined) return fail(`header parameter "${unknownParam}" is not allowed`, tokenId);
    if (typeof header.alg !== "string" || !ALLOWED.has(header.alg)) return fail(`alg ${JSON.stringify(header.alg)} is not allowed`, tokenId);
    if (typeof header.kid !== "string" || header.kid === "" || header.kid.length > 256) return fail("kid is required", tokenId);
    if (header.typ !== undefined && header.typ !== "JWT" && header.typ !== "JOSE") return fail(`typ ${JSON.stringify(header.typ)} is not JWT or JOSE`, tokenId);
    if (typeof payload.sub !== "string") return fail("sub is required", tokenId);

    // Which path: a registered Kubernetes issuer, or a JWT-SVID whose sub names the trust domain.
    let entry: TrustEntry;
    let identity: string;
    let kind: VerifiedCaller["kind"];
    let issuer: string | undefined;
    const byIssuer = typeof payload.iss === "string" ? this.trust.issuer(payload.iss) : undefined;
    if (byIssuer) {
      const id = serviceAccountIdentity(byIssuer.trustDomain, payload.sub);
      if (!id) return fail("sub of a Kubernetes token must be system:serviceaccount:<namespace>:<name>", tokenId);
      if (!payload["kubernetes.io"] || typeof payload["kubernetes.io"] !== "object") return fail("not a projected service-account token (no kubernetes.io claim)", tokenId);
      entry = byIssuer;
      identity = id;
      kind = "kubernetes";
      issuer = byIssuer.issuer;
    } else {
      const spiffe = parseSpiffeId(payload.sub);
      if (!spiffe) return fail("sub is not a SPIFFE ID", tokenId);
      const td = this.trust.svid(spiffe.trustDomain);
      if (!td) return fail(`trust domain ${spiffe.trustDomain} is not registered`, tokenId);
      entry = td;
      identity = payload.sub;
      kind = "jwt-svid";
    }

    let keys = await entry.source.current();
    if (!keys) return fail(`no keys for ${entry.trustDomain} (${entry.source.status().lastError ?? "not loaded"})`, tokenId);
    if (!keys.kids.has(header.kid)) {
      keys = await entry.source.afterUnknownKid();
      if (!keys?.kids.has(header.kid)) return fail(`kid ${JSON.stringify(header.kid.slice(0, 64))} is not in the ${kind === "kubernetes" ? "issuer's JWKS" : "trust bundle"} of ${entry.trustDomain}`, tokenId);
    }

    this.signatureChecks += 1;
    let claims: Record<string, unknown>;
    try {
      const res = await jwtVerify(token, keys.getKey, {
        algorithms: ALLOWED_ALGORITHMS,
        audience: this.opts.audience,
        clockTolerance: Math.min(this.opts.clockToleranceS ?? 30, 30),
        requiredClaims: ["exp", "sub", "aud"],
        currentDate: new Date(this.now()),
        ...(issuer ? { issuer } : {}),
      });
      claims = res.payload as Record<string, unknown>;
    } catch (err) {
      return fail(joseReason(err), tokenId);
    }
    const caller: VerifiedCaller = { identity, cluster: entry.cluster, trustDomain: entry.trustDomain, kind, claims, tokenId: tokenId.slice(0, 16) };
    const exp = typeof claims.exp === "number" ? claims.exp * 1000 : 0;
    this.cache.set(tokenId, { caller, source: entry.source, kid: header.kid, ...(issuer ? { issuer } : {}) }, Math.min(exp, this.now() + (this.opts.cacheTtlMs ?? 300_000)));
    return { ok: true, caller };
  }

  /** The verdict for a token verified before, while it is still cached and its key still trusted. */
  private cachedVerdict(tokenId: string): VerifyResult | undefined {
    const cached = this.cache.get(tokenId);
    if (!cached || !this.stillTrusted(cached)) return undefined;
    this.cacheHits += 1;
    return (cached.hit ??= { ok: true, caller: cached.caller });
  }

  /** A cluster deleted, its bundle replaced, or the key dropped from it: the cached verdict no longer holds. */
  private stillTrusted(e: CacheEntry): boolean {
    const entry = e.issuer !== undefined ? this.trust.issuer(e.issuer) : this.trust.svid(e.caller.trustDomain);
    if (!entry || entry.source !== e.source || entry.cluster !== e.caller.cluster) return false;
    return entry.source.peek()?.kids.has(e.kid) ?? false;
  }

  /**
   * The token's SHA-256 (what the verification cache is keyed by), remembered for tokens seen
   * recently: a workload sends the same token for its whole lifetime, and hashing it on every
   * request was a measurable part of the hot path. Kept by the whole Authorization header (which
   * matched TOKEN), so a repeat costs one map lookup and no regex. Bounded; emptied whole when full.
   */
  private tokenIdOf(authorization: string, token: string): string {
    let id = this.recentIds.get(authorization);
    if (id === undefined) {
      id = sha256Hex(token);
      if (this.recentIds.size >= RECENT_IDS) this.recentIds.clear();
      this.recentIds.set(authorization, id);
    }
    return id;
  }

  /** Drops every cached verification (e.g. after a bundle removed a key). */
  clearCache(): void {
    this.cache.clear();
  }
}

function fail(reason: string, tokenId?: string): VerifyResult {
  return { ok: false, missing: false, reason, ...(tokenId ? { tokenId: tokenId.slice(0, 16) } : {}) };
}

function decodeSegment(seg: string): Record<string, unknown> | null {
  try {
    const b64 = seg.replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(b64 + "===".slice((b64.length + 3) % 4));
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    const v = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes)) as unknown;
    return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function joseReason(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return "token expired";
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `claim check failed: ${err.claim} ${err.reason}`;
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return "signature verification failed";
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return "algorithm not allowed";
  if (err instanceof joseErrors.JWKSNoMatchingKey) return "no key matches kid and alg";
  if (err instanceof joseErrors.JWTInvalid || err instanceof joseErrors.JWSInvalid) return `malformed token: ${err.message}`;
  return err instanceof Error ? `verification failed: ${err.message}` : "verification failed";
}

// node:crypto (Node, Lambda, and Workers with nodejs_compat) hashes synchronously: WebCrypto's
// digest is a thread-pool round trip, which on the hot path cost more than the verification cache saved.
const RECENT_IDS = 1_024;

function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}
