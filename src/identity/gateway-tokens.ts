// Tokens the gateway signs for the destination: "this call comes from <caller SPIFFE ID>, and
// the gateway vouches for it". Short-lived, audience-scoped to the destination's trust domain,
// cached per (caller, audience) until shortly before they expire.
import { SignJWT, type JWK } from "jose";
import { TtlCache } from "../util/ttl-cache.ts";
import type { SigningKeyRing } from "./signing-keys.ts";

export interface GatewayTokenOptions {
  issuer: string;
  ttlS?: number;
  /** A cached token is reused until this many seconds before it expires. */
  renewBeforeS?: number;
  cacheEntries?: number;
  now?: () => number;
}

export class GatewayTokens {
  signatures = 0;
  /** Each token with its Authorization header value, made once. */
  private readonly cache: TtlCache<{ token: string; header: string }>;
  private readonly now: () => number;
  private cachedKid: string | null = null;

  constructor(
    private readonly keys: () => SigningKeyRing,
    private readonly opts: GatewayTokenOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.cache = new TtlCache(opts.cacheEntries ?? 10_000, this.now);
  }

  /** `Bearer <token>` for a token still cached, without a promise (the hot path's common case). */
  cachedAuthorization(subject: string, audience: string): string | undefined {
    this.checkRotation();
    return this.cache.get(`${audience}\n${subject}`)?.header;
  }

  /** `Bearer <token>`, signing a new token when none is cached. */
  async authorization(subject: string, audience: string): Promise<string> {
    return `Bearer ${await this.tokenFor(subject, audience)}`;
  }

  async tokenFor(subject: string, audience: string): Promise<string> {
    const ring = this.checkRotation();
    const key = `${audience}\n${subject}`;
    const hit = this.cache.get(key);
    if (hit) return hit.token;
    const ttl = this.opts.ttlS ?? 300;
    const iat = Math.floor(this.now() / 1000);
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: ring.current.alg, kid: ring.current.kid, typ: "JWT" })
      .setIssuer(this.opts.issuer)
      .setSubject(subject)
      .setAudience(audience)
      .setIssuedAt(iat)
      .setExpirationTime(iat + ttl)
      .sign(ring.current.privateKey);
    this.signatures += 1;
    this.cache.set(key, { token, header: `Bearer ${token}` }, (iat + ttl - (this.opts.renewBeforeS ?? 60)) * 1000);
    return token;
  }

  private checkRotation(): SigningKeyRing {
    const ring = this.keys();
    if (ring.current.kid !== this.cachedKid) {
      // Rotated: new tokens come from the new key at once (the old one stays published as previous).
      this.cache.clear();
      this.cachedKid = ring.current.kid;
    }
    return ring;
  }

  /** The public keys to publish at /.well-known/jwks.json: current and previous. */
  jwks(): { keys: JWK[] } {
    const ring = this.keys();
    return { keys: ring.previous && ring.previous.kid !== ring.current.kid ? [ring.current.publicJwk, ring.previous] : [ring.current.publicJwk] };
  }
}
