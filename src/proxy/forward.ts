// The data plane: match the request, choose a backend, forward it, answer with problem+json
// when that fails. Web-standard only; the runtime supplies the upstream client and request facts.
import { problem, problemType } from "../http/problem.ts";
import { pickWeighted } from "../routing/choose.ts";
import { matchRequest, normalizeHost, type RequestFacts } from "../routing/match.ts";
import type { CompiledBackend, CompiledMatch, CompiledRule, RoutingTable } from "../routing/table.ts";
import type { GatewayTokens } from "../identity/gateway-tokens.ts";
import { identityAdmitted } from "../identity/spiffe.ts";
import type { CallerVerifier, VerifyResult } from "../identity/verify-caller.ts";
import type { MetricsRecorder } from "../telemetry/recorder.ts";
import type { Logger } from "../util/log.ts";
import type { CircuitBreakers } from "./circuit-breaker.ts";
import { exchange } from "./exchange.ts";
import type { Limits } from "./limits.ts";
import type { RetryBudgets } from "./retry-budget.ts";
import { stickyKey } from "./session-key.ts";
import { headerListOf, revisionHeaderOf, ROUTE_REVISION_HEADER, type HeaderList } from "./headers.ts";
import type { BodySource, UpstreamBody, UpstreamClient } from "./upstream.ts";

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

/** The client went away: a cheap view that each runtime fills in from what it has. */
export interface ClientSignal {
  readonly aborted: boolean;
  /** Told once when the client goes away (not when the exchange ends normally). */
  onAbort(target: { clientGone(): void }): void;
}

/**
 * The client's request as the data plane reads it. Runtime-neutral and deliberately small: the Node
 * runtime fills it in straight from node:http (no web Request, no URL object on the hot path);
 * Workers and Lambda from a web Request (fromWebRequest).
 */
export interface IncomingRequest {
  method: string;
  /** A header by lower-case name (repeated fields joined with ", "), or null. */
  header(name: string): string | null;
  /** Every header field as received, for forwarding. */
  headerList(): HeaderList;
  /** The Host the client asked for, as sent (port included). */
  host: string;
  /** The normalised path, without the query. */
  path: string;
  /**
   * The query exactly as the client sent it ("?a=b" or ""): forwarded byte for byte, since URL
   * parsing re-encodes some characters and upstreams may sign the query.
   */
  search: string;
  /** A query parameter, decoded (used by query matches only). */
  query(name: string): string | undefined;
  clientAddress: string;
  proto: "http" | "https";
  /** The request body as the runtime can stream it best, or null when there is none. */
  body: BodySource | null;
  signal: ClientSignal;
  /** Verified claims of the caller, when identity is established (used by jwtClaim session keys). */
  claims?: Readonly<Record<string, unknown>>;
}

/** An answer relayed from an upstream: status, headers for the client, and the body to stream. */
export interface ProxiedAnswer {
  status: number;
  headers: HeaderList;
  body: UpstreamBody | null;
}

/** What the data plane answers: the gateway's own (problem) Response, or an upstream's answer to relay. */
export type DataPlaneAnswer = Response | ProxiedAnswer;

export { ROUTE_REVISION_HEADER };

/** What matching reads of a request (a class: made once per request on the hot path). */
class Facts implements RequestFacts {
  readonly host: string;
  readonly path: string;
  readonly method: string;
  constructor(private readonly inc: IncomingRequest) {
    this.host = normalizeHost(inc.host);
    this.path = inc.path;
    this.method = inc.method;
  }
  header(name: string): string | undefined {
    return this.inc.header(name) ?? undefined;
  }
  query(name: string): string | undefined {
    return this.inc.query(name);
  }
}

export function requestFacts(inc: IncomingRequest): RequestFacts {
  return new Facts(inc);
}

/** The data plane's view of a web Request (Workers, Lambda, and the Node runtime's general path). */
export function fromWebRequest(request: Request, url: URL, conn: { clientAddress: string; proto: "http" | "https"; body: BodySource | null; rawQuery?: string }): IncomingRequest {
  const headers = request.headers;
  let params: URLSearchParams | null = null;
  const signal = request.signal;
  return {
    method: request.method,
    header: (n) => headers.get(n),
    headerList: () => headerListOf(headers),
    host: headers.get("host") ?? url.host,
    path: url.pathname,
    search: conn.rawQuery ?? url.search,
    query: (n) => (params ??= url.searchParams).get(n) ?? undefined,
    clientAddress: conn.clientAddress,
    proto: conn.proto,
    body: conn.body,
    signal: {
      get aborted() {
        return signal.aborted;
      },
      onAbort: (target) => signal.addEventListener("abort", () => target.clientGone(), { once: true }),
    },
  };
}

/** A web Response for an answer (the Hono app's data plane). */
export function toWebResponse(answer: DataPlaneAnswer): Response {
  if (answer instanceof Response) return answer;
  const headers = new Headers();
  for (let i = 0; i + 1 < answer.headers.length; i += 2) headers.append(answer.headers[i] as string, answer.headers[i + 1] as string);
  return new Response(answer.body ? answer.body.toWeb() : null, { status: answer.status, headers });
}

/**
 * Not an async function: the common case (a route without identity, or a token the verification cache
 * knows) hands back exchange's own promise, with no promise of its own wrapped around it and the
 * microtask hops that adds; only a token the cache does not know waits for `verify`. It never throws:
 * a failure is a rejected promise, as from an async function.
 */
export function handleDataPlane(deps: DataPlaneDeps, inc: IncomingRequest): Promise<DataPlaneAnswer> {
  try {
    const table = deps.routing.current;
    const facts = requestFacts(inc);
    const match = matchRequest(table, facts);
    if (!match) {
      return Promise.resolve(
        problem({
          type: problemType("no-route"),
          title: "No route",
          status: 404,
          detail: `no route matches host "${facts.host}" and path "${facts.path}"`,
        }),
      );
    }
    const rule = match.rule;
    if (rule.authorization?.unauthenticated === true) return exchange(deps, table, inc, match, null);
    if (!deps.identity) {
      // Fail closed: without identity verification, a route that requires an identity admits nobody.
      return Promise.resolve(
        problem(
          { type: problemType("unauthenticated"), title: "Unauthenticated", status: 401, detail: `route ${rule.route} requires a verified workload identity, and this gateway has no identity verification configured` },
          { ...revisionHeaderOf(rule), "www-authenticate": 'Bearer realm="isthmus"' },
        ),
      );
    }
    const authorization = inc.header("authorization");
    const verified = deps.identity.verifier.verifyCached(authorization);
    if (verified) return admit(deps, table, inc, match, verified);
    return deps.identity.verifier.verify(authorization).then((v) => admit(deps, table, inc, match, v));
  } catch (err) {
    return Promise.reject(err);
  }
}

/** The caller's verdict applied: 401 or 403 as a problem, else the exchange with the verified caller. */
function admit(deps: DataPlaneDeps, table: RoutingTable, inc: IncomingRequest, match: CompiledMatch, verified: VerifyResult): Promise<DataPlaneAnswer> {
  const rule = match.rule;
  if (!verified.ok) {
    deps.metrics?.recordDenied(rule.route, "unauthenticated");
    deps.log.info("caller refused: 401", { route: rule.route, reason: verified.reason, ...(verified.tokenId ? { token: verified.tokenId } : {}) });
    return Promise.resolve(
      problem(
        { type: problemType("unauthenticated"), title: "Unauthenticated", status: 401, detail: verified.missing ? "a workload identity token (Authorization: Bearer <JWT-SVID>) is required" : "the workload identity token is not valid" },
        { ...revisionHeaderOf(rule), "www-authenticate": verified.missing ? 'Bearer realm="isthmus"' : 'Bearer realm="isthmus", error="invalid_token"' },
      ),
    );
  }
  const caller = verified.caller;
  const allowed = rule.authorization?.identities;
  if (allowed && !identityAdmitted(caller.identity, allowed)) {
    deps.metrics?.recordDenied(rule.route, "forbidden");
    deps.log.info("caller refused: 403", { route: rule.route, identity: caller.identity, token: caller.tokenId });
    return Promise.resolve(problem({ type: problemType("forbidden"), title: "Forbidden", status: 403, detail: `${caller.identity} is not admitted by route ${rule.route}` }, revisionHeaderOf(rule)));
  }
  inc.claims = caller.claims;
  return exchange(deps, table, inc, match, caller);
}

/** Sticky or weighted choice over the configured weights, ignoring availability (explain uses it). */
export function chooseBackend(rule: CompiledRule, inc: IncomingRequest, random: () => number): CompiledBackend | null {
  const key = rule.sticky ? stickyKey(rule, inc, inc.claims) : undefined;
  const i = rule.sticky && key !== undefined ? rule.sticky.pick(key) : pickWeighted(rule.backends, random());
  return i >= 0 ? (rule.backends[i] ?? null) : null;
}
