// The Cloudflare Workers runtime (wrangler.toml `main`). The gateway core is built once per
// isolate on its first request and cached; requests never wait on the store after that: the
// routing table follows the store through a version check at most once a second, run with
// ctx.waitUntil after the response. Upstream calls use fetch; Redis is reached through the
// StoreHolder Durable Object (worker-store.ts); metric flushes and health probes ride on
// waitUntil; Cron Triggers run the rest of the background work (scheduled()).
import { waitUntil } from "cloudflare:workers";
import type { Context } from "hono";
import type { ConnectionFacts } from "../app.ts";
import { parseDuration } from "../config/duration.ts";
import { parseConfigText, type DeclarativeConfig } from "../config/declarative.ts";
import { ValidationError } from "../config/errors.ts";
import { createGateway, type FetchLike, type Gateway } from "../gateway.ts";
import { problem, problemType } from "../http/problem.ts";
import { createFetchUpstream, watchBody } from "../proxy/fetch-upstream.ts";
import { CachedSecrets, type SecretsProvider, type SecretStage } from "../secrets/secrets.ts";
import { MemoryStore } from "../store/memory.ts";
import type { Store } from "../store/types.ts";
import { createLogger, errorMessage, type Logger, type LogLevel } from "../util/log.ts";
import { createDurableObjectStore, StoreHolder, type StoreHolderStub } from "./worker-store.ts";

export { StoreHolder };

/** Bindings: vars and secrets from wrangler.toml / `wrangler secret put`, and the Durable Object. */
export interface WorkerEnv {
  STORE_HOLDER: DurableObjectNamespace<StoreHolder>;
  /** `redis://` or `rediss://`; unset: an in-memory store per isolate (development only). */
  ISTHMUS_REDIS_URL?: string;
  /** Key prefix in Redis (and the StoreHolder instance name); default "isthmus". */
  ISTHMUS_REDIS_PREFIX?: string;
  /** Declarative config as JSON or YAML text, applied once per isolate start (idempotent). */
  ISTHMUS_CONFIG?: string;
  ISTHMUS_ADMIN_TOKEN?: string;
  /** The gateway's signing key, a private JWK (JSON text). */
  ISTHMUS_SIGNING_KEY?: string;
  /** The key it replaced (public or private JWK), still published in /.well-known/jwks.json. */
  ISTHMUS_SIGNING_KEY_PREVIOUS?: string;
  ISTHMUS_AUDIENCE?: string;
  ISTHMUS_ISSUER?: string;
  ISTHMUS_GATEWAY_NAME?: string;
  ISTHMUS_LOG_LEVEL?: string;
  ISTHMUS_ADMIN_OIDC_ISSUER?: string;
  ISTHMUS_ADMIN_OIDC_JWKS_URL?: string;
  ISTHMUS_ADMIN_OIDC_AUDIENCE?: string;
  /** Routing-table version check interval per isolate; default "1s". */
  ISTHMUS_ROUTING_CHECK?: string;
  /** Metric flush interval per isolate; default "5s". */
  ISTHMUS_METRICS_FLUSH?: string;
  /** Rollout ticks driven by traffic, per isolate, besides the cron; default "10s", "0s" = cron only. */
  ISTHMUS_ROLLOUT_TICK?: string;
  /** Worker secrets named by clusters' `bundle.secretId` (and `<id>_PREVIOUS`). */
  [binding: string]: unknown;
}

interface Intervals {
  checkMs: number;
  flushMs: number;
  rolloutTickMs: number;
}

/** One isolate's gateway and the clocks of its throttled background work. */
interface Instance {
  gw: Gateway;
  every: Intervals;
  lastCheck: number;
  lastTick: number;
  lastFlush: number;
  /** When the scheduled flush runs (0: none scheduled). */
  flushAt: number;
}

export interface WorkerHandler {
  fetch(request: Request, env: WorkerEnv, ctx: ExecutionContext): Promise<Response>;
  scheduled(controller: ScheduledController, env: WorkerEnv, ctx: ExecutionContext): Promise<void>;
  /** The isolate's gateway (built on first use). */
  gateway(env: WorkerEnv): Promise<Gateway>;
}

/** A handler with its own per-isolate gateway cache (the default export is one of these). */
export function createWorker(): WorkerHandler {
  let instance: Promise<Instance> | null = null;
  const get = (env: WorkerEnv, ctx?: ExecutionContext): Promise<Instance> => {
    if (!instance) {
      const booting: Promise<Instance> = withTimeout(boot(env), BOOT_TIMEOUT_MS, "the gateway did not start").catch((err: unknown) => {
        if (instance === booting) instance = null; // the next request tries again
        throw err;
      });
      instance = booting;
      // Concurrent first requests share this boot: it must survive its own request going away.
      ctx?.waitUntil(booting.catch(() => undefined));
    }
    return instance;
  };

  return {
    async fetch(request, env, ctx) {
      let inst: Instance;
      try {
        inst = await get(env, ctx);
      } catch (err) {
        console.log(JSON.stringify({ time: new Date().toISOString(), level: "error", msg: "isthmus failed to start", error: errorMessage(err) }));
        return problem({ type: problemType("not-started"), title: "Gateway not started", status: 503, detail: `the gateway could not start: ${errorMessage(err)}` }, { "retry-after": "1" });
      }
      // The request routes with the table the isolate has: no store round trip on the way.
      const res = await inst.gw.app.fetch(request, env, ctx);
      // Then, after the response, throttled per isolate: version check and due health probes,
      // metric flush, rollout tick.
      const now = Date.now();
      const dataPlane = isDataPlane(request.url);
      // An admin write made through this isolate is followed at once, whatever the throttle.
      const adminWrite = !dataPlane && request.method !== "GET" && request.method !== "HEAD";
      if (now - inst.lastCheck >= inst.every.checkMs || adminWrite) {
        inst.lastCheck = now;
        ctx.waitUntil(Promise.all([inst.gw.tasks.syncRouting(), inst.gw.tasks.probeClusters()]));
      }
      // Only data-plane traffic records metrics (or a flush that failed waits for a retry).
      if (dataPlane || inst.gw.flusher.backlog) scheduleFlush(inst, ctx, now);
      if (inst.every.rolloutTickMs > 0 && now - inst.lastTick >= inst.every.rolloutTickMs) {
        inst.lastTick = now;
        ctx.waitUntil(inst.gw.tasks.tickRollouts());
      }
      return res;
    },

    async scheduled(_controller, env, ctx) {
      const inst = await get(env, ctx);
      ctx.waitUntil(runBackground(inst.gw));
    },

    async gateway(env) {
      return (await get(env)).gw;
    },
  };
}

/** One round of every background task: what timers do on Node, a Cron Trigger does here. */
export async function runBackground(gw: Gateway): Promise<void> {
  await gw.tasks.syncRouting();
  if (gw.configPending) await gw.tasks.applyConfig();
  // Starts the bundle refreshes that are due; the outbound fetch keeps this event alive for them.
  gw.trust.sync(gw.routing.current.clusters);
  await Promise.all([gw.tasks.refreshSecrets(), gw.tasks.flushMetrics(), gw.tasks.probeClusters()]);
  await gw.tasks.pushMetrics();
  await gw.tasks.tickRollouts();
}

/**
 * Flushes this isolate's metric deltas at most once per interval, and never leaves samples
 * waiting longer than that while the isolate lives: the flush is scheduled from the request that
 * recorded them, as waitUntil work after its response.
 */
function scheduleFlush(inst: Instance, ctx: ExecutionContext, now: number): void {
  // A scheduled flush whose event was cancelled never clears flushAt: treat it as gone after 30 s.
  if (inst.flushAt !== 0 && now < inst.flushAt + 30_000) return;
  const at = Math.max(now, inst.lastFlush + inst.every.flushMs);
  inst.flushAt = at;
  ctx.waitUntil(
    (async () => {
      const wait = at - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      inst.lastFlush = Date.now();
      inst.flushAt = 0;
      await inst.gw.tasks.flushMetrics();
    })(),
  );
}

/** A boot that hangs (its request's I/O cancelled, say) must not hold every later request. */
const BOOT_TIMEOUT_MS = 15_000;

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

async function boot(env: WorkerEnv): Promise<Instance> {
  const log = createLogger((env.ISTHMUS_LOG_LEVEL as LogLevel | undefined) ?? "info", (line) => console.log(line));
  const every: Intervals = {
    checkMs: duration(env, "ISTHMUS_ROUTING_CHECK", 1_000),
    flushMs: duration(env, "ISTHMUS_METRICS_FLUSH", 5_000),
    rolloutTickMs: duration(env, "ISTHMUS_ROLLOUT_TICK", 10_000),
  };
  let config: DeclarativeConfig | undefined;
  if (env.ISTHMUS_CONFIG) {
    try {
      config = parseConfigText(env.ISTHMUS_CONFIG);
    } catch (err) {
      if (err instanceof ValidationError) throw new Error(`ISTHMUS_CONFIG is invalid: ${err.errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`, { cause: err });
      throw err;
    }
  }
  const oidcIssuer = env.ISTHMUS_ADMIN_OIDC_ISSUER;
  const oidcJwks = env.ISTHMUS_ADMIN_OIDC_JWKS_URL;
  if (Boolean(oidcIssuer) !== Boolean(oidcJwks)) throw new Error("set both ISTHMUS_ADMIN_OIDC_ISSUER and ISTHMUS_ADMIN_OIDC_JWKS_URL, or neither");

  if (!env.ISTHMUS_SIGNING_KEY) log.warn("ISTHMUS_SIGNING_KEY is not set: every isolate signs with its own ephemeral key, so destinations cannot verify the tokens reliably; set it with `wrangler secret put ISTHMUS_SIGNING_KEY`");
  const store = workerStore(env, log);
  const secrets = new CachedSecrets(new WorkerSecrets(env), { refreshMs: 300_000, log });
  const gw = await createGateway(
    { store, upstream: createFetchUpstream(), fetch: outboundFetch, secrets, log, connection: workerConnection },
    {
      config,
      adminToken: env.ISTHMUS_ADMIN_TOKEN || undefined,
      adminOidc: oidcIssuer && oidcJwks ? { issuer: oidcIssuer, jwksUrl: oidcJwks, audience: env.ISTHMUS_ADMIN_OIDC_AUDIENCE || "isthmus-admin" } : undefined,
      audience: env.ISTHMUS_AUDIENCE || "isthmus",
      issuer: env.ISTHMUS_ISSUER || undefined,
      signingKeySecretId: env.ISTHMUS_SIGNING_KEY ? SIGNING_KEY : undefined,
      gatewayName: env.ISTHMUS_GATEWAY_NAME || undefined,
      remoteWriteIntervalMs: 60_000,
      // No timers: version checks run from requests and cron (above).
      checkIntervalMs: 0,
    },
  );
  log.info("isthmus started in this isolate", { store: env.ISTHMUS_REDIS_URL ? "redis (StoreHolder Durable Object)" : "memory (this isolate only)", routes: gw.routing.current.routes.size });
  return { gw, every, lastCheck: Date.now(), lastTick: 0, lastFlush: 0, flushAt: 0 };
}

function workerStore(env: WorkerEnv, log: Logger): Store {
  if (!env.ISTHMUS_REDIS_URL) {
    log.warn("ISTHMUS_REDIS_URL is not set: using an in-memory store in each isolate (development only: isolates do not share it, and it is lost on eviction)");
    return new MemoryStore();
  }
  const ns = env.STORE_HOLDER;
  const prefix = env.ISTHMUS_REDIS_PREFIX || "isthmus";
  const id = ns.idFromName(prefix);
  // A stub per call: a stub belongs to the request that made it, and one kept for the next request
  // fails with "Cannot perform I/O on behalf of a different request (I/O type: OutgoingFactory)".
  return createDurableObjectStore(() => ns.get(id) as unknown as StoreHolderStub, { url: env.ISTHMUS_REDIS_URL, prefix });
}

const SIGNING_KEY = "ISTHMUS_SIGNING_KEY";

/**
 * Secrets are Worker secret bindings: the signing key, and the bundles clusters name by
 * `bundle.secretId` (AWSCURRENT = the binding, AWSPREVIOUS = `<id>_PREVIOUS`). No other ISTHMUS_*
 * binding is readable this way, so a registered cluster can never point at the admin token.
 */
class WorkerSecrets implements SecretsProvider {
  constructor(private readonly env: WorkerEnv) {}
  async get(id: string, stage: SecretStage): Promise<string | null> {
    if (id.startsWith("ISTHMUS_") && id !== SIGNING_KEY) return null;
    const v = this.env[stage === "AWSCURRENT" ? id : `${id}_PREVIOUS`];
    return typeof v === "string" && v !== "" ? v : null;
  }
}

/**
 * Outbound fetch for bundles, probes, remote write and webhooks. Work started on behalf of one
 * request may outlive its response and its waitUntil promises (a bundle refresh kicked off by a
 * version check), and the runtime may end an event once those settle: each fetch registers itself
 * with waitUntil, so its event lasts until the fetch's body has been read.
 */
const outboundFetch: FetchLike = async (input, init) => {
  let done!: () => void;
  waitUntil(new Promise<void>((resolve) => (done = resolve)));
  let res: Response;
  try {
    res = await fetch(input, init);
  } catch (err) {
    done();
    throw err;
  }
  if (!res.body) {
    done();
    return res;
  }
  return new Response(watchBody(res.body, { onEnd: done }), res);
};

function isDataPlane(url: string): boolean {
  const path = new URL(url).pathname;
  return !path.startsWith("/_isthmus/") && !path.startsWith("/.well-known/");
}

function workerConnection(c: Context): ConnectionFacts {
  const req = c.req.raw;
  const url = req.url;
  const q = url.indexOf("?");
  return {
    // Set by Cloudflare's edge (a client-sent value is overwritten); absent in local tests.
    clientAddress: req.headers.get("cf-connecting-ip") ?? "",
    proto: url.startsWith("https:") ? "https" : "http",
    body: req.body,
    rawQuery: q < 0 ? "" : url.slice(q),
  };
}

function duration(env: WorkerEnv, name: keyof WorkerEnv & string, fallback: number): number {
  const text = env[name];
  if (typeof text !== "string" || text === "") return fallback;
  const ms = parseDuration(text);
  if (ms === undefined) throw new Error(`${name} must be a duration such as "5s" (got "${text}")`);
  return ms;
}

const worker = createWorker();
export default {
  fetch: (request: Request, env: WorkerEnv, ctx: ExecutionContext) => worker.fetch(request, env, ctx),
  scheduled: (controller: ScheduledController, env: WorkerEnv, ctx: ExecutionContext) => worker.scheduled(controller, env, ctx),
} satisfies ExportedHandler<WorkerEnv>;
