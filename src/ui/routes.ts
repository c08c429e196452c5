// The live dashboard at /_isthmus/ui (admin token required): server-rendered pages, a small
// client script that polls two JSON/HTML endpoints, and the self-served assets. Read-only: the
// only state-changing calls are sign-in and sign-out, checked for a same-origin request.
//
// Authentication is the admin API's (createAdminAuth, constant-time token comparison, admin JWTs
// with isthmus:read): an `Authorization: Bearer` header, or for browsers a cookie set by the
// sign-in form (HttpOnly, SameSite=Strict, Secure over https, Path=/_isthmus/ui so it never
// travels with requests the data plane forwards to upstreams).
import type { Context, Hono, MiddlewareHandler } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { createAdminAuth, type AdminAuthOptions, type AdminAuthResult } from "../admin/auth.ts";
import type { AdminDeps } from "../admin/deps.ts";
import { problem, problemType } from "../http/problem.ts";
import { errorMessage } from "../util/log.ts";
import { readBounded, TooLargeError } from "../util/read-bounded.ts";
import { CLIENT_JS, CSS, FAVICON_SVG } from "./assets.ts";
import { renderDashboard, renderLogin, renderPanels } from "./render.tsx";
import { loadDashboard } from "./model.ts";
import { UI_BASE } from "./paths.ts";
import { MetricsSampler, type SamplerOptions } from "./sampler.ts";

/** What the dashboard needs: the admin deps plus the admin authentication settings (AppPorts has them all). */
export interface UiDeps extends AdminDeps {
  adminToken?: string | undefined;
  adminAuth?: AdminAuthOptions;
  /** How the request reached the gateway (to mark the cookie Secure over https). */
  connection?(c: Context): { proto: "http" | "https" };
  /** Chart sampling (tests shorten it). */
  uiSampler?: SamplerOptions;
}

export const SESSION_COOKIE = "isthmus_ui";
/** Browsers keep cookies up to about 4 KiB: a longer token (a large JWT) is refused at sign-in rather than silently dropped. */
const MAX_COOKIE_TOKEN = 3_800;
const MAX_FORM_BYTES = 16_384;

export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join("; ");

const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  // same-origin, not no-referrer: with no-referrer browsers send `Origin: null` on same-origin form posts.
  "referrer-policy": "same-origin",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
  "cache-control": "no-store",
};

export function registerUiRoutes(app: Hono, deps: UiDeps): void {
  const { log } = deps;
  const authorize = createAdminAuth(deps.adminAuth ?? { token: () => deps.adminToken });
  const configured = () => Boolean(deps.adminAuth?.oidc) || Boolean((deps.adminAuth?.token ?? (() => deps.adminToken))());
  const sampler = new MetricsSampler(async () => {
    // This instance's latest deltas first, so its own traffic shows at once (as GET /metrics does).
    await deps.telemetry?.flush();
    return deps.store.readMetrics();
  }, deps.uiSampler);

  const secure = (c: Context): boolean => {
    if (new URL(c.req.url).protocol === "https:") return true;
    // Behind a TLS-terminating load balancer. Trusting the header only ever adds Secure, which a
    // plain-http client would just not send back: no downgrade is possible through it.
    if ((c.req.header("x-forwarded-proto") ?? "").split(",")[0]?.trim().toLowerCase() === "https") return true;
    try {
      return deps.connection?.(c).proto === "https";
    } catch {
      return false;
    }
  };

  const authenticate = (c: Context): Promise<AdminAuthResult> => {
    const header = c.req.header("authorization");
    if (header !== undefined) return authorize(header, "isthmus:read");
    const token = getCookie(c, SESSION_COOKIE);
    return authorize(token ? `Bearer ${token}` : null, "isthmus:read");
  };

  const clearSession = (c: Context) => deleteCookie(c, SESSION_COOKIE, { path: UI_BASE, httpOnly: true, sameSite: "Strict", secure: secure(c) });

  /** Pages redirect a browser to the sign-in form; the API and the script answer 401 (403 for a JWT without isthmus:read). */
  const requireAuth =
    (kind: "page" | "api"): MiddlewareHandler =>
    async (c, next) => {
      const auth = await authenticate(c);
      if (auth.ok) return next();
      const hadCookie = c.req.header("authorization") === undefined && getCookie(c, SESSION_COOKIE) !== undefined;
      if (hadCookie) clearSession(c);
      if (kind === "page" && (c.req.header("accept") ?? "").includes("text/html") && auth.status === 401) {
        return c.redirect(`${UI_BASE}/login${hadCookie ? "?expired=1" : ""}`, 303);
      }
      if (auth.status === 403) {
        return problem({ type: problemType("forbidden"), title: "Forbidden", status: 403, detail: `the dashboard needs the scope ${auth.needed}` });
      }
      const detail = auth.reason === "not-configured" ? "the admin API is disabled: set ISTHMUS_ADMIN_TOKEN" : "a valid admin bearer token (or a dashboard session) is required";
      return problem({ type: problemType("unauthorized"), title: "Unauthorized", status: 401, detail }, { "www-authenticate": 'Bearer realm="isthmus-admin"' });
    };

  const ui = app.basePath(UI_BASE);
  ui.use("*", async (c, next) => {
    await next();
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) c.res.headers.set(k, v);
  });

  // Static assets. The stylesheet and icon are public (the sign-in page uses them); the script is not.
  ui.get("/app.css", (c) => c.body(CSS, 200, { "content-type": "text/css; charset=utf-8" }));
  ui.get("/favicon.svg", (c) => c.body(FAVICON_SVG, 200, { "content-type": "image/svg+xml" }));
  ui.get("/app.js", requireAuth("api"), (c) => c.body(CLIENT_JS, 200, { "content-type": "text/javascript; charset=utf-8" }));

  ui.get("/login", async (c) => {
    if ((await authenticate(c)).ok) return c.redirect(UI_BASE, 303);
    return c.html(await renderLogin({ disabled: !configured(), error: c.req.query("expired") !== undefined ? "Your session ended: sign in again." : null }));
  });

  ui.post("/login", async (c) => {
    if (!sameOrigin(c)) return crossSite();
    const token = await readFormField(c.req.raw, "token");
    if (token === null) return c.html(await renderLogin({ disabled: !configured(), error: "Send the form as application/x-www-form-urlencoded, at most 16 KiB." }), 400);
    const page = async (status: 400 | 401 | 403, error: string) => c.html(await renderLogin({ disabled: !configured(), error }), status);
    if (token === "") return page(400, "Enter the admin token.");
    if (token.length > MAX_COOKIE_TOKEN) return page(400, "This token is too long for a browser session: call the API with an Authorization header instead.");
    const auth = await authorize(`Bearer ${token}`, "isthmus:read");
    if (!auth.ok) {
      log.warn("dashboard sign-in refused", { reason: auth.reason });
      return page(auth.status, auth.status === 403 ? "This token lacks the isthmus:read scope." : auth.reason === "not-configured" ? "The admin API is disabled on this gateway." : "That is not a valid admin token.");
    }
    log.info("dashboard sign-in", { actor: auth.principal.actor });
    setCookie(c, SESSION_COOKIE, token, { path: UI_BASE, httpOnly: true, sameSite: "Strict", secure: secure(c) });
    return c.redirect(UI_BASE, 303);
  });

  ui.post("/logout", async (c) => {
    if (!sameOrigin(c)) return crossSite();
    clearSession(c);
    return c.redirect(`${UI_BASE}/login`, 303);
  });

  ui.get("/", requireAuth("page"), async (c) => c.html(await renderDashboard(await loadDashboard(deps))));
  ui.get("/api/panels", requireAuth("api"), async (c) => c.html(await renderPanels(await loadDashboard(deps))));
  ui.get("/api/series", requireAuth("api"), async (c) => {
    let error: string | null = null;
    try {
      await sampler.sampleIfDue();
    } catch (err) {
      // The store is unreachable: the charts keep the points they have.
      error = errorMessage(err);
      log.debug("dashboard metrics sample failed", { error });
    }
    return c.json({ ...sampler.series(), error });
  });
  // A trailing slash is the same page.
  app.get(`${UI_BASE}/`, (c) => c.redirect(UI_BASE, 308));
}

/**
 * A form post from the dashboard itself. SameSite=Strict keeps the cookie off cross-site requests
 * already; this also refuses a cross-site sign-in (login CSRF) and sign-out. Clients that send
 * neither header (curl) are not browsers, and are let through.
 */
function sameOrigin(c: Context): boolean {
  const site = c.req.header("sec-fetch-site");
  if (site !== undefined && site !== "same-origin" && site !== "none") return false;
  const origin = c.req.header("origin");
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === new URL(c.req.url).host;
  } catch {
    return false; // "null" or garbage
  }
}

function crossSite(): Response {
  return problem({ type: problemType("forbidden"), title: "Forbidden", status: 403, detail: "cross-site form posts to the dashboard are refused" });
}

/** One field of an urlencoded form body, "" when absent; null when the body is not such a form or too large. */
async function readFormField(req: Request, field: string): Promise<string | null> {
  const type = (req.headers.get("content-type") ?? "").split(";")[0]?.trim().toLowerCase();
  if (type !== "application/x-www-form-urlencoded" || !req.body) return null;
  try {
    const bytes = await readBounded(req.body as ReadableStream<Uint8Array>, MAX_FORM_BYTES);
    return (new URLSearchParams(new TextDecoder().decode(bytes)).get(field) ?? "").trim();
  } catch (err) {
    if (err instanceof TooLargeError) return null;
    throw err;
  }
}
