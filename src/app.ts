// Composes the one Hono app that every runtime serves. Runtime specifics come in through ports.
import { Hono, type Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { registerClusterRoutes } from "./admin/clusters.ts";
import { createAdminAuth, scopeFor, type AdminAuthOptions } from "./admin/auth.ts";
import type { AdminEnv, TelemetryView } from "./admin/deps.ts";
import { registerMetricsRoute } from "./admin/metrics.ts";
import { registerRolloutRoutes } from "./admin/rollouts.ts";
import { registerOpenApiRoute } from "./admin/openapi.ts";
import { registerBundleStatusRoute } from "./admin/bundles.ts";
import { registerUiRoutes } from "./ui/routes.ts";
import type { MetricsRecorder } from "./telemetry/recorder.ts";
import { etag } from "./admin/conditional.ts";
import { registerExplainRoute } from "./admin/explain.ts";
import { registerHealthRoutes } from "./admin/health.ts";
import { PayloadTooLargeError } from "./admin/body.ts";
import { registerRouteRoutes } from "./admin/routes.ts";
import { ValidationError } from "./config/errors.ts";
import { problem, problemType } from "./http/problem.ts";
import { fromWebRequest, handleDataPlane, toWebResponse, type IdentityDeps, type ResilienceDeps } from "./proxy/forward.ts";
import type { BodySource, UpstreamClient } from "./proxy/upstream.ts";
import type { RoutingState } from "./routing/routing-state.ts";
import { ClusterInUseError, IssuerConflictError, PreconditionFailedError, StoreUnavailableError, TrustDomainConflictError, type Store } from "./store/types.ts";
import { errorMessage, type Logger } from "./util/log.ts";

/** What a runtime knows about the connection that the web Request does not carry. */
export interface ConnectionFacts {
  clientAddress: string;
  proto: "http" | "https";
  /** The request body as this runtime streams it best (Node: the IncomingMessage itself). */
  body: BodySource | null;
  /** The query as received, before URL parsing re-encoded it, when the runtime knows it. */
  rawQuery?: string;
}

export interface AppPorts {
  store: Store;
  routing: RoutingState;
  upstream: UpstreamClient;
  log: Logger;
  /** Bearer token of the admin API; unset (and no `adminAuth`) refuses every admin call. */
  adminToken?: string | undefined;
  /** Richer admin authentication: a rotating token, and admin JWTs from an OIDC issuer. */
  adminAuth?: AdminAuthOptions;
  /** Workload identity: caller verification and gateway-issued tokens. Absent: routes that need an identity answer 401. */
  identity?: IdentityDeps;
  /** Retry budgets, breakers, failover and limits. */
  resilience?: ResilienceDeps;
  /** Golden metrics recorded on the data plane. */
  metrics?: MetricsRecorder;
  /** Exposition, flushing and probe state for the admin API. */
  telemetry?: TelemetryView;
  /** Trust bundles as this instance holds them (GET /bundles). */
  trust?: { status(): unknown[] };
  /** Outbound fetch for rollout webhooks sent from admin calls. */
  fetch?: (input: string, init: RequestInit) => Promise<Response>;
  connection(c: Context): ConnectionFacts;
}

export function createApp(ports: AppPorts): Hono {
  const { log } = ports;
  const app = new Hono();
  const onError = (err: Error) => errorResponse(err, log);

  const internal = new Hono();
  registerHealthRoutes(internal, ports);

  const admin = new Hono<AdminEnv>();
  const authorize = createAdminAuth(ports.adminAuth ?? { token: () => ports.adminToken });
  admin.use("*", async (c, next) => {
    const auth = await authorize(c.req.header("authorization") ?? null, scopeFor(c.req.method, c.req.path));
    if (!auth.ok && auth.status === 403) {
      log.warn("admin request forbidden", { actor: auth.actor, needed: auth.needed, method: c.req.method, path: c.req.path });
      return problem({ type: problemType("forbidden"), title: "Forbidden", status: 403, detail: `this call needs the scope ${auth.needed}` });
    }
    if (!auth.ok) {
      log.warn("admin request refused", { reason: auth.reason, method: c.req.method, path: c.req.path });
      return problem(
        {
          type: problemType("unauthorized"),
          title: "Unauthorized",
          status: 401,
          detail: auth.reason === "not-configured" ? "the admin API is disabled: set ISTHMUS_ADMIN_TOKEN" : "a valid admin bearer token is required",
        },
        { "www-authenticate": 'Bearer realm="isthmus-admin"' },
      );
    }
    c.set("principal", auth.principal);
    await next();
    c.header("cache-control", "no-store");
  });
  registerClusterRoutes(admin, ports);
  registerRouteRoutes(admin, ports);
  registerExplainRoute(admin, ports);
  registerMetricsRoute(admin, ports);
  registerRolloutRoutes(admin, ports);
  registerOpenApiRoute(admin, ports);
  registerBundleStatusRoute(admin, ports);
  admin.onError(onError);
  internal.onError(onError);

  app.route("/_isthmus/v1", admin);
  registerUiRoutes(app, ports);
  app.route("/_isthmus", internal);
  const unknown = (c: Context) => problem({ type: problemType("not-found"), title: "Not found", status: 404, detail: `${c.req.method} ${c.req.path} is not an isthmus endpoint` });
  app.all("/_isthmus/*", unknown);
  // The gateway's public signing keys (current and previous): destinations verify its tokens with them.
  app.get("/.well-known/jwks.json", (c) => {
    if (!ports.identity) return unknown(c);
    c.header("cache-control", "public, max-age=60");
    return c.json(ports.identity.tokens.jwks());
  });
  app.all("/.well-known/*", unknown);

  app.all("*", (c) => {
    const conn = ports.connection(c);
    return handleDataPlane(ports, fromWebRequest(c.req.raw, new URL(c.req.url), conn)).then(toWebResponse);
  });
  app.onError(onError);
  return app;
}

function errorResponse(err: Error, log: Logger): Response {
  if (err instanceof ValidationError) {
    return problem(
      { type: problemType("validation"), title: "Invalid request", status: 400, detail: `${err.errors.length} problem(s) with the request`, errors: err.errors },
      err instanceof PayloadTooLargeError ? { connection: "close" } : {},
    );
  }
  if (err instanceof PreconditionFailedError) {
    return problem(
      { type: problemType("precondition-failed"), title: "Precondition failed", status: 412, detail: `If-Match did not hold: ${err.message}`, currentRevision: err.current },
      err.current > 0 ? { etag: etag(err.current) } : {},
    );
  }
  if (err instanceof TrustDomainConflictError) {
    return problem({ type: problemType("conflict"), title: "Conflict", status: 409, detail: err.message, errors: [{ path: "trustDomain", message: `already used by cluster "${err.owner}"` }] });
  }
  if (err instanceof IssuerConflictError) {
    return problem({ type: problemType("conflict"), title: "Conflict", status: 409, detail: err.message, errors: [{ path: "bundle.kubernetes.issuer", message: `already used by cluster "${err.owner}"` }] });
  }
  if (err instanceof ClusterInUseError) {
    return problem({ type: problemType("conflict"), title: "Conflict", status: 409, detail: `${err.message}; change those routes first`, routes: err.routes });
  }
  if (err instanceof StoreUnavailableError) {
    log.warn("store unavailable for an admin call", { error: err.message });
    return problem({ type: problemType("store-unavailable"), title: "Store unavailable", status: 503, detail: "the configuration store cannot be reached; the data plane keeps serving the last good routing table. Retry the write later." }, { "retry-after": "1" });
  }
  if (err instanceof HTTPException) return err.getResponse();
  log.error("unexpected error", { error: errorMessage(err), stack: err.stack });
  return problem({ type: problemType("internal"), title: "Internal error", status: 500, detail: "unexpected error; see the gateway log" });
}
