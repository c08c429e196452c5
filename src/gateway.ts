// The gateway core, the same on every runtime: store-backed routing, identity, resilience,
// telemetry and rollouts composed into one Hono app, with background work exposed as plain async
// methods. Each runtime decides when they run: timers on Node, Cron Triggers and waitUntil on
// Workers, an EventBridge schedule on Lambda.
import type { Context, Hono } from "hono";
import { createRemoteJWKSet } from "jose";
import type { AdminAuthOptions } from "./admin/auth.ts";
import { createApp, type ConnectionFacts } from "./app.ts";
import { applyConfig, type ApplySummary, type DeclarativeConfig } from "./config/declarative.ts";
import { GatewayTokens } from "./identity/gateway-tokens.ts";
import { SigningKeyManager } from "./identity/signing-key-manager.ts";
import { TrustStore, type TrustStoreDeps } from "./identity/trust-store.ts";
import { CallerVerifier } from "./identity/verify-caller.ts";
import { CircuitBreakers } from "./proxy/circuit-breaker.ts";
import { Limits, type LimitOptions } from "./proxy/limits.ts";
import { RetryBudgets } from "./proxy/retry-budget.ts";
import type { DataPlaneDeps } from "./proxy/forward.ts";
import type { UpstreamClient } from "./proxy/upstream.ts";
import { RolloutController } from "./rollout/controller.ts";
import { compileTable } from "./routing/compile.ts";
import { RoutingState } from "./routing/routing-state.ts";
import type { CachedSecrets } from "./secrets/secrets.ts";
import { StoreUnavailableError, type Store } from "./store/types.ts";
import { MetricsFederation } from "./telemetry/federation.ts";
import { MetricsFlusher } from "./telemetry/flusher.ts";
import { HealthProber } from "./telemetry/health-probes.ts";
import { MetricsRecorder } from "./telemetry/recorder.ts";
import { errorMessage, type Logger } from "./util/log.ts";

export type FetchLike = TrustStoreDeps["fetch"];

export interface GatewayPorts {
  store: Store;
  upstream: UpstreamClient;
  /** Outbound fetch for bundles, probes, remote write and webhooks (low volume, bounded by timeouts). */
  fetch: FetchLike;
  secrets: CachedSecrets;
  log: Logger;
  connection(c: Context): ConnectionFacts;
}

export interface GatewayOptions {
  /** Clusters and routes applied at start (ISTHMUS_CONFIG), idempotently. */
  config?: DeclarativeConfig;
  /** Bearer token of the admin API (ISTHMUS_ADMIN_TOKEN). */
  adminToken?: string;
  /** Secrets Manager id of the admin token (ISTHMUS_ADMIN_TOKEN_SECRET_ID). */
  adminTokenSecretId?: string;
  /** Admin JWTs from an OIDC issuer, with isthmus:* scopes. */
  adminOidc?: { issuer: string; jwksUrl: string; audience: string };
  /** Audience caller tokens must carry (ISTHMUS_AUDIENCE). */
  audience?: string;
  /** `iss` of the tokens the gateway signs (ISTHMUS_ISSUER). */
  issuer?: string;
  /** Secrets Manager id of the signing key, a private JWK (ISTHMUS_SIGNING_KEY_SECRET_ID). */
  signingKeySecretId?: string;
  /** Refresh of bundles that give no spiffe_refresh_hint, seconds. */
  bundleRefreshS?: number;
  /** Minimum time between refetches of a bundle caused by unknown kids. */
  unknownKidCooldownMs?: number;
  /** The `gateway` external label of pushed series (ISTHMUS_GATEWAY_NAME). */
  gatewayName?: string;
  /** Health-probe defaults when a cluster sets none. */
  probeIntervalMs?: number;
  probeTimeoutMs?: number;
  /** In-flight and body-size limits of the data plane. */
  limits?: LimitOptions;
  /** Consecutive failures that eject a backend (Linkerd's default 7), and its penalty bounds. */
  breaker?: { maxFailures?: number; minPenaltyMs?: number; maxPenaltyMs?: number };
  /** Retry budget: retries at most `ratio` of requests plus `minPerSecond`, per backend cluster. */
  retryBudget?: { ratio?: number; minPerSecond?: number };
  /** Safety-net version poll of the routing table (0 = none: serverless runtimes call `routing.checkNow()`). */
  checkIntervalMs?: number;
  /** How often each cluster with metrics.remoteWrite gets its slice pushed (by one instance at a time). */
  remoteWriteIntervalMs?: number;
}

export interface Gateway {
  app: Hono;
  /** The data plane's dependencies (the Node runtime serves data-plane requests below Hono with them). */
  dataPlane: DataPlaneDeps;
  store: Store;
  routing: RoutingState;
  trust: TrustStore;
  verifier: CallerVerifier;
  tokens: GatewayTokens;
  signingKeys: SigningKeyManager;
  metrics: MetricsRecorder;
  flusher: MetricsFlusher;
  prober: HealthProber;
  federation: MetricsFederation;
  resilience: { budgets: RetryBudgets; breakers: CircuitBreakers; limits: Limits };
  controller: RolloutController;
  instanceId: string;
  /** True while the declarative config still waits for the store. */
  readonly configPending: boolean;
  /** Background work, each safe to call at any time and never throwing. */
  tasks: {
    applyConfig(): Promise<ApplySummary | null>;
    flushMetrics(): Promise<boolean>;
    probeClusters(): Promise<void>;
    /** One remote-write round, if this instance holds the pusher lease. */
    pushMetrics(): Promise<void>;
    tickRollouts(): Promise<void>;
    refreshSecrets(): Promise<void>;
    syncRouting(): Promise<void>;
  };
  close(): Promise<void>;
}

export async function createGateway(ports: GatewayPorts, opts: GatewayOptions = {}): Promise<Gateway> {
  const { store, log, secrets } = ports;
  const config = opts.config;
  const routing = new RoutingState(store, { checkIntervalMs: opts.checkIntervalMs ?? 0, log });

  let configPending = config !== undefined;
  const applyPending = async (): Promise<ApplySummary | null> => {
    if (!configPending || !config) return null;
    try {
      const s = await applyConfig(store, config, "config");
      configPending = false;
      log.info("declarative config applied", { clusters: s.clusters, routes: s.routes });
      return s;
    } catch (err) {
      if (!(err instanceof StoreUnavailableError)) throw err;
      log.warn("store unreachable: declarative config will be applied when it returns", { error: err.message });
      return null;
    }
  };
  await applyPending();
  // As soon as the store answers (again), the file goes in: no window where an empty store serves.
  routing.onStoreReachable(() => {
    if (configPending) void applyPending().then((applied) => (applied ? routing.reload() : undefined)).catch(() => undefined);
  });
  await routing.start();
  if (configPending && config && !routing.loaded) {
    // Fail static at start: serve the file's routes until the store can be written.
    const toStored = Object.entries(config.clusters).map(([name, spec]) => ({ name, spec, updatedAt: "" }));
    const toRoutes = Object.entries(config.routes).map(([name, spec]) => ({ name, spec, revision: 0, updatedAt: "" }));
    routing.install(compileTable({ version: 0, clusters: toStored, routes: toRoutes }));
  }

  // Identity.
  const trust = new TrustStore({ fetch: ports.fetch, secrets, log, defaultRefreshS: opts.bundleRefreshS, unknownKidCooldownMs: opts.unknownKidCooldownMs });
  trust.sync(routing.current.clusters);
  routing.onSwap((t) => trust.sync(t.clusters));
  const keys = await SigningKeyManager.create({ secrets, secretId: opts.signingKeySecretId, log });
  const tokens = new GatewayTokens(() => keys.get(), { issuer: opts.issuer ?? "isthmus" });
  const verifier = new CallerVerifier(trust, { audience: opts.audience ?? "isthmus" });
  let adminToken = opts.adminToken;
  if (opts.adminTokenSecretId) {
    const id = opts.adminTokenSecretId;
    adminToken = await secrets.require(id).catch((err: unknown) => {
      throw new Error(`ISTHMUS_ADMIN_TOKEN_SECRET_ID: cannot read admin token secret "${id}": ${errorMessage(err)}`, { cause: err });
    });
  }
  const adminAuth: AdminAuthOptions = {
    token: () => adminToken,
    ...(opts.adminOidc
      ? { oidc: { issuer: opts.adminOidc.issuer, audience: opts.adminOidc.audience, getKey: createRemoteJWKSet(new URL(opts.adminOidc.jwksUrl), { cooldownDuration: 30_000, timeoutDuration: 2_000 }) } }
      : {}),
  };
  if (!adminToken && !opts.adminOidc) log.warn("ISTHMUS_ADMIN_TOKEN is not set: the admin API refuses every call with 401");

  // Telemetry.
  const recorder = new MetricsRecorder();
  const flusher = new MetricsFlusher(recorder, store, log);
  const prober = new HealthProber(ports.fetch, { defaultIntervalMs: opts.probeIntervalMs, defaultTimeoutMs: opts.probeTimeoutMs, log });
  prober.sync(routing.current.clusters);
  routing.onSwap((t) => prober.sync(t.clusters));
  const federation = new MetricsFederation(ports.fetch, { gatewayName: opts.gatewayName ?? "isthmus", log });
  const instanceId = crypto.randomUUID();

  // Rollouts.
  const controller = new RolloutController({
    store,
    totals: async () => {
      await flusher.flush();
      return store.readMetrics();
    },
    fetch: ports.fetch,
    instanceId,
    log,
    afterRouteWrite: () => routing.reload(),
  });

  // Resilience.
  const breakers = new CircuitBreakers(opts.breaker);
  breakers.onChange = (key, ejected) => log[ejected ? "warn" : "info"](ejected ? "backend ejected after consecutive failures" : "backend readmitted", { backend: key });
  const resilience = {
    budgets: new RetryBudgets(opts.retryBudget),
    breakers,
    clusterAlive: (cluster: string) => prober.state(cluster)?.alive ?? null,
    limits: new Limits(opts.limits),
  };

  // What the data plane needs: the Hono app's data plane and the Node runtime's fast path share it.
  const dataPlane: DataPlaneDeps = { routing, upstream: ports.upstream, log, identity: { verifier, tokens }, metrics: recorder, resilience };
  const app = createApp({
    ...dataPlane,
    routing,
    resilience,
    store,
    adminAuth,
    telemetry: { flush: () => flusher.flush(), localMetrics: () => prober.metrics(), probe: (c) => prober.state(c) },
    fetch: ports.fetch,
    trust,
    connection: ports.connection,
  });

  const quiet = async <T>(what: string, fn: () => Promise<T>, fallback: T): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      log.warn(`${what} failed`, { error: errorMessage(err) });
      return fallback;
    }
  };
  let ticking = false;

  return {
    app,
    dataPlane,
    store,
    routing,
    trust,
    verifier,
    tokens,
    signingKeys: keys,
    metrics: recorder,
    flusher,
    prober,
    federation,
    resilience,
    controller,
    instanceId,
    get configPending() {
      return configPending;
    },
    tasks: {
      applyConfig: () => quiet("declarative config", applyPending, null),
      flushMetrics: () => quiet("metrics flush", () => flusher.flush(), false),
      probeClusters: () => quiet("health probes", () => prober.probeDue(), undefined),
      pushMetrics: () =>
        quiet(
          "metrics push",
          async () => {
            const interval = opts.remoteWriteIntervalMs ?? 15_000;
            // One pusher at a time: instances pushing the same totals would send out-of-order samples.
            if (!(await store.tryLock("remote-write", instanceId, interval * 2).catch(() => false))) return;
            await flusher.flush();
            const totals = await store.readMetrics();
            await federation.pushAll(routing.current, [totals, prober.metrics()]);
          },
          undefined,
        ),
      tickRollouts: async () => {
        if (ticking) return;
        ticking = true;
        try {
          await quiet("rollout tick", () => controller.tick(), undefined);
        } finally {
          ticking = false;
        }
      },
      refreshSecrets: () =>
        quiet(
          "secret refresh",
          async () => {
            await keys.refresh();
            if (opts.adminTokenSecretId) {
              const v = await secrets.get(opts.adminTokenSecretId);
              if (v) adminToken = v;
            }
          },
          undefined,
        ),
      syncRouting: () => routing.checkNow(),
    },
    async close() {
      await routing.stop();
      await flusher.flush().catch(() => undefined);
    },
  };
}
