// The gateway's signing keys: the current private key (signs) and the previous public key (still
// published, so a token signed just before a rotation still verifies at the destination).
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK } from "jose";

export interface SigningKey {
  kid: string;
  alg: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export interface SigningKeyRing {
  current: SigningKey;
  /** Public only: published, never used to sign. */
  previous: JWK | null;
  /** Where the keys came from, for logs and checks. */
  origin: "secret" | "ephemeral";
}

function defaultAlg(jwk: JWK): string {
  if (typeof jwk.alg === "string") return jwk.alg;
  if (jwk.kty === "EC") return jwk.crv === "P-384" ? "ES384" : jwk.crv === "P-521" ? "ES512" : "ES256";
  if (jwk.kty === "RSA") return "RS256";
  throw new Error(`unsupported signing key type ${String(jwk.kty)} (use an EC or RSA private JWK)`);
}

function parseJwk(text: string, what: string): JWK {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new Error(`${what} is not JSON (expected a private JWK)`);
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) throw new Error(`${what} is not a JWK object`);
  return v as JWK;
}

/** The public members of an EC or RSA key, by allow-list: nothing else can ever be published. */
export function publicPart(jwk: JWK): JWK {
  if (jwk.kty === "EC") return { kty: "EC", crv: jwk.crv, x: jwk.x, y: jwk.y };
  if (jwk.kty === "RSA") return { kty: "RSA", n: jwk.n, e: jwk.e };
  throw new Error(`unsupported key type ${String(jwk.kty)}: only EC and RSA keys are used`);
}

/** Imports a private JWK (the secret's value) as the signing key. */
export async function signingKeyFromJwkText(text: string, what = "signing key"): Promise<SigningKey> {
  const jwk = parseJwk(text, what);
  if (typeof jwk.d !== "string") throw new Error(`${what} is not a private key (no "d")`);
  const alg = defaultAlg(jwk);
  if (!/^(RS|ES|PS)(256|384|512)$/.test(alg)) throw new Error(`${what}: alg ${alg} is not allowed (RS/ES/PS 256/384/512)`);
  let privateKey: CryptoKey;
  try {
    privateKey = (await importJWK({ ...jwk, alg }, alg)) as CryptoKey;
  } catch (err) {
    throw new Error(`${what}: not a usable private key: ${(err as Error).message}`, { cause: err });
  }
  const pub = publicPart(jwk);
  const kid = typeof jwk.kid === "string" && jwk.kid !== "" ? jwk.kid : await calculateJwkThumbprint(pub);
  return { kid, alg, privateKey, publicJwk: { ...pub, kid, alg, use: "sig" } };
}

/** The public JWK of a previous key (the AWSPREVIOUS secret version), for publishing only. */
export async function publicJwkFromText(text: string, what = "previous signing key"): Promise<JWK> {
  const jwk = parseJwk(text, what);
  const alg = defaultAlg(jwk);
  if (!/^(RS|ES|PS)(256|384|512)$/.test(alg)) throw new Error(`${what}: alg ${alg} is not allowed (RS/ES/PS 256/384/512)`);
  const pub = publicPart(jwk);
  const kid = typeof jwk.kid === "string" && jwk.kid !== "" ? jwk.kid : await calculateJwkThumbprint(pub);
  return { ...pub, kid, alg, use: "sig" };
}

/** A fresh ES256 key for a gateway with no configured key: tokens it signs die with the process. */
export async function ephemeralSigningKey(): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
  const pub = await exportJWK(publicKey);
  const kid = `ephemeral-${(await calculateJwkThumbprint(pub)).slice(0, 16)}`;
  return { kid, alg: "ES256", privateKey: privateKey as CryptoKey, publicJwk: { ...pub, kid, alg: "ES256", use: "sig" } };
}
