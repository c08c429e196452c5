// The Node.js runtime: one process serving the Hono app with undici upstreams and either the
// embedded store or Redis. The only module (with node-main.ts and node-upstream.ts) that knows it runs on Node.
import { readFile } from "node:fs/promises";
import type { IncomingMessage, Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import { serve, type HttpBindings } from "@hono/node-server";
import type { Context } from "hono";
import { createApp, type ConnectionFacts } from "../app.ts";
import { applyConfig, parseConfigText, type DeclarativeConfig } from "../config/declarative.ts";
import { ValidationError } from "../config/errors.ts";
import { compileTable } from "../routing/compile.ts";
import { RoutingState } from "../routing/routing-state.ts";
import { MemoryStore } from "../store/memory.ts";
import { RedisStore } from "../store/redis.ts";
import { StoreUnavailableError, type Store } from "../store/types.ts";
import { createLogger, errorMessage, type Logger } from "../util/log.ts";
import { createNodeUpstream } from "./node-upstream.ts";
import { createRemoteJWKSet } from "jose";
import type { AdminAuthOptions } from "../admin/auth.ts";
import { GatewayTokens } from "../identity/gateway-tokens.ts";
import { SigningKeyManager } from "../identity/signing-key-manager.ts";
import { TrustStore } from "../identity/trust-store.ts";
import { CallerVerifier } from "../identity/verify-caller.ts";
import { createAwsSecrets } from "../secrets/aws.ts";
import { CachedSecrets, type SecretsProvider } from "../secrets/secrets.ts";
import { MetricsFederation } from "../telemetry/federation.ts";
import { MetricsFlusher } from "../telemetry/flusher.ts";
import { HealthProber } from "../telemetry/health-probes.ts";
import { MetricsRecorder } from "../telemetry/recorder.ts";
import { CircuitBreakers } from "../proxy/circuit-breaker.ts";
import { Limits, type LimitOptions } from "../proxy/limits.ts";
import { RetryBudgets } from "../proxy/retry-budget.ts";
import { RolloutController } from "../rollout/controller.ts";

export interface NodeGatewayOptions {
  /** 0 picks a free port. */
  port?: number;
  hostname?: string;
  redisUrl?: string;
  redisPrefix?: string;
  /** Path of a JSON/YAML config file (ISTHMUS_CONFIG). */
  configPath?: string;
  /** Or the parsed config itself. */
  config?: DeclarativeConfig;
  adminToken?: string;
  log?: Logger;
  /** Safety-net store version poll. */
  checkIntervalMs?: number;
  /** Largest request header block accepted, bytes. */
  maxHeaderBytes?: number;
  /** Audience caller tokens must carry (ISTHMUS_AUDIENCE). */
  audience?: string;
  /** `iss` of the tokens the gateway signs (ISTHMUS_ISSUER). */
  issuer?: string;
  /** Secrets Manager id of the signing key, a private JWK (ISTHMUS_SIGNING_KEY_SECRET_ID). */
  signingKeySecretId?: string;
  /** Secrets Manager id of the admin token (ISTHMUS_ADMIN_TOKEN_SECRET_ID). */
  adminTokenSecretId?: string;
  /** Admin JWTs from an OIDC issuer, with isthmus:* scopes. */
  adminOidc?: { issuer: string; jwksUrl: string; audience: string };
  /** Where secrets come from; default AWS Secrets Manager (region and endpoint from the AWS SDK settings). */
  secrets?: SecretsProvider;
  secretsRegion?: string;
  /** How often cached secrets (signing key, admin token, secret-held bundles) are re-read. */
  secretsRefreshMs?: number;
  /** Refresh of bundles that give no spiffe_refresh_hint. */
  bundleRefreshS?: number;
  /** Minimum time between refetches of a bundle caused by unknown kids. */
  unknownKidCooldownMs?: number;
  /** How often this instance adds its metric deltas to the store. */
  metricsFlushMs?: number;
  /** How often each cluster with metrics.remoteWrite gets its slice pushed (by one instance at a time). */
  remoteWriteIntervalMs?: number;
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
  /** How often the rollout controller ticks (0 disables it on this instance). */
  rolloutTickMs?: number;
}

export interface RunningGateway {
  url: string;
  port: number;
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
  /** Runs one remote-write round now (if this instance holds the pusher lease). */
  pushMetrics(): Promise<void>;
  server: Server;
  close(): Promise<void>;
}

export async function loadConfigFile(path: string): Promise<DeclarativeConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new Error(`ISTHMUS_CONFIG: cannot read ${path}: ${errorMessage(err)}`, { cause: err });
  }
  try {
    return parseConfigText(text);
  } catch (err) {
    if (err instanceof ValidationError) throw new Error(`ISTHMUS_CONFIG ${path} is invalid:\n${err.errors.map((e) => `  ${e.path}: ${e.message}`).join("\n")}`, { cause: err });
    throw err;
  }
}

export async function startNodeGateway(opts: NodeGatewayOptions = {}): Promise<RunningGateway> {
  const cleanup: Array<() => Promise<unknown> | unknown> = [];
  try {
    return await start(opts, cleanup);
  } catch (err) {
    // A failed start leaves nothing running: timers, subscriptions and connections are closed.
    for (const c of cleanup.reverse()) await Promise.resolve(c()).catch(() => undefined);
    throw err;
  }
}

async function start(opts: NodeGatewayOptions, cleanup: Array<() => Promise<unknown> | unknown>): Promise<RunningGateway> {
  const log = opts.log ?? createLogger();
  const config = opts.config ?? (opts.configPath ? await loadConfigFile(opts.configPath) : undefined);

  let store: Store;
  if (opts.redisUrl) {
    const redis = new RedisStore({ url: opts.redisUrl, prefix: opts.redisPrefix, onError: () => undefined });
    await redis.connect().catch((err: unknown) => log.warn("redis not reachable at start; will keep trying", { error: errorMessage(err) }));
    store = redis;
  } else {
    store = new MemoryStore();
    log.info("using the embedded in-memory store (set ISTHMUS_REDIS_URL to share state between instances)");
  }
  cleanup.push(() => store.close());

  const routing = new RoutingState(store, { checkIntervalMs: opts.checkIntervalMs ?? 2000, log });
  let configPending = config !== undefined;
  const applyPending = async (): Promise<void> => {
    if (!configPending || !config) return;
    try {
      const s = await applyConfig(store, config, "config");
      configPending = false;
      log.info("declarative config applied", { clusters: s.clusters, routes: s.routes });
    } catch (err) {
      if (!(err instanceof StoreUnavailableError)) throw err;
      log.warn("store unreachable: declarative config will be applied when it returns", { error: err.message });
    }
  };
  await applyPending();
  await routing.start();
  cleanup.push(() => routing.stop());
  if (configPending && config && !routing.loaded) {
    // Fail static at start: serve the file's routes until the store can be written.
    routing.install(compileTable({ version: 0, clusters: toStored(config.clusters), routes: toStoredRoutes(config.routes) }));
  }
  const retry = setInterval(() => void applyPending().then(() => (configPending ? undefined : clearInterval(retry))), 2000);
  retry.unref();
  cleanup.push(() => clearInterval(retry));
  if (!configPending) clearInterval(retry);


  // Identity: trust bundles follow the registered clusters; the signing key and admin token may come from Secrets Manager.
  const secrets = new CachedSecrets(opts.secrets ?? createAwsSecrets({ region: opts.secretsRegion }), { refreshMs: opts.secretsRefreshMs ?? 300_000, log });
  const trust = new TrustStore({ fetch: (u, i) => fetch(u, i), secrets, log, defaultRefreshS: opts.bundleRefreshS, unknownKidCooldownMs: opts.unknownKidCooldownMs });
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
  // Rotation: re-read secrets on their refresh interval (served from cache, fetched in the background).
  const secretTimer = setInterval(() => {
    void keys.refresh();
    if (opts.adminTokenSecretId) void secrets.get(opts.adminTokenSecretId).then((v) => (v ? (adminToken = v) : undefined)).catch(() => undefined);
  }, Math.max(100, Math.min(opts.secretsRefreshMs ?? 300_000, 60_000)));
  secretTimer.unref();
  cleanup.push(() => clearInterval(secretTimer));

  if (!adminToken && !opts.adminOidc) log.warn("ISTHMUS_ADMIN_TOKEN is not set: the admin API refuses every call with 401");

  // Telemetry: record in memory, flush deltas to the store, probe clusters, push each its slice.
  const recorder = new MetricsRecorder();
  const flusher = new MetricsFlusher(recorder, store, log);
  const prober = new HealthProber((u, i) => fetch(u, i), { defaultIntervalMs: opts.probeIntervalMs, defaultTimeoutMs: opts.probeTimeoutMs, log });
  prober.sync(routing.current.clusters);
  routing.onSwap((t) => prober.sync(t.clusters));
  const federation = new MetricsFederation((u, i) => fetch(u, i), { gatewayName: opts.gatewayName ?? "isthmus", log });
  const instanceId = crypto.randomUUID();
  const pushSlices = async () => {
    const interval = opts.remoteWriteIntervalMs ?? 15_000;
    // One pusher at a time: instances pushing the same totals would send out-of-order samples.
    if (!(await store.tryLock("remote-write", instanceId, interval * 2).catch(() => false))) return;
    await flusher.flush();
    const totals = await store.readMetrics().catch(() => null);
    if (totals) await federation.pushAll(routing.current, [totals, prober.metrics()]);
  };
  const controller = new RolloutController({
    store,
    totals: async () => {
      await flusher.flush();
      return store.readMetrics();
    },
    fetch: (u, i) => fetch(u, i),
    instanceId,
    log,
    afterRouteWrite: () => routing.reload(),
  });
  const tickMs = opts.rolloutTickMs ?? 1_000;
  let ticking = false;
  const tick = async () => {
    if (ticking) return;
    ticking = true;
    try {
      await controller.tick();
    } catch (err) {
      log.warn("rollout controller tick failed", { error: errorMessage(err) });
    } finally {
      ticking = false;
    }
  };
  const timers = [
    setInterval(() => void flusher.flush(), opts.metricsFlushMs ?? 5_000),
    setInterval(() => void prober.probeDue(), Math.min(500, opts.probeIntervalMs ?? 500)),
    setInterval(() => void pushSlices().catch((err: unknown) => log.warn("metrics push failed", { error: errorMessage(err) })), opts.remoteWriteIntervalMs ?? 15_000),
    ...(tickMs > 0 ? [setInterval(() => void tick(), tickMs)] : []),
  ];
  for (const t of timers) t.unref();
  void prober.probeDue();

  // Resilience: retry budgets and breakers per backend, health-driven failover, load limits.
  const breakers = new CircuitBreakers(opts.breaker);
  breakers.onChange = (key, ejected) => log[ejected ? "warn" : "info"](ejected ? "backend ejected after consecutive failures" : "backend readmitted", { backend: key });
  const resilience = {
    budgets: new RetryBudgets(opts.retryBudget),
    breakers,
    clusterAlive: (cluster: string) => prober.state(cluster)?.alive ?? null,
    limits: new Limits(opts.limits),
  };

  const upstream = createNodeUpstream();
  const app = createApp({
    resilience,
    store,
    routing,
    upstream,
    log,
    adminAuth,
    identity: { verifier, tokens },
    metrics: recorder,
    telemetry: { flush: () => flusher.flush(), localMetrics: () => prober.metrics(), probe: (c) => prober.state(c) },
    connection: nodeConnection,
  });

  const server = await new Promise<Server>((resolve) => {
    const s = serve(
      {
        fetch: app.fetch,
        port: opts.port ?? 8080,
        hostname: opts.hostname,
        serverOptions: {
          maxHeaderSize: opts.maxHeaderBytes ?? 16_384,
          // Slow clients must send their headers in time (checked every second, so a slowloris
          // client is cut within about 11 s); keep-alive outlives typical LB idle timeouts.
          headersTimeout: 10_000,
          requestTimeout: 0,
          keepAliveTimeout: 65_000,
          connectionsCheckingInterval: 1_000,
        },
      },
      () => resolve(s as Server),
    );
  });
  const port = (server.address() as AddressInfo).port;
  const host = opts.hostname && opts.hostname !== "0.0.0.0" ? opts.hostname : "127.0.0.1";
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  log.info("isthmus listening", { url, store: store.kind });

  let closed: Promise<void> | null = null;
  return {
    url,
    port,
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
    pushMetrics: pushSlices,
    resilience,
    controller,
    server,
    close() {
      closed ??= (async () => {
        clearInterval(retry);
        clearInterval(secretTimer);
        for (const t of timers) clearInterval(t);
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeIdleConnections?.();
          setTimeout(() => server.closeAllConnections?.(), 2000).unref();
        });
        await routing.stop();
        await flusher.flush().catch(() => undefined);
        await upstream.close();
        await store.close();
      })();
      return closed;
    },
  };
}

function nodeConnection(c: Context): ConnectionFacts {
  const incoming = (c.env as HttpBindings).incoming as IncomingMessage;
  const socket = incoming.socket as TLSSocket;
  const hasBody = incoming.headers["transfer-encoding"] !== undefined || (incoming.headers["content-length"] !== undefined && incoming.headers["content-length"] !== "0");
  return {
    // Dual-stack sockets report IPv4 peers as ::ffff:a.b.c.d; forward the plain IPv4 address.
    clientAddress: (socket.remoteAddress ?? "").replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, ""),
    proto: socket.encrypted ? "https" : "http",
    body: hasBody ? incoming : null,
    rawQuery: rawQueryOf(incoming.url ?? ""),
  };
}

function rawQueryOf(target: string): string {
  const q = target.indexOf("?");
  return q < 0 ? "" : target.slice(q);
}

const toStored = (clusters: DeclarativeConfig["clusters"]) => Object.entries(clusters).map(([name, spec]) => ({ name, spec, updatedAt: "" }));
const toStoredRoutes = (routes: DeclarativeConfig["routes"]) => Object.entries(routes).map(([name, spec]) => ({ name, spec, revision: 0, updatedAt: "" }));
