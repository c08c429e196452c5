// Key and token factories for identity tests: real key pairs (WebCrypto through jose), real
// signatures, and full control over every header and claim, so a test can build exactly the
// malformed or hostile token it means (alg none, HMAC with a public key, crit, a payload that is a
// JSON array...) and still sign it properly when the point is that the signature is NOT the problem.
import { exportJWK, exportSPKI, generateKeyPair, type JWK } from "jose";

export type TestAlg = "ES256" | "ES384" | "RS256" | "PS256" | "EdDSA";

/** A JWK whose kty is known (what the config schema and jose's JWK sets require). */
export type KeyJwk = JWK & { kty: string };

export interface TestKey {
  alg: TestAlg;
  kid: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  /** Public members only (no kid, alg or use). */
  publicJwk: KeyJwk;
  /** The private JWK, with kid and alg (what a signing-key secret holds). */
  privateJwk: KeyJwk;
}

export async function makeKey(alg: TestAlg, kid: string): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...(alg === "EdDSA" ? { crv: "Ed25519" } : {}) });
  const publicJwk = (await exportJWK(publicKey)) as KeyJwk;
  const privateJwk = { ...((await exportJWK(privateKey)) as KeyJwk), kid, alg };
  return { alg, kid, privateKey, publicKey, publicJwk, privateJwk };
}

/** A bundle entry for a key: its public JWK with kid, alg and `use` (default "jwt-svid"). */
export function jwkEntry(key: TestKey, use: string | null = "jwt-svid", extra: Record<string, unknown> = {}): KeyJwk {
  return { ...key.publicJwk, kid: key.kid, alg: key.alg, ...(use === null ? {} : { use }), ...extra };
}

/** A SPIFFE trust bundle (JWK set) of the given entries. */
export function bundleOf(...entries: KeyJwk[]): { keys: KeyJwk[] } {
  return { keys: entries };
}

/** The public key as PEM (SPKI) text: what an alg-confusion attacker would use as an HMAC secret. */
export async function publicPem(key: TestKey): Promise<string> {
  return exportSPKI(key.publicKey);
}

// ---------------------------------------------------------------- encoding

const enc = new TextEncoder();

export function b64url(data: string | Uint8Array): string {
  return Buffer.from(typeof data === "string" ? enc.encode(data) : data).toString("base64url");
}

/** base64url of the JSON of a value (a string is encoded as is: lets a test send non-JSON). */
export function segment(value: unknown): string {
  return b64url(typeof value === "string" ? value : JSON.stringify(value));
}

export function decodeSegment(seg: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(seg, "base64url").toString("utf8")) as Record<string, unknown>;
}

export function decodeToken(token: string): { header: Record<string, unknown>; payload: Record<string, unknown> } {
  const [h, p] = token.split(".");
  return { header: decodeSegment(h ?? ""), payload: decodeSegment(p ?? "") };
}

// ---------------------------------------------------------------- signing

function subtleParams(alg: string): AlgorithmIdentifier | EcdsaParams | RsaPssParams {
  switch (alg) {
    case "ES256":
      return { name: "ECDSA", hash: "SHA-256" };
    case "ES384":
      return { name: "ECDSA", hash: "SHA-384" };
    case "RS256":
      return { name: "RSASSA-PKCS1-v1_5" };
    case "PS256":
      return { name: "RSA-PSS", saltLength: 32 };
    case "EdDSA":
      return { name: "Ed25519" };
    default:
      throw new Error(`no signer for ${alg}`);
  }
}

/**
 * A compact JWS over exactly this header and payload (objects are JSON-encoded, strings used as
 * is), signed with the key's own algorithm whatever the header says.
 */
export async function signRaw(header: unknown, payload: unknown, key: TestKey): Promise<string> {
  const input = `${segment(header)}.${segment(payload)}`;
  const sig = new Uint8Array(await crypto.subtle.sign(subtleParams(key.alg), key.privateKey, enc.encode(input)));
  return `${input}.${b64url(sig)}`;
}

/** A compact JWS whose signature is an HMAC (SHA-256 or SHA-512) keyed with the given bytes. */
export async function signHmac(header: unknown, payload: unknown, secret: Uint8Array | string, hash: "SHA-256" | "SHA-512" = "SHA-256"): Promise<string> {
  const raw = typeof secret === "string" ? enc.encode(secret) : secret;
  const k = await crypto.subtle.importKey("raw", raw as Uint8Array<ArrayBuffer>, { name: "HMAC", hash }, false, ["sign"]);
  const input = `${segment(header)}.${segment(payload)}`;
  const sig = new Uint8Array(await crypto.subtle.sign("HMAC", k, enc.encode(input)));
  return `${input}.${b64url(sig)}`;
}

/** An unsigned token (alg none): header.payload. followed by `signature` (empty by default). */
export function unsignedToken(header: unknown, payload: unknown, signature = ""): string {
  return `${segment(header)}.${segment(payload)}.${signature}`;
}

export const nowS = (): number => Math.floor(Date.now() / 1000);

export interface ClaimOptions {
  /** `aud`; null leaves it out. Default "isthmus". */
  aud?: string | string[] | null;
  /** Seconds from now to `exp`; default 300. Ignored when `exp` is given. */
  expiresInS?: number;
  /** Absolute `exp`; null leaves it out. */
  exp?: number | null;
  /** `iat`; default now; null leaves it out. */
  iat?: number | null;
  nbf?: number;
  iss?: string;
  /** Extra claims, merged last (they may override the ones above). */
  claims?: Record<string, unknown>;
}

export function claimsFor(sub: string | undefined, o: ClaimOptions = {}): Record<string, unknown> {
  const now = nowS();
  const aud = o.aud === undefined ? "isthmus" : o.aud;
  const exp = o.exp === undefined ? now + (o.expiresInS ?? 300) : o.exp;
  const iat = o.iat === undefined ? now : o.iat;
  return {
    ...(o.iss !== undefined ? { iss: o.iss } : {}),
    ...(sub !== undefined ? { sub } : {}),
    ...(aud !== null ? { aud } : {}),
    ...(exp !== null ? { exp } : {}),
    ...(iat !== null ? { iat } : {}),
    ...(o.nbf !== undefined ? { nbf: o.nbf } : {}),
    ...o.claims,
  };
}

export interface HeaderOptions {
  /** Header `alg`; default the key's. */
  alg?: string;
  /** Header `kid`; default the key's; null leaves it out. */
  kid?: string | null;
  /** Header `typ`; default "JWT"; null leaves it out. */
  typ?: string | null;
  /** Extra header parameters. */
  header?: Record<string, unknown>;
}

export function headerFor(key: TestKey, o: HeaderOptions = {}): Record<string, unknown> {
  const kid = o.kid === undefined ? key.kid : o.kid;
  const typ = o.typ === undefined ? "JWT" : o.typ;
  return { alg: o.alg ?? key.alg, ...(kid !== null ? { kid } : {}), ...(typ !== null ? { typ } : {}), ...o.header };
}

/** A JWT-SVID for `sub`, signed by `key` (sub undefined leaves the claim out). */
export async function jwtSvid(key: TestKey, sub: string | undefined, o: ClaimOptions & HeaderOptions = {}): Promise<string> {
  return signRaw(headerFor(key, o), claimsFor(sub, o), key);
}

export interface ProjectedTokenOptions extends ClaimOptions, HeaderOptions {
  issuer: string;
  namespace?: string;
  serviceAccount?: string;
  /** `sub`; default system:serviceaccount:<namespace>:<serviceAccount>. */
  sub?: string;
  /** Leave out the kubernetes.io claim. */
  omitKubernetesClaim?: boolean;
}

/**
 * A Kubernetes projected service-account token as the kubelet requests it (TokenRequest API):
 * iss, sub, aud array, exp/iat/nbf, and the kubernetes.io claim naming namespace, service account and pod.
 */
export async function projectedToken(key: TestKey, o: ProjectedTokenOptions): Promise<string> {
  const ns = o.namespace ?? "shop";
  const sa = o.serviceAccount ?? "web";
  const now = nowS();
  const claims = claimsFor(o.sub ?? `system:serviceaccount:${ns}:${sa}`, {
    aud: ["isthmus"],
    nbf: now,
    ...o,
    iss: o.issuer,
    claims: {
      ...(o.omitKubernetesClaim
        ? {}
        : {
            "kubernetes.io": {
              namespace: ns,
              serviceaccount: { name: sa, uid: "6f1c2a5e-2b5c-4a52-9e0b-5d6c8b1f2a11" },
              pod: { name: `${sa}-7d9c8b6f5-x2k4q`, uid: "0b8e6f1e-4c3a-4f7e-8d2b-1a9c3e5f7b20" },
            },
          }),
      ...o.claims,
    },
  });
  return signRaw(headerFor(key, { typ: null, ...o }), claims, key);
}

/** Authorization header of a bearer token. */
export const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });
