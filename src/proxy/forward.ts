// The data plane: match the request, choose a backend, forward it, answer with problem+json
// when that fails. Web-standard only; the runtime supplies the upstream client and request facts.
import { problem, problemType } from "../http/problem.ts";
import { pickWeighted } from "../routing/choose.ts";
import { matchRequest, normalizeHost, type RequestFacts } from "../routing/match.ts";
import type { CompiledBackend, CompiledRule, RoutingTable } from "../routing/table.ts";
import type { GatewayTokens } from "../identity/gateway-tokens.ts";
import { identityAdmitted } from "../identity/spiffe.ts";
import type { CallerVerifier, VerifiedCaller } from "../identity/verify-caller.ts";
import type { MetricsRecorder } from "../telemetry/recorder.ts";
import type { Logger } from "../util/log.ts";
import type { CircuitBreakers } from "./circuit-breaker.ts";
import { exchange } from "./exchange.ts";
import type { Limits } from "./limits.ts";
import type { RetryBudgets } from "./retry-budget.ts";
import { stickyKey } from "./session-key.ts";
import type { BodySource, UpstreamClient } from "./upstream.ts";

export { stickyKey };

export interface IdentityDeps {
  verifier: CallerVerifier;
  tokens: GatewayTokens;
}

export interface ResilienceDeps {
  budgets: RetryBudgets;
  breakers: CircuitBreakers;
  /** The cluster's health-probe verdict: false = failing, null = not probed yet. */
  clusterAlive?: (cluster: string) => boolean | null;
  limits?: Limits;
}

export interface DataPlaneDeps {
  routing: { readonly current: RoutingTable };
  upstream: UpstreamClient;
  log: Logger;
  identity?: IdentityDeps;
  metrics?: MetricsRecorder;
  resilience?: ResilienceDeps;
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
  return exchange(deps, table, inc, match, caller, revisionHeader);
}

/** Sticky or weighted choice over the configured weights, ignoring availability (explain uses it). */
export function chooseBackend(rule: CompiledRule, inc: IncomingRequest, random: () => number): CompiledBackend | null {
  const key = rule.sticky ? stickyKey(rule, inc.request, inc.claims) : undefined;
  const i = rule.sticky && key !== undefined ? rule.sticky.pick(key) : pickWeighted(rule.backends, random());
  return i >= 0 ? (rule.backends[i] ?? null) : null;
}
