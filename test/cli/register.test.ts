// isthmus cluster register: reads a (local, real HTTP) OIDC discovery document and JWKS, registers the
// cluster with bundle.kubernetes, and the cluster's projected service-account tokens, signed with a
// real RS256 key, then pass the real gateway on a route that requires an identity.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningGateway } from "../../src/runtime/node.ts";
import { bearer, bundleOf, decodeToken, jwkEntry, makeKey, projectedToken, type TestKey } from "../helpers/identity.ts";
import { startUpstream, type Upstream, type UpstreamEcho } from "../helpers/upstream.ts";
import { admin, buildConfigWith, cli, json, startGateway, until } from "./helpers.ts";

let gw: RunningGateway;
let east: Upstream;
let kube: Upstream;
let oidc: Server;
let issuer: string;
let key: TestKey;
const hits: string[] = [];
const client = new Agent({ connections: 4 });

beforeAll(async () => {
  key = await makeKey("RS256", "kube-sa-1");
  oidc = createServer((req, res) => {
    hits.push(req.url ?? "");
    const json = (body: unknown) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
    if (req.url === "/.well-known/openid-configuration")
      return json({ issuer, jwks_uri: `${issuer}/openid/v1/jwks`, response_types_supported: ["id_token"], subject_types_supported: ["public"], id_token_signing_alg_values_supported: ["RS256"] });
    if (req.url === "/openid/v1/jwks") return json({ keys: [jwkEntry(key, "sig")] });
    // A document that names another issuer than the URL it was fetched from.
    if (req.url === "/elsewhere/.well-known/openid-configuration") return json({ issuer, jwks_uri: `${issuer}/openid/v1/jwks` });
    if (req.url === "/spire/bundle") return json(bundleOf(jwkEntry(key)));
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => oidc.listen(0, "127.0.0.1", resolve));
  issuer = `http://127.0.0.1:${(oidc.address() as AddressInfo).port}`;

  east = await startUpstream("east");
  kube = await startUpstream("kube");
  gw = await startGateway(
    buildConfigWith(
      { east: { endpoint: east.url, trustDomain: "east.example" } },
      // Any authenticated caller may use orders: without a verified identity it answers 401.
      { orders: { hostnames: ["orders.shop"], rules: [{ backendRefs: [{ cluster: "east", service: "orders.shop.svc.cluster.local", port: 8080 }] }] } },
    ),
  );
});

afterAll(async () => {
  await client.close();
  await gw?.close();
  await east?.close();
  await kube?.close();
  await new Promise<void>((resolve) => (oidc ? oidc.close(() => resolve()) : resolve()));
});

const call = async (headers: Record<string, string> = {}) => {
  const res = await request(`${gw.url}/orders/42`, { dispatcher: client, headers: { host: "orders.shop", ...headers } });
  const text = await res.body.text();
  return { status: res.statusCode, text };
};

describe("isthmus cluster register", () => {
  it("registers a cluster from its OIDC issuer; its service-account tokens then pass the gateway", async () => {
    // A new cluster needs its trust domain: it cannot be derived from the issuer.
    const noTd = await cli(["cluster", "register", "kube", "--endpoint", kube.url, "--issuer", issuer], { url: gw.url });
    expect(noTd.code).toBe(2);
    expect(noTd.stderr).toContain("cluster register needs --trust-domain for a new cluster");
    expect((await admin(gw, "GET", "/clusters/kube")).status).toBe(404);

    const r = await cli(["cluster", "register", "kube", "--endpoint", kube.url, "--issuer", issuer, "--trust-domain", "kube.example"], { url: gw.url });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("cluster/kube created");
    expect(r.stdout).toContain("trust domain: kube.example (--trust-domain)");
    expect(r.stdout).toContain(`bundle:       Kubernetes issuer ${issuer}, keys from ${issuer}/openid/v1/jwks (1 key now)`);
    expect(hits).toContain("/.well-known/openid-configuration");

    const stored = await admin<{ endpoint: string; trustDomain: string; bundle: unknown }>(gw, "GET", "/clusters/kube");
    expect(stored.body).toMatchObject({ endpoint: kube.url, trustDomain: "kube.example", bundle: { kubernetes: { issuer, url: `${issuer}/openid/v1/jwks` } } });

    // No token: 401. A projected token of the kube cluster's issuer: 200, and the destination sees
    // the gateway's token for the caller's SPIFFE identity, never the caller's own token.
    expect((await call()).status).toBe(401);
    const token = await projectedToken(key, { issuer, namespace: "shop", serviceAccount: "web" });
    const ok = await until("the gateway to accept the kube token", async () => {
      const res = await call(bearer(token));
      return res.status === 200 ? res : undefined;
    });
    const echo = JSON.parse(ok.text) as UpstreamEcho;
    expect(echo.cluster).toBe("east");
    const forwarded = String(echo.headers.authorization).replace(/^Bearer /, "");
    expect(forwarded).not.toBe(token);
    expect(decodeToken(forwarded).payload).toMatchObject({ sub: "spiffe://kube.example/ns/shop/sa/web", aud: "east.example" });

    // A token signed by another key under the same kid is refused.
    const impostor = await makeKey("RS256", "kube-sa-1");
    expect((await call(bearer(await projectedToken(impostor, { issuer })))).status).toBe(401);

    // Registering again keeps the trust domain and changes nothing.
    const again = await cli(["cluster", "register", "kube", "--endpoint", kube.url, "--issuer", issuer, "--json"], { url: gw.url });
    expect(again.code).toBe(0);
    expect(json<{ outcome: string; trustDomainFrom: string }>(again)).toMatchObject({ outcome: "unchanged", trustDomainFrom: "kept from the existing registration" });

    // isthmus check sees (GET /bundles) that the gateway fetched and loaded the issuer's keys.
    const check = await cli(["check"], { url: gw.url });
    expect(check.stdout).toContain(`√ kube: trust bundle (issuer ${issuer}: 1 key, loaded `);
  });

  it("refuses a discovery document that names another issuer, and an issuer that does not answer", async () => {
    const r = await cli(["cluster", "register", "other", "--endpoint", kube.url, "--issuer", `${issuer}/elsewhere`, "--trust-domain", "other.example"], { url: gw.url });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`names the issuer "${issuer}", not "${issuer}/elsewhere"`);
    expect(r.stderr).toContain(`register with --issuer ${issuer}`);
    const missing = await cli(["cluster", "register", "other", "--endpoint", kube.url, "--issuer", `${issuer}/nothing`, "--trust-domain", "other.example"], { url: gw.url });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`GET ${issuer}/nothing/.well-known/openid-configuration (the OIDC discovery document) answered HTTP 404`);
    expect((await admin(gw, "GET", "/clusters/other")).status).toBe(404);
  });

  it("--bundle-url registers a SPIFFE bundle endpoint; a clash on the trust domain is the API's 409 with its path", async () => {
    const r = await cli(["cluster", "register", "spire", "--endpoint", kube.url, "--bundle-url", `${issuer}/spire/bundle`, "--trust-domain", "spire.example"], { url: gw.url });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`bundle:       SPIFFE bundle endpoint ${issuer}/spire/bundle`);
    expect((await admin<{ bundle: unknown }>(gw, "GET", "/clusters/spire")).body.bundle).toEqual({ url: `${issuer}/spire/bundle` });

    const clash = await cli(["cluster", "register", "spire2", "--endpoint", kube.url, "--bundle-url", `${issuer}/spire/bundle`, "--trust-domain", "east.example"], { url: gw.url });
    expect(clash.code).toBe(1);
    expect(clash.stderr).toContain('  trustDomain: already used by cluster "east"');

    const neither = await cli(["cluster", "register", "x", "--endpoint", kube.url, "--trust-domain", "x.example"], { url: gw.url });
    expect(neither.code).toBe(2);
    expect(neither.stderr).toContain("needs --issuer URL");
  });
});
