// JWK sets of trust bundles, adapted for jose without loosening any check.
import { createLocalJWKSet, type JWTVerifyGetKey } from "jose";

export type Jwk = Record<string, unknown> & { kty: string; kid?: string; use?: string };

/** Private-key members: a bundle that carries any of them is refused rather than used. */
const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "k"];

export interface KeySet {
  /** The kids present, so an unknown kid is known before any signature work. */
  kids: ReadonlySet<string>;
  getKey: JWTVerifyGetKey;
  size: number;
}

/**
 * The JWT keys of a SPIFFE bundle: entries whose `use` is "jwt-svid". jose only accepts `use`
 * "sig" (or none), so `use` is removed from the selected keys after selection: x509-svid keys
 * and keys for any other use stay out.
 */
export function svidKeySet(jwks: unknown): KeySet {
  return keySet(publicOnly(keysOf(jwks)).filter((k) => k.use === "jwt-svid"));
}

/** The signing keys of an OIDC issuer's JWKS (Kubernetes service-account issuers): `use` "sig" or absent. */
export function oidcKeySet(jwks: unknown): KeySet {
  return keySet(publicOnly(keysOf(jwks)).filter((k) => k.use === undefined || k.use === "sig"));
}

/** A set that carries private or symmetric key material anywhere is refused whole: it was published by mistake. */
function publicOnly(keys: Jwk[]): Jwk[] {
  for (const k of keys) if (PRIVATE_MEMBERS.some((m) => m in k)) throw new Error(`JWK set carries private or symmetric key material (kid ${String(k.kid)})`);
  return keys;
}

function keysOf(jwks: unknown): Jwk[] {
  if (!jwks || typeof jwks !== "object" || !Array.isArray((jwks as { keys?: unknown }).keys)) throw new Error("not a JWK set: no keys array");
  const keys = (jwks as { keys: unknown[] }).keys;
  if (keys.length > 64) throw new Error("JWK set has more than 64 keys");
  return keys.filter((k): k is Jwk => !!k && typeof k === "object" && typeof (k as Jwk).kty === "string");
}

function keySet(keys: Jwk[]): KeySet {
  const usable: Jwk[] = [];
  for (const k of keys) {
    if (typeof k.kid !== "string" || k.kid === "") continue; // kid is required to select a key
    const { use: _use, ...rest } = k;
    usable.push(rest as Jwk);
  }
  return { kids: new Set(usable.map((k) => k.kid as string)), getKey: createLocalJWKSet({ keys: usable as never[] }), size: usable.length };
}
