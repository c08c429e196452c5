// SPIFFE IDs (spiffe://<trust-domain>/<path>) and the identity patterns routes admit.
// Pure functions; see the SPIFFE-ID standard for the character rules.

export interface SpiffeId {
  trustDomain: string;
  /** The path including its leading slash ("/ns/shop/sa/web"). */
  path: string;
}

const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;
const SEGMENT = /^[A-Za-z0-9._-]+$/;

/** Parses a workload SPIFFE ID; null when it is not one (no path, bad characters, dot segments, too long). */
export function parseSpiffeId(text: string): SpiffeId | null {
  if (text.length > 2048 || !text.startsWith("spiffe://")) return null;
  const rest = text.slice("spiffe://".length);
  const slash = rest.indexOf("/");
  if (slash <= 0) return null;
  const trustDomain = rest.slice(0, slash);
  const path = rest.slice(slash);
  if (!TRUST_DOMAIN.test(trustDomain)) return null;
  const segments = path.slice(1).split("/");
  for (const s of segments) if (!SEGMENT.test(s) || s === "." || s === "..") return null;
  return { trustDomain, path };
}

/**
 * Whether an identity is admitted by a list of exact SPIFFE IDs and `spiffe://td/prefix/*` patterns.
 * A pattern matches whole path segments below its prefix: `spiffe://td/ns/shop/*` admits
 * `spiffe://td/ns/shop/sa/web`, not `spiffe://td/ns/shopping/sa/x`; `spiffe://td/*` admits the whole domain.
 */
export function identityAdmitted(identity: string, patterns: readonly string[]): boolean {
  for (const p of patterns) {
    if (p.endsWith("/*")) {
      const prefix = p.slice(0, -1); // keeps the trailing "/"
      if (identity.startsWith(prefix) && identity.length > prefix.length) return true;
    } else if (identity === p) return true;
  }
  return false;
}

const SERVICE_ACCOUNT = /^system:serviceaccount:([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?):([a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?)$/;

/** The SPIFFE identity of a Kubernetes service account (Linkerd's and Istio's naming), or null for another subject. */
export function serviceAccountIdentity(trustDomain: string, sub: string): string | null {
  const m = SERVICE_ACCOUNT.exec(sub);
  if (!m) return null;
  return `spiffe://${trustDomain}/ns/${m[1]}/sa/${m[3]}`;
}
