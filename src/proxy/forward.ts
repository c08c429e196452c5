// The data plane: match the request, choose a backend, forward it, answer with problem+json
// when that fails. Web-standard only; the runtime supplies the upstream client and request facts.
import { problem, problemType } from "../http/problem.ts";
import { pickWeighted } from "../routing/choose.ts";
import { matchRequest, normalizeHost, type RequestFacts } from "../routing/match.ts";
import type { CompiledBackend, CompiledMatch, CompiledRule, RoutingTable } from "../routing/table.ts";
import type { GatewayTokens } from "../identity/gateway-tokens.ts";
import { identityAdmitted } from "../identity/spiffe.ts";
import type { CallerVerifier, VerifiedCaller } from "../identity/verify-caller.ts";
import type { MetricsRecorder, TrafficLabels } from "../telemetry/recorder.ts";
import { errorMessage, type Logger } from "../util/log.ts";
import { clientResponseHeaders, upstreamRequestHeaders } from "./headers.ts";
import { UpstreamError, type BodySource, type UpstreamClient } from "./upstream.ts";

export interface IdentityDeps {
  verifier: CallerVerifier;
  tokens: GatewayTokens;
}

export interface DataPlaneDeps {
  routing: { readonly current: RoutingTable };
  upstream: UpstreamClient;
  log: Logger;
  identity?: IdentityDeps;
  metrics?: MetricsRecorder;
  random?: () => number;
}

export interface IncomingRequest {
  request: Request;
  url: URL;
  clientAddress: string;
  proto: "http" | "https";
  /** The request body as the runtime can stream it best, or null when there is none. */
  body: BodySource | null;
  /**
   * The query exactly as the client sent it ("?a=b" or ""), when the runtime has it: forwarded
   * byte for byte, since URL parsing re-encodes some characters and upstreams may sign the query.
   */
  rawQuery?: string;
  /** Verified claims of the caller, when identity is established (used by jwtClaim session keys). */
  claims?: Readonly<Record<string, unknown>>;
}

export const ROUTE_REVISION_HEADER = "x-isthmus-route-revision";

export function requestFacts(req: Request, url: URL): RequestFacts {
  const headers = req.headers;
  let query: URLSearchParams | null = null;
  return {
    host: normalizeHost(headers.get("host") ?? url.host),
    path: url.pathname,
    method: req.method,
    header: (n) => headers.get(n) ?? undefined,
    query: (n) => (query ??= url.searchParams).get(n) ?? undefined,
  };
}

export async function handleDataPlane(deps: DataPlaneDeps, inc: IncomingRequest): Promise<Response> {
  const table = deps.routing.current;
  const facts = requestFacts(inc.request, inc.url);
  const match = matchRequest(table, facts);
  if (!match) {
    return problem({
      type: problemType("no-route"),
      title: "No route",
      status: 404,
      detail: `no route matches host "${facts.host}" and path "${facts.path}"`,
    });
  }
  const rule = match.rule;
  const revisionHeader = { [ROUTE_REVISION_HEADER]: String(rule.revision) };
  let caller: VerifiedCaller | null = null;
  if (rule.authorization?.unauthenticated !== true) {
    if (!deps.identity) {
      // Fail closed: without identity verification, a route that requires an identity admits nobody.
      return problem(
        { type: problemType("unauthenticated"), title: "Unauthenticated", status: 401, detail: `route ${rule.route} requires a verified workload identity, and this gateway has no identity verification configured` },
        { ...revisionHeader, "www-authenticate": 'Bearer realm="isthmus"' },
      );
    }
    const verified = await deps.identity.verifier.verify(inc.request.headers.get("authorization"));
    if (!verified.ok) {
      deps.metrics?.recordDenied(rule.route, "unauthenticated");
      deps.log.info("caller refused: 401", { route: rule.route, reason: verified.reason, ...(verified.tokenId ? { token: verified.tokenId } : {}) });
      return problem(
        { type: problemType("unauthenticated"), title: "Unauthenticated", status: 401, detail: verified.missing ? "a workload identity token (Authorization: Bearer <JWT-SVID>) is required" : "the workload identity token is not valid" },
        { ...revisionHeader, "www-authenticate": verified.missing ? 'Bearer realm="isthmus"' : 'Bearer realm="isthmus", error="invalid_token"' },
      );
    }
    caller = verified.caller;
    const allowed = rule.authorization?.identities;
    if (allowed && !identityAdmitted(caller.identity, allowed)) {
      deps.metrics?.recordDenied(rule.route, "forbidden");
      deps.log.info("caller refused: 403", { route: rule.route, identity: caller.identity, token: caller.tokenId });
      return problem({ type: problemType("forbidden"), title: "Forbidden", status: 403, detail: `${caller.identity} is not admitted by route ${rule.route}` }, revisionHeader);
    }
    inc = { ...inc, claims: caller.claims };
  }
  const backend = chooseBackend(rule, inc, deps.random ?? Math.random);
  if (!backend) {
    return problem({ type: problemType("no-backend"), title: "No backend available", status: 503, detail: `every backend of rule ${rule.name} of route ${rule.route} has weight 0` }, revisionHeader);
  }
  if (!backend.target) {
    return problem({ type: problemType("unknown-cluster"), title: "Backend cluster not registered", status: 503, detail: `cluster "${backend.cluster}" of route ${rule.route} is not registered` }, revisionHeader);
  }
  // The caller's token never crosses: the destination gets the gateway's own, scoped to its trust domain.
  const authorization = caller && deps.identity ? `Bearer ${await deps.identity.tokens.tokenFor(caller.identity, backend.target.trustDomain)}` : undefined;
  const labels: TrafficLabels = { route_name: rule.route, dst_target_cluster: backend.cluster, dst_target_service: backend.service, src_cluster: caller?.cluster ?? "unknown" };
  deps.metrics?.recordRequest(labels);
  return forwardTo(deps, inc, match, backend, inc.request.headers.get("host") ?? inc.url.host, revisionHeader, authorization, labels);
}

export function stickyKey(rule: CompiledRule, req: Request, claims?: Readonly<Record<string, unknown>>): string | undefined {
  for (const k of rule.sessionKeys) {
    let v: string | undefined;
    if ("header" in k) v = req.headers.get(k.header) ?? undefined;
    else if ("cookie" in k) v = cookieValue(req.headers.get("cookie"), k.cookie);
    else {
      const c = claims?.[k.jwtClaim];
      v = typeof c === "string" || typeof c === "number" ? String(c) : undefined;
    }
    if (v !== undefined && v !== "") return v;
  }
  return undefined;
}

export function chooseBackend(rule: CompiledRule, inc: IncomingRequest, random: () => number): CompiledBackend | null {
  const key = rule.sticky ? stickyKey(rule, inc.request, inc.claims) : undefined;
  const i = rule.sticky && key !== undefined ? rule.sticky.pick(key) : pickWeighted(rule.backends, random());
  return i >= 0 ? (rule.backends[i] ?? null) : null;
}

async function forwardTo(
  deps: DataPlaneDeps,
  inc: IncomingRequest,
  match: CompiledMatch,
  backend: CompiledBackend,
  host: string,
  extraHeaders: Record<string, string>,
  authorization: string | undefined,
  labels: TrafficLabels,
): Promise<Response> {
  const started = performance.now();
  const rule = match.rule;
  const target = backend.target as NonNullable<CompiledBackend["target"]>;
  const path = `${target.basePath}${inc.url.pathname}${inc.rawQuery ?? inc.url.search}`;
  // Native timers, not the HTTP client's coarse ones: a 250 ms backendRequest must mean 250 ms.
  const exchange = new AbortController();
  const requestTimer = setTimeout(() => exchange.abort(new UpstreamError("timeout", `no complete answer within the request timeout of ${rule.requestTimeoutMs}ms`)), rule.requestTimeoutMs);
  const perTry = rule.backendTimeoutMs < rule.requestTimeoutMs ? new AbortController() : null;
  const tryTimer = perTry ? setTimeout(() => perTry.abort(new UpstreamError("timeout", `no response headers within backendRequest ${rule.backendTimeoutMs}ms`)), rule.backendTimeoutMs) : undefined;
  const signal = AbortSignal.any(perTry ? [exchange.signal, perTry.signal, inc.request.signal] : [exchange.signal, inc.request.signal]);
  const settle = () => clearTimeout(requestTimer);
  try {
    const res = await deps.upstream.send({
      origin: target.origin,
      path,
      method: inc.request.method,
      headers: upstreamRequestHeaders(inc.request.headers, inc.request.headers.get("connection"), {
        clientAddress: inc.clientAddress,
        proto: inc.proto,
        host,
        authority: backend.authority,
        authorization,
      }),
      body: inc.body,
      signal,
      // A backstop only: the timers above decide.
      headersTimeoutMs: rule.backendTimeoutMs + 1000,
      onSettled: settle,
      onBodyError: (err) => {
        if (!inc.request.signal.aborted) deps.log.warn("upstream response body failed", { route: rule.route, rule: rule.name, cluster: backend.cluster, failure: err.failure, error: err.message });
      },
    });
    clearTimeout(tryTimer);
    deps.metrics?.recordResponse(labels, res.status, performance.now() - started);
    const headers = clientResponseHeaders(res.headers, res.connection);
    for (const [k, v] of Object.entries(extraHeaders)) headers.set(k, v);
    return new Response(res.body, { status: res.status, headers });
  } catch (err) {
    settle();
    clearTimeout(tryTimer);
    const timedOut = exchange.signal.aborted || (perTry?.signal.aborted ?? false) || (err instanceof UpstreamError && err.failure === "timeout");
    const failure = timedOut ? "timeout" : err instanceof UpstreamError ? err.failure : "connect";
    if (!inc.request.signal.aborted) {
      deps.log.warn("upstream request failed", { route: rule.route, rule: rule.name, cluster: backend.cluster, failure, error: errorMessage(err) });
    }
    const limit = perTry?.signal.aborted ? rule.backendTimeoutMs : rule.requestTimeoutMs;
    deps.metrics?.recordResponse(labels, timedOut ? 504 : 502, performance.now() - started);
    return problem(
      timedOut
        ? { type: problemType("upstream-timeout"), title: "Upstream timed out", status: 504, detail: `cluster ${backend.cluster} did not answer within ${limit}ms`, cluster: backend.cluster }
        : { type: problemType("upstream-unavailable"), title: "Upstream unavailable", status: 502, detail: `cluster ${backend.cluster}: ${failure}`, cluster: backend.cluster },
      extraHeaders,
    );
  }
}

function cookieValue(header: string | null, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim().replace(/^"(.*)"$/, "$1");
  }
  return undefined;
}
