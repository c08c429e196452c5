// The dashboard's HTTP surface without a browser: who gets in (bearer header, session cookie),
// the cookie's attributes, cross-site form posts, the security headers, and the JSON/HTML the
// client script polls. Real Node gateway, memory store, real upstream.
import { Script } from "node:vm";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLIENT_JS } from "../../src/ui/assets.ts";
import { CONTENT_SECURITY_POLICY } from "../../src/ui/routes.ts";
import type { SeriesPayload } from "../../src/ui/sampler.ts";
import { startTestGateway, type TestGateway } from "../helpers/gateway.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

const TOKEN = "ui-routes-test-admin-token-0123456789";
const UI = "/_isthmus/ui";

let east: Upstream;
let gw: TestGateway;
let open: TestGateway;
const client = new Agent({ connections: 8 });

beforeAll(async () => {
  east = await startUpstream("east");
  const routes = { shop: { hostnames: ["shop.example"], rules: [{ backendRefs: [{ cluster: "east", service: "checkout.shop", port: 8080 }] }] } };
  gw = await startTestGateway({ clusters: { east: east.url }, routes, adminToken: TOKEN });
  // No admin token at all: the admin API, and so the dashboard, is disabled.
  open = await startTestGateway({ clusters: { east: east.url }, routes });
});

afterAll(async () => {
  await Promise.all([gw?.close(), open?.close()]);
  await east?.close();
  await client.close();
});

async function call(path: string, init: { method?: "GET" | "POST"; headers?: Record<string, string>; body?: string; base?: TestGateway } = {}) {
  const res = await request(`${(init.base ?? gw).url}${path}`, { dispatcher: client, method: init.method ?? "GET", headers: init.headers, body: init.body });
  const text = await res.body.text();
  const header = (name: string): string | undefined => {
    const v = res.headers[name];
    return Array.isArray(v) ? v.join("\n") : v;
  };
  return { status: res.statusCode, header, text };
}

const form = (token: string, headers: Record<string, string> = {}) => ({
  method: "POST" as const,
  headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
  body: new URLSearchParams({ token }).toString(),
});

describe("dashboard authentication", () => {
  it("redirects a browser without a session to the sign-in form, and answers 401 to everything else", async () => {
    const page = await call(UI, { headers: { accept: "text/html,application/xhtml+xml" } });
    expect(page.status).toBe(303);
    expect(page.header("location")).toBe(`${UI}/login`);

    for (const path of [UI, `${UI}/app.js`, `${UI}/api/panels`, `${UI}/api/series`]) {
      const res = await call(path);
      expect(res.status, path).toBe(401);
      expect(res.header("www-authenticate"), path).toBe('Bearer realm="isthmus-admin"');
      expect(res.text, path).not.toContain("east");
    }
    expect((await call(`${UI}/api/panels`, { headers: { authorization: "Bearer wrong-token" } })).status).toBe(401);
    expect((await call(`${UI}/api/panels`, { headers: { authorization: `Basic ${btoa(`admin:${TOKEN}`)}` } })).status).toBe(401);
  });

  it("accepts the admin token as a bearer header", async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    const page = await call(UI, { headers: auth });
    expect(page.status).toBe(200);
    expect(page.header("content-type")).toMatch(/^text\/html/);
    expect(page.text).toMatch(/^<!DOCTYPE html>/);
    expect(page.text).toContain('data-cluster="east"');
    expect(page.text).toContain(`<script src="${UI}/app.js" defer="">`);

    const panels = await call(`${UI}/api/panels`, { headers: auth });
    expect(panels.status).toBe(200);
    expect(panels.text).toContain('data-route="shop"');
    expect(panels.text).not.toContain("<html");

    const series = await call(`${UI}/api/series`, { headers: auth });
    expect(series.status).toBe(200);
    const body = JSON.parse(series.text) as SeriesPayload & { error: string | null };
    expect(body).toMatchObject({ intervalMs: expect.any(Number), windowMs: expect.any(Number), spanMs: expect.any(Number), t: expect.any(Array), routes: expect.any(Object), clusters: expect.any(Object), error: null });

    const script = await call(`${UI}/app.js`, { headers: auth });
    expect(script.status).toBe(200);
    expect(script.header("content-type")).toBe("text/javascript; charset=utf-8");
    expect(script.text).toBe(CLIENT_JS);
  });

  it("signs in through the form: a session cookie that is HttpOnly, SameSite=Strict and scoped to the dashboard", async () => {
    const res = await call(`${UI}/login`, form(TOKEN));
    expect(res.status).toBe(303);
    expect(res.header("location")).toBe(UI);
    const cookie = res.header("set-cookie") ?? "";
    expect(cookie).toMatch(/^isthmus_ui=[^;]+; Path=\/_isthmus\/ui; HttpOnly; SameSite=Strict$/);
    expect(cookie).not.toContain("Secure");

    const session = cookie.split(";")[0] as string;
    const page = await call(UI, { headers: { cookie: session, accept: "text/html" } });
    expect(page.status).toBe(200);
    expect(page.text).toContain('data-route="shop"');
    // Signed in already: the form sends the browser on to the dashboard.
    expect((await call(`${UI}/login`, { headers: { cookie: session } })).header("location")).toBe(UI);
  });

  it("marks the cookie Secure when the request came over https (here: through a TLS-terminating proxy)", async () => {
    const res = await call(`${UI}/login`, form(TOKEN, { "x-forwarded-proto": "https" }));
    expect(res.status).toBe(303);
    expect(res.header("set-cookie")).toMatch(/; Secure(;|$)/);
  });

  it("refuses a wrong token at sign-in without setting a cookie", async () => {
    const res = await call(`${UI}/login`, form("not-the-token"));
    expect(res.status).toBe(401);
    expect(res.header("set-cookie")).toBeUndefined();
    expect(res.text).toContain("That is not a valid admin token.");
    expect((await call(`${UI}/login`, form(""))).status).toBe(400);
    expect((await call(`${UI}/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ token: TOKEN }) })).status).toBe(400);
    expect((await call(`${UI}/login`, form("x".repeat(20_000)))).status).toBe(400);
  });

  it("refuses cross-site sign-in and sign-out (login CSRF)", async () => {
    const crossSite: Array<Record<string, string>> = [{ origin: "http://evil.example" }, { origin: "null" }, { "sec-fetch-site": "cross-site" }, { "sec-fetch-site": "same-site" }];
    for (const headers of crossSite) {
      const res = await call(`${UI}/login`, form(TOKEN, headers));
      expect(res.status, JSON.stringify(headers)).toBe(403);
      expect(res.header("set-cookie")).toBeUndefined();
      expect((await call(`${UI}/logout`, { method: "POST", headers })).status).toBe(403);
    }
    // The dashboard's own form, as a browser sends it.
    const own = await call(`${UI}/login`, form(TOKEN, { origin: gw.url, "sec-fetch-site": "same-origin" }));
    expect(own.status).toBe(303);
  });

  it("ends a session whose token no longer works, and signs out", async () => {
    const stale = await call(UI, { headers: { cookie: "isthmus_ui=rotated-away", accept: "text/html" } });
    expect(stale.status).toBe(303);
    expect(stale.header("location")).toBe(`${UI}/login?expired=1`);
    expect(stale.header("set-cookie")).toMatch(/^isthmus_ui=; Max-Age=0; Path=\/_isthmus\/ui/);
    expect((await call(`${UI}/login?expired=1`)).text).toContain("Your session ended");

    const out = await call(`${UI}/logout`, { method: "POST", headers: { origin: gw.url } });
    expect(out.status).toBe(303);
    expect(out.header("location")).toBe(`${UI}/login`);
    expect(out.header("set-cookie")).toMatch(/^isthmus_ui=; Max-Age=0; Path=\/_isthmus\/ui/);
  });

  it("says the dashboard is disabled when the gateway has no admin token", async () => {
    const login = await call(`${UI}/login`, { base: open });
    expect(login.status).toBe(200);
    expect(login.text).toContain("The admin API is disabled on this gateway");
    const api = await call(`${UI}/api/panels`, { base: open, headers: { authorization: "Bearer anything" } });
    expect(api.status).toBe(401);
    expect(JSON.parse(api.text)).toMatchObject({ detail: "the admin API is disabled: set ISTHMUS_ADMIN_TOKEN" });
    expect((await call(`${UI}/login`, { ...form("anything"), base: open })).status).toBe(401);
  });
});

describe("dashboard responses", () => {
  it("carry a strict Content-Security-Policy and the other security headers, signed in or not", async () => {
    expect(CONTENT_SECURITY_POLICY).toBe("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
    for (const [path, headers] of [
      [UI, { authorization: `Bearer ${TOKEN}` }],
      [`${UI}/login`, {}],
      [`${UI}/api/panels`, {}],
      [`${UI}/app.css`, {}],
    ] as const) {
      const res = await call(path, { headers });
      expect(res.header("content-security-policy"), path).toBe(CONTENT_SECURITY_POLICY);
      expect(res.header("x-content-type-options"), path).toBe("nosniff");
      expect(res.header("x-frame-options"), path).toBe("DENY");
      expect(res.header("referrer-policy"), path).toBe("same-origin");
      expect(res.header("cache-control"), path).toBe("no-store");
    }
  });

  it("reference only the gateway's own assets: no inline script or style, no other host", async () => {
    for (const text of [(await call(UI, { headers: { authorization: `Bearer ${TOKEN}` } })).text, (await call(`${UI}/login`)).text]) {
      expect(text).not.toMatch(/<script>|<script [^>]*>[^<]/);
      expect(text).not.toMatch(/ style="|<style/);
      expect(text).not.toMatch(/(src|href)="(https?:)?\/\//);
    }
    expect(CLIENT_JS).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    expect((await call(`${UI}/app.css`)).text).not.toMatch(/url\(|@import/);
  });

  it("serve a client script that parses", () => {
    expect(() => new Script(CLIENT_JS, { filename: "app.js" })).not.toThrow();
  });

  it("redirect a trailing slash, and leave unknown dashboard paths to the 404", async () => {
    const slash = await call(`${UI}/`);
    expect(slash.status).toBe(308);
    expect(slash.header("location")).toBe(UI);
    expect((await call(`${UI}/nope`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(404);
  });
});
