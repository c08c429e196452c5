// One client request against its rule's backends: up to `retry.maxTries` tries within the request
// timeout, each on a backend chosen among the available ones (a retry prefers a backend that has
// not failed this request), retries only where safe and only within the cluster's retry budget.
import { problem, problemType } from "../http/problem.ts";
import type { VerifiedCaller } from "../identity/verify-caller.ts";
import type { CompiledBackend, CompiledMatch, CompiledRule, RoutingTable } from "../routing/table.ts";
import type { TrafficLabels } from "../telemetry/recorder.ts";
import { errorMessage } from "../util/log.ts";
import { chooseAvailable, type Usable } from "./backend-choice.ts";
import type { DataPlaneDeps, IncomingRequest } from "./forward.ts";
import { clientResponseHeaders, upstreamRequestHeaders } from "./headers.ts";
import { BodyTooLargeError, capped, readAll, RETRY_BODY_LIMIT } from "./request-body.ts";
import { stickyKey } from "./session-key.ts";
import { UpstreamError, type UpstreamRequest } from "./upstream.ts";

const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

export async function exchange(
  deps: DataPlaneDeps,
  table: RoutingTable,
  inc: IncomingRequest,
  match: CompiledMatch,
  caller: VerifiedCaller | null,
  revisionHeader: Record<string, string>,
): Promise<Response> {
  const rule = match.rule;
  const r = deps.resilience;
  const usable: Usable = (b) => (r ? r.breakers.available(b.id) && r.clusterAlive?.(b.cluster) !== false : true);
  const random = deps.random ?? Math.random;
  const key = rule.sticky ? stickyKey(rule, inc.request, inc.claims) : undefined;
  const limits = r?.limits;

  const lengthHeader = inc.request.headers.get("content-length");
  const declared = lengthHeader === null ? NaN : Number(lengthHeader);
  const maxBody = limits?.maxBodyBytes ?? Infinity;
  if (inc.body !== null && declared > maxBody) return tooLarge(maxBody, revisionHeader);

  // Hold the body only when a retry might resend it and it is small; otherwise stream it once.
  let body: UpstreamRequest["body"] = inc.body;
  let bodyHeld = inc.body === null;
  let bodyExceeded = false;
  if (rule.retry && inc.body !== null && declared <= RETRY_BODY_LIMIT) {
    try {
      body = await readAll(inc.body, RETRY_BODY_LIMIT);
      bodyHeld = true;
    } catch (err) {
      if (err instanceof BodyTooLargeError) return tooLarge(RETRY_BODY_LIMIT, revisionHeader);
      return problem({ type: problemType("bad-request"), title: "Request body not received", status: 400, detail: "the request body could not be read" }, revisionHeader);
    }
  } else if (inc.body !== null && Number.isFinite(maxBody) && !(declared <= maxBody)) {
    body = capped(inc.body, maxBody, () => (bodyExceeded = true));
  }

  const host = inc.request.headers.get("host") ?? inc.url.host;
  const deadline = performance.now() + rule.requestTimeoutMs;
  const exchangeCtl = new AbortController();
  const requestTimer = setTimeout(() => exchangeCtl.abort(new UpstreamError("timeout", `no complete answer within the request timeout of ${rule.requestTimeoutMs}ms`)), rule.requestTimeoutMs);
  const settle = () => clearTimeout(requestTimer);
  const maxTries = rule.retry && bodyHeld ? rule.retry.maxTries : 1;
  const failed = new Set<string>();
  let last: { status: number; backend: CompiledBackend | null; failure?: string } | null = null;

  // Testers' header override: the rollout's canary whatever its weight.
  const override = rule.rollout?.headerOverride;
  const forced = override && inc.request.headers.get(override.name) === override.value ? rule.backends.find((b) => b.id === rule.rollout?.canaryId) : undefined;

  for (let attempt = 1; attempt <= maxTries; attempt++) {
    const choice =
      (attempt === 1 && forced ? { backend: forced, degraded: false } : null) ??
      (attempt > 1 ? chooseAvailable(rule, table, usable, key, random, failed) : null) ??
      chooseAvailable(rule, table, usable, key, random);
    if (!choice) {
      settle();
      return problem({ type: problemType("no-backend"), title: "No backend available", status: 503, detail: `every backend of rule ${rule.name} of route ${rule.route} has weight 0` }, revisionHeader);
    }
    const backend = choice.backend;
    const target = backend.target;
    if (!target) {
      settle();
      return problem({ type: problemType("unknown-cluster"), title: "Backend cluster not registered", status: 503, detail: `cluster "${backend.cluster}" of route ${rule.route} is not registered` }, revisionHeader);
    }
    if (limits && !limits.acquire(backend.cluster)) {
      settle();
      return problem({ type: problemType("overloaded"), title: "Overloaded", status: 503, detail: `too many requests in flight to cluster ${backend.cluster}` }, { ...revisionHeader, "retry-after": "1" });
    }
    let released = false;
    let delivered = false;
    const release = () => {
      if (!released) limits?.release(backend.cluster);
      released = true;
    };
    // The caller's token never crosses: the destination gets the gateway's own, scoped to its trust domain.
    const authorization = caller && deps.identity ? `Bearer ${await deps.identity.tokens.tokenFor(caller.identity, target.trustDomain)}` : undefined;
    const labels: TrafficLabels = { route_name: rule.route, dst_target_cluster: backend.cluster, dst_target_service: backend.service, src_cluster: caller?.cluster ?? "" };
    if (rule.rollout && (backend.id === rule.rollout.canaryId || backend.id === rule.rollout.stableId)) {
      labels.rollout = rule.rollout.name;
      labels.rollout_role = backend.id === rule.rollout.canaryId ? "canary" : "stable";
    }
    deps.metrics?.recordRequest(labels);
    if (attempt === 1) r?.budgets.request(backend.cluster);
    r?.breakers.begin(backend.id);

    const tryStarted = performance.now();
    const remaining = deadline - tryStarted;
    const tryMs = Math.min(rule.backendTimeoutMs, remaining);
    const perTry = tryMs < remaining ? new AbortController() : null;
    const tryTimer = perTry ? setTimeout(() => perTry.abort(new UpstreamError("timeout", `no response headers within backendRequest ${rule.backendTimeoutMs}ms`)), tryMs) : undefined;
    const signal = AbortSignal.any(perTry ? [exchangeCtl.signal, perTry.signal, inc.request.signal] : [exchangeCtl.signal, inc.request.signal]);
    const canRetry = (idempotentOnly: boolean) =>
      attempt < maxTries &&
      !exchangeCtl.signal.aborted &&
      !inc.request.signal.aborted &&
      (!idempotentOnly || IDEMPOTENT.has(inc.request.method)) &&
      (r ? r.budgets.tryRetry(backend.cluster) : true);
    try {
      const res = await deps.upstream.send({
        origin: target.origin,
        path: `${target.basePath}${inc.url.pathname}${inc.rawQuery ?? inc.url.search}`,
        method: inc.request.method,
        headers: upstreamRequestHeaders(inc.request.headers, inc.request.headers.get("connection"), { clientAddress: inc.clientAddress, proto: inc.proto, host, authority: backend.authority, authorization }),
        body,
        signal,
        // A backstop only: the timers above decide.
        headersTimeoutMs: rule.backendTimeoutMs + 1000,
        onSettled: () => {
          release();
          // Only the try whose response went to the client ends the exchange's clock.
          if (delivered) settle();
        },
        onBodyError: (err) => {
          if (!inc.request.signal.aborted) deps.log.warn("upstream response body failed", { route: rule.route, rule: rule.name, cluster: backend.cluster, failure: err.failure, error: err.message });
        },
      });
      clearTimeout(tryTimer);
      deps.metrics?.recordResponse(labels, res.status, performance.now() - tryStarted);
      if (rule.retry?.codes.has(res.status) && canRetry(true)) {
        r?.breakers.failure(backend.id);
        failed.add(backend.id);
        await res.body?.cancel().catch(() => undefined);
        release();
        await backoff(rule, attempt, deadline, random);
        continue;
      }
      if (res.status >= 500) r?.breakers.failure(backend.id);
      else r?.breakers.success(backend.id);
      const headers = clientResponseHeaders(res.headers, res.connection);
      for (const [k, v] of Object.entries(revisionHeader)) headers.set(k, v);
      delivered = true;
      if (res.body === null) {
        release();
        settle();
      }
      return new Response(res.body, { status: res.status, headers });
    } catch (err) {
      clearTimeout(tryTimer);
      release();
      if (bodyExceeded) {
        settle();
        return tooLarge(maxBody, revisionHeader);
      }
      const timedOut = exchangeCtl.signal.aborted || (perTry?.signal.aborted ?? false) || (err instanceof UpstreamError && err.failure === "timeout");
      const failure = timedOut ? "timeout" : err instanceof UpstreamError ? err.failure : "connect";
      deps.metrics?.recordResponse(labels, timedOut ? 504 : 502, performance.now() - tryStarted);
      if (inc.request.signal.aborted) r?.breakers.abandon(backend.id);
      else {
        r?.breakers.failure(backend.id);
        deps.log.warn("upstream request failed", { route: rule.route, rule: rule.name, cluster: backend.cluster, attempt, failure, error: errorMessage(err) });
      }
      last = { status: timedOut ? 504 : 502, backend, failure };
      // A refused connection never reached the upstream: any method may go again. A timeout or reset may have.
      if (canRetry(failure !== "connect")) {
        failed.add(backend.id);
        await backoff(rule, attempt, deadline, random);
        continue;
      }
      break;
    }
  }
  settle();
  const end = last ?? { status: 502, backend: null, failure: "connect" };
  const cluster = end.backend?.cluster ?? "";
  return problem(
    end.status === 504
      ? {
          type: problemType("upstream-timeout"),
          title: "Upstream timed out",
          status: 504,
          detail: exchangeCtl.signal.aborted ? `no answer within the request timeout of ${rule.requestTimeoutMs}ms` : `cluster ${cluster} did not answer within ${rule.backendTimeoutMs}ms`,
          cluster,
        }
      : { type: problemType("upstream-unavailable"), title: "Upstream unavailable", status: 502, detail: `cluster ${cluster}: ${end.failure ?? "error"}`, cluster },
    revisionHeader,
  );
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
