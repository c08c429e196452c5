// Environment variables shared by the Node and Lambda runtimes (SPEC.md "Configuration"), read in
// one place so both runtimes mean the same thing by each name.
import type { GatewayOptions } from "../gateway.ts";

type Env = Record<string, string | undefined>;

/** The gateway options every runtime reads from the environment. Throws on a half-configured OIDC issuer. */
export function gatewayOptionsFromEnv(env: Env): GatewayOptions {
  const oidcIssuer = env.ISTHMUS_ADMIN_OIDC_ISSUER || undefined;
  const oidcJwks = env.ISTHMUS_ADMIN_OIDC_JWKS_URL || undefined;
  if ((oidcIssuer && !oidcJwks) || (!oidcIssuer && oidcJwks)) throw new Error("set both ISTHMUS_ADMIN_OIDC_ISSUER and ISTHMUS_ADMIN_OIDC_JWKS_URL, or neither");
  return {
    adminToken: env.ISTHMUS_ADMIN_TOKEN || undefined,
    adminTokenSecretId: env.ISTHMUS_ADMIN_TOKEN_SECRET_ID || undefined,
    adminOidc: oidcIssuer && oidcJwks ? { issuer: oidcIssuer, jwksUrl: oidcJwks, audience: env.ISTHMUS_ADMIN_OIDC_AUDIENCE || "isthmus-admin" } : undefined,
    audience: env.ISTHMUS_AUDIENCE || "isthmus",
    issuer: env.ISTHMUS_ISSUER || undefined,
    signingKeySecretId: env.ISTHMUS_SIGNING_KEY_SECRET_ID || undefined,
    gatewayName: env.ISTHMUS_GATEWAY_NAME || undefined,
  };
}
