// Admin authentication: a static bearer token (ISTHMUS_ADMIN_TOKEN, or read from Secrets Manager),
// compared in constant time, or an admin JWT from an OIDC issuer carrying isthmus:* scopes.
import { jwtVerify, type JWTVerifyGetKey } from "jose";
import { ALLOWED_ALGORITHMS } from "../identity/verify-caller.ts";

const encoder = new TextEncoder();

async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

export function timingSafeEqualBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] as number) ^ (b[i] as number);
  return diff === 0;
}

export type AdminScope = "isthmus:read" | "isthmus:write" | "isthmus:rollout";
export const ALL_SCOPES: readonly AdminScope[] = ["isthmus:read", "isthmus:write", "isthmus:rollout"];

/**
 * The scope an admin call needs: reads need isthmus:read; changes need isthmus:write; rollout verbs
 * need isthmus:rollout. `path` may be the served path or its OpenAPI template (`/rollouts/{name}/abort`).
 */
export function scopeFor(method: string, path: string): AdminScope {
  if (method === "GET" || method === "HEAD") return "isthmus:read";
  if (/\/rollouts(\/|$)/.test(path)) return "isthmus:rollout";
  return "isthmus:write";
}

export interface AdminPrincipal {
  /** Who, for the audit trail: "admin-token" or the JWT's sub. */
  actor: string;
  scopes: ReadonlySet<AdminScope>;
}

export type AdminAuthResult =
  | { ok: true; principal: AdminPrincipal }
  | { ok: false; status: 401; reason: "not-configured" | "missing" | "malformed" | "invalid" }
  | { ok: false; status: 403; reason: "scope"; actor: string; needed: AdminScope };

export interface AdminAuthOptions {
  /** The current static token; a function so a rotated secret takes effect. */
  token?: () => string | undefined;
  oidc?: { issuer: string; audience: string; getKey: JWTVerifyGetKey };
}

/** Checks an Authorization header for an admin call that needs `scope`. */
export function createAdminAuth(opts: AdminAuthOptions): (authorization: string | null, scope: AdminScope) => Promise<AdminAuthResult> {
  let cachedFor: string | undefined;
  let expected: Promise<Uint8Array> | null = null;
  const expectedDigest = () => {
    const t = opts.token?.();
    if (!t) return null;
    if (t !== cachedFor) {
      cachedFor = t;
      expected = sha256(t);
    }
    return expected;
  };
  return async (authorization, scope) => {
    const digest = expectedDigest();
    if (!digest && !opts.oidc) return { ok: false, status: 401, reason: "not-configured" };
    if (!authorization) return { ok: false, status: 401, reason: "missing" };
    const m = /^Bearer ([\x21-\x7e]{1,8192})$/.exec(authorization);
    if (!m) return { ok: false, status: 401, reason: "malformed" };
    const presented = m[1] as string;
    if (digest && timingSafeEqualBytes(await sha256(presented), await digest)) return { ok: true, principal: { actor: "admin-token", scopes: new Set(ALL_SCOPES) } };
    if (opts.oidc && presented.split(".").length === 3) {
      try {
        const { payload } = await jwtVerify(presented, opts.oidc.getKey, {
          issuer: opts.oidc.issuer,
          audience: opts.oidc.audience,
          algorithms: ALLOWED_ALGORITHMS,
          clockTolerance: 30,
          requiredClaims: ["exp", "sub"],
        });
        const raw = typeof payload.scope === "string" ? payload.scope.split(" ") : Array.isArray(payload.scp) ? payload.scp : [];
        const scopes = new Set(raw.filter((s): s is AdminScope => (ALL_SCOPES as readonly unknown[]).includes(s)));
        // Write implies read: an operator who may change routes may also see them.
        if (scopes.has("isthmus:write") || scopes.has("isthmus:rollout")) scopes.add("isthmus:read");
        const actor = `oidc:${String(payload.sub)}`;
        if (!scopes.has(scope)) return { ok: false, status: 403, reason: "scope", actor, needed: scope };
        return { ok: true, principal: { actor, scopes } };
      } catch {
        return { ok: false, status: 401, reason: "invalid" };
      }
    }
    return { ok: false, status: 401, reason: "invalid" };
  };
}
