// One client request against its rule's backends: up to `retry.maxTries` tries within the request
// timeout, each on a backend chosen among the available ones (a retry prefers a backend that has
// not failed this request), retries only where safe and only within the cluster's retry budget.
import { problem, problemType } from "../http/problem.ts";
import type { VerifiedCaller } from "../identity/verify-caller.ts";
import type { CompiledBackend, CompiledMatch, CompiledRule, RoutingTable } from "../routing/table.ts";
import { errorMessage } from "../util/log.ts";
import { chooseAvailable, type Usable } from "./backend-choice.ts";
import type { DataPlaneAnswer, DataPlaneDeps, IncomingRequest } from "./forward.ts";
import { clientResponseHeaders, revisionHeaderOf, ROUTE_REVISION_HEADER, upstreamRequestHeaders } from "./headers.ts";
import { BodyTooLargeError, capped, readAll, RETRY_BODY_LIMIT } from "./request-body.ts";
import { stickyKey } from "./session-key.ts";
import { TryAbort, UpstreamError, type UpstreamEvents, type UpstreamRequest } from "./upstream.ts";

const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

export async function exchange(
  deps: DataPlaneDeps,
  table: RoutingTable,
  inc: IncomingRequest,
  match: CompiledMatch,
  caller: VerifiedCaller | null,
): Promise<DataPlaneAnswer> {
  const rule = match.rule;
  const r = deps.resilience;
  const usable = usableOf(r);
  const random = deps.random ?? Math.random;
  const key = rule.sticky ? stickyKey(rule, inc, inc.claims) : undefined;
  const limits = r?.limits;

  const lengthHeader = inc.header("content-length");
  const declared = lengthHeader === null ? NaN : Number(lengthHeader);
  const maxBody = limits?.maxBodyBytes ?? Infinity;
  if (inc.body !== null && declared > maxBody) return tooLarge(maxBody, revisionHeaderOf(rule));

  // Hold the body only when a retry might resend it and it is small; otherwise stream it once.
  let body: UpstreamRequest["body"] = inc.body;
  let bodyHeld = inc.body === null;
  let bodyExceeded = false;
  if (rule.retry && inc.body !== null && declared <= RETRY_BODY_LIMIT) {
    try {
      body = await readAll(inc.body, RETRY_BODY_LIMIT);
      bodyHeld = true;
    } catch (err) {
      if (err instanceof BodyTooLargeError) return tooLarge(RETRY_BODY_LIMIT, revisionHeaderOf(rule));
      return problem({ type: problemType("bad-request"), title: "Request body not received", status: 400, detail: "the request body could not be read" }, revisionHeaderOf(rule));
    }
  } else if (inc.body !== null && Number.isFinite(maxBody) && !(declared <= maxBody)) {
    body = capped(inc.body, maxBody, () => (bodyExceeded = true));
  }

  // One timer for the whole exchange, and one abort controller per try: the request timeout and
  // the client going away abort whichever try is current (no AbortSignal.any on the hot path).
  const deadline = performance.now() + rule.requestTimeoutMs;
  const clock = new ExchangeClock(rule.requestTimeoutMs);
  inc.signal.onAbort(clock);
  const maxTries = rule.retry && bodyHeld ? rule.retry.maxTries : 1;
  let failed: Set<string> | undefined;
  let last: { status: number; backend: CompiledBackend | null; failure?: string } | null = null;

  // Testers' header override: the rollout's canary whatever its weight.
  const override = rule.rollout?.headerOverride;
  const forced = override && inc.header(override.name) === override.value ? rule.backends.find((b) => b.id === rule.rollout?.canaryId) : undefined;
  const srcCluster = caller?.cluster ?? "";

  for (let attempt = 1; attempt <= maxTries; attempt++) {
    const choice =
      (attempt === 1 && forced ? { backend: forced, degraded: false } : null) ??
      (attempt > 1 ? chooseAvailable(rule, table, usable, key, random, failed) : null) ??
      chooseAvailable(rule, table, usable, key, random);
    if (!choice) {
      clock.settle();
      return problem({ type: problemType("no-backend"), title: "No backend available", status: 503, detail: `every backend of rule ${rule.name} of route ${rule.route} has weight 0` }, revisionHeaderOf(rule));
    }
    const backend = choice.backend;
    const target = backend.target;
    if (!target) {
      clock.settle();
      return problem({ type: problemType("unknown-cluster"), title: "Backend cluster not registered", status: 503, detail: `cluster "${backend.cluster}" of route ${rule.route} is not registered` }, revisionHeaderOf(rule));
    }
    if (limits && !limits.acquire(backend.cluster)) {
      clock.settle();
      return problem({ type: problemType("overloaded"), title: "Overloaded", status: 503, detail: `too many requests in flight to cluster ${backend.cluster}` }, { ...revisionHeaderOf(rule), "retry-after": "1" });
    }
    const tryState = new Attempt(clock, deps, inc, rule, backend.cluster);
    // The caller's token never crosses: the destination gets the gateway's own, scoped to its trust domain.
    const tokens = deps.identity?.tokens;
    const authorization = caller && tokens ? (tokens.cachedAuthorization(caller.identity, target.trustDomain) ?? (await tokens.authorization(caller.identity, target.trustDomain))) : undefined;
    const series = deps.metrics?.series(rule, backend, srcCluster);
    if (series) deps.metrics?.recordRequest(series);
    if (attempt === 1) r?.budgets.request(backend.cluster);
    r?.breakers.begin(backend.id);

    const ctl = new TryAbort();
    clock.current = ctl;
    if (clock.timedOut) ctl.abort(clock.timeoutError());
    else if (inc.signal.aborted) ctl.abort(new UpstreamError("aborted", "the client went away"));
    const tryStarted = performance.now();
    const remaining = deadline - tryStarted;
    const tryMs = Math.min(rule.backendTimeoutMs, remaining);
    let tryTimedOut = false;
    const tryTimer =
      tryMs < remaining
        ? setTimeout(() => {
            tryTimedOut = true;
            ctl.abort(new UpstreamError("timeout", `no response headers within backendRequest ${rule.backendTimeoutMs}ms`));
          }, tryMs)
        : undefined;
    try {
      const res = await deps.upstream.send({
        origin: target.origin,
        path: `${target.basePath}${inc.path}${inc.search}`,
        method: inc.method,
        headers: upstreamRequestHeaders(inc.headerList(), inc.header("connection"), { clientAddress: inc.clientAddress, proto: inc.proto, host: inc.host, authority: backend.authority, authorization }),
        body,
        signal: ctl,
        // A backstop only: the timers above decide.
        headersTimeoutMs: rule.backendTimeoutMs + 1000,
        events: tryState,
      });
      clearTimeout(tryTimer);
      if (series) deps.metrics?.recordResponse(series, res.status, performance.now() - tryStarted);
      if (rule.retry?.codes.has(res.status) && mayRetry(attempt, maxTries, clock, inc, true, r, backend.cluster)) {
        r?.breakers.failure(backend.id);
        (failed ??= new Set()).add(backend.id);
        res.body?.discard();
        tryState.release();
        await backoff(rule, attempt, deadline, random);
        continue;
      }
      if (res.status >= 500) r?.breakers.failure(backend.id);
      else r?.breakers.success(backend.id);
      const headers = clientResponseHeaders(res.headers, res.connection);
      headers.push(ROUTE_REVISION_HEADER, String(rule.revision));
      tryState.deliver();
      if (res.body === null) {
        tryState.release();
        clock.settle();
      }
      return { status: res.status, headers, body: res.body };
    } catch (err) {
      clearTimeout(tryTimer);
      tryState.release();
      if (bodyExceeded) {
        clock.settle();
        return tooLarge(maxBody, revisionHeaderOf(rule));
      }
      const timedOut = clock.timedOut || tryTimedOut || (err instanceof UpstreamError && err.failure === "timeout");
      const failure = timedOut ? "timeout" : err instanceof UpstreamError ? err.failure : "connect";
      if (series) deps.metrics?.recordResponse(series, timedOut ? 504 : 502, performance.now() - tryStarted);
      if (inc.signal.aborted) r?.breakers.abandon(backend.id);
      else {
        r?.breakers.failure(backend.id);
        deps.log.warn("upstream request failed", { route: rule.route, rule: rule.name, cluster: backend.cluster, attempt, failure, error: errorMessage(err) });
      }
      last = { status: timedOut ? 504 : 502, backend, failure };
      // A refused connection never reached the upstream: any method may go again. A timeout or reset may have.
      if (mayRetry(attempt, maxTries, clock, inc, failure !== "connect", r, backend.cluster)) {
        (failed ??= new Set()).add(backend.id);
        await backoff(rule, attempt, deadline, random);
        continue;
      }
      break;
    }
  }
  clock.settle();
  const end = last ?? { status: 502, backend: null, failure: "connect" };
  const cluster = end.backend?.cluster ?? "";
  return problem(
    end.status === 504
      ? {
          type: problemType("upstream-timeout"),
          title: "Upstream timed out",
          status: 504,
          detail: clock.timedOut ? `no answer within the request timeout of ${rule.requestTimeoutMs}ms` : `cluster ${cluster} did not answer within ${rule.backendTimeoutMs}ms`,
          cluster,
        }
      : { type: problemType("upstream-unavailable"), title: "Upstream unavailable", status: 502, detail: `cluster ${cluster}: ${end.failure ?? "error"}`, cluster },
    revisionHeaderOf(rule),
  );
}

const usableCache = new WeakMap<object, Usable>();
const everyBackend: Usable = () => true;

/** Whether a backend may take traffic now: its breaker is closed and its cluster's probe is not failing. Made once per gateway. */
function usableOf(r: DataPlaneDeps["resilience"]): Usable {
  if (!r) return everyBackend;
  let u = usableCache.get(r);
  if (!u) usableCache.set(r, (u = (b) => r.breakers.available(b.id) && r.clusterAlive?.(b.cluster) !== false));
  return u;
}

/** Whether a failed try may go again: tries left, time left, the client still there, safe for the method, and within the retry budget. */
function mayRetry(attempt: number, maxTries: number, clock: ExchangeClock, inc: IncomingRequest, idempotentOnly: boolean, r: DataPlaneDeps["resilience"], cluster: string): boolean {
  return attempt < maxTries && !clock.timedOut && !inc.signal.aborted && (!idempotentOnly || IDEMPOTENT.has(inc.method)) && (r ? r.budgets.tryRetry(cluster) : true);
}

/** The exchange's one timer (the request timeout) and the try it aborts; also told when the client goes away. */
class ExchangeClock {
  current: TryAbort | null = null;
  timedOut = false;
  private readonly timer: ReturnType<typeof setTimeout>;

  constructor(readonly timeoutMs: number) {
    this.timer = setTimeout(onRequestTimeout, timeoutMs, this);
  }

  clientGone(): void {
    this.current?.abort(new UpstreamError("aborted", "the client went away"));
  }

  timeoutError(): UpstreamError {
    return new UpstreamError("timeout", `no complete answer within the request timeout of ${this.timeoutMs}ms`);
  }

  settle(): void {
    clearTimeout(this.timer);
  }
}

function onRequestTimeout(clock: ExchangeClock): void {
  clock.timedOut = true;
  clock.current?.abort(clock.timeoutError());
}

/** One try: holds its in-flight slot until the upstream exchange is over, and hears how it ended. */
class Attempt implements UpstreamEvents {
  private delivered = false;
  private ended = false;
  private released = false;

  constructor(
    private readonly clock: ExchangeClock,
    private readonly deps: DataPlaneDeps,
    private readonly inc: IncomingRequest,
    private readonly rule: CompiledRule,
    private readonly cluster: string,
  ) {}

  release(): void {
    if (!this.released) this.deps.resilience?.limits?.release(this.cluster);
    this.released = true;
  }

  /**
   * This try's response goes to the client. A small answer is often over (settled) before the
   * awaiting exchange gets here, so either order ends the clock; missing one left the request
   * timer, and everything it holds, alive until the request timeout.
   */
  deliver(): void {
    this.delivered = true;
    if (this.ended) this.clock.settle();
  }

  settled(): void {
    this.release();
    this.ended = true;
    // Only the try whose response went to the client ends the exchange's clock.
    if (this.delivered) this.clock.settle();
  }

  bodyError(err: UpstreamError): void {
    if (!this.inc.signal.aborted) this.deps.log.warn("upstream response body failed", { route: this.rule.route, rule: this.rule.name, cluster: this.cluster, failure: err.failure, error: err.message });
  }
}

/** Exponential backoff with full jitter, never past the request deadline. */
function backoff(rule: CompiledRule, attempt: number, deadline: number, random: () => number): Promise<void> {
  const base = (rule.retry?.backoffMs ?? 25) * 2 ** (attempt - 1);
  const ms = Math.min(random() * base, Math.max(0, deadline - performance.now() - 1));
  return ms > 0 ? new Promise((res) => setTimeout(res, ms)) : Promise.resolve();
}

function tooLarge(limit: number, headers: Record<string, string>): Response {
  return problem({ type: problemType("payload-too-large"), title: "Payload too large", status: 413, detail: `the request body is larger than ${limit} bytes` }, { ...headers, connection: "close" });
}
