// Admin bearer-token check. Both sides are hashed first, then compared in constant time, so
// neither the token's content nor its length leaks through timing.
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

export type AdminAuthResult = { ok: true } | { ok: false; reason: "not-configured" | "missing" | "malformed" | "invalid" };

/** Checks an Authorization header against the admin token. An unset token refuses everything. */
export function createAdminAuth(token: string | undefined): (authorization: string | null) => Promise<AdminAuthResult> {
  const expected = token ? sha256(token) : null;
  return async (authorization) => {
    if (!expected) return { ok: false, reason: "not-configured" };
    if (!authorization) return { ok: false, reason: "missing" };
    const m = /^Bearer ([\x21-\x7e]{1,4096})$/.exec(authorization);
    if (!m) return { ok: false, reason: "malformed" };
    const same = timingSafeEqualBytes(await sha256(m[1] as string), await expected);
    return same ? { ok: true } : { ok: false, reason: "invalid" };
  };
}
