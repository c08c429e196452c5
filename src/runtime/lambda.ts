// The AWS Lambda runtime: the gateway core behind a Lambda Function URL. The only module that knows
// it runs on Lambda. One gateway per execution environment, created on the first invocation (or
// during the init phase on real Lambda) and reused by every invocation after it: the ioredis
// connection, the undici pools, the verified-token and secret caches all survive between
// invocations; nothing runs while the environment is frozen.
//
//   handler            buffered responses (Function URL InvokeMode BUFFERED, API Gateway)
//   streamingHandler   streamed responses (Function URL InvokeMode RESPONSE_STREAM)
//
// Background work has no timers here: an EventBridge schedule invokes the same function (the event
// has `source: "aws.events"`, `detail-type: "Scheduled Event"`), and that invocation runs every
// task once. On ordinary invocations the routing table's version is checked at most once a second
// (before the request), and metric deltas are flushed at most every ISTHMUS_METRICS_FLUSH (after
// the response: in buffered mode before the handler returns, since Lambda freezes the environment
// as soon as it does).
import type { Context as LambdaContext, LambdaFunctionURLEvent, ScheduledEvent } from "aws-lambda";
import { Hono, type Context } from "hono";
// `hono/aws-lambda` is marked @deprecated in favour of `@hono/aws-lambda`, which is not published on
// npm yet (research/platform.md section 5). Switch this import once it is; the API is the same.
import { handle, streamHandle, type ApiGatewayRequestContext, type ApiGatewayRequestContextV2, type LambdaEvent } from "hono/aws-lambda";
import type { ConnectionFacts } from "../app.ts";
import { parseDuration } from "../config/duration.ts";
import { createGateway, type Gateway, type GatewayOptions } from "../gateway.ts";
import { problem, problemType } from "../http/problem.ts";
import { createAwsSecrets } from "../secrets/aws.ts";
import { CachedSecrets } from "../secrets/secrets.ts";
import type { Store } from "../store/types.ts";
import { createLogger, errorMessage, type Logger, type LogLevel } from "../util/log.ts";
import { loadConfigFile } from "./config-file.ts";
import { gatewayOptionsFromEnv } from "./env.ts";
import { openStore } from "./open-store.ts";
import { createNodeUpstream } from "./node-upstream.ts";

/** What `hono/aws-lambda` passes as `c.env` (buffered: `lambdaContext`, streamed: `context`). */
interface LambdaBindings {
  event: LambdaEvent;
  requestContext?: ApiGatewayRequestContextV2 | ApiGatewayRequestContext | Record<string, unknown>;
  lambdaContext?: LambdaContext;
  context?: LambdaContext;
}

/** Settings read from the environment (the same variables as the Node runtime, see docs/configuration.md). */
export interface LambdaSettings {
  redisUrl?: string;
  redisPrefix?: string;
  configPath?: string;
  logLevel: LogLevel;
  /** Minimum time between metric flushes at the end of ordinary invocations (0: every invocation). */
  metricsFlushMs: number;
  /** Minimum time between routing-table version checks. */
  routingCheckMs: number;
  secretsRegion?: string;
  secretsRefreshMs?: number;
  gateway: GatewayOptions;
}

/** The longest a request waits for the routing version check; past it, it is served from the table in memory. */
const ROUTING_CHECK_WAIT_MS = 250;

export function settingsFromEnv(env: NodeJS.ProcessEnv = process.env): LambdaSettings {
  const durationOf = (name: string, fallback: number | undefined): number | undefined => {
    const text = env[name];
    if (!text) return fallback;
    if (text === "0") return 0;
    const ms = parseDuration(text);
    if (ms === undefined) throw new Error(`${name} must be a duration such as "5s" (got "${text}")`);
    return ms;
  };
  return {
    redisUrl: env.ISTHMUS_REDIS_URL || undefined,
    redisPrefix: env.ISTHMUS_REDIS_PREFIX || undefined,
    configPath: env.ISTHMUS_CONFIG || undefined,
    logLevel: (env.ISTHMUS_LOG_LEVEL as LogLevel | undefined) || "info",
    metricsFlushMs: durationOf("ISTHMUS_METRICS_FLUSH", 5_000) ?? 5_000,
    routingCheckMs: durationOf("ISTHMUS_ROUTING_CHECK", 1_000) ?? 1_000,
    secretsRegion: env.AWS_REGION || env.AWS_DEFAULT_REGION || undefined,
    secretsRefreshMs: durationOf("ISTHMUS_SECRETS_REFRESH", undefined),
    gateway: {
      ...gatewayOptionsFromEnv(env),
      // Serverless: no version-poll timer; the handler calls routing.checkNow() itself.
      checkIntervalMs: 0,
    },
  };
}

/** One execution environment's gateway and its pacing state. */
interface Environment {
  gw: Gateway;
  log: Logger;
  settings: LambdaSettings;
  lastRoutingCheck: number;
  lastFlush: number;
  release(): Promise<void>;
}

let current: Promise<Environment> | null = null;

/** The environment's gateway, created on first use. A failed start is not cached: the next invocation tries again. */
function environment(): Promise<Environment> {
  if (!current) {
    const starting = startEnvironment();
    current = starting;
    starting.catch(() => {
      if (current === starting) current = null;
    });
  }
  return current;
}

async function startEnvironment(): Promise<Environment> {
  let settings: LambdaSettings;
  try {
    settings = settingsFromEnv();
  } catch (err) {
    createLogger("info").error("isthmus failed to start: invalid environment", { error: errorMessage(err) });
    throw err;
  }
  const log = createLogger(settings.logLevel);
  const cleanup: Array<() => Promise<unknown>> = [];
  try {
    const config = settings.configPath ? await loadConfigFile(settings.configPath) : undefined;
    const store = await openStore(settings.redisUrl, settings.redisPrefix, log, { level: "warn", msg: "ISTHMUS_REDIS_URL is not set: using an in-memory store private to this execution environment; other environments will not see its routes" });
    cleanup.push(() => store.close());
    const upstream = createNodeUpstream();
    cleanup.push(() => upstream.close());
    const secrets = new CachedSecrets(createAwsSecrets({ region: settings.secretsRegion }), { refreshMs: settings.secretsRefreshMs ?? 300_000, log });
    const gw = await createGateway(
      { store: withoutSubscriptions(store), upstream, fetch: (u, i) => fetch(u, i), secrets, log, connection: lambdaConnection },
      { ...settings.gateway, config },
    );
    const now = Date.now();
    log.info("isthmus ready on AWS Lambda", { store: store.kind, routes: gw.routing.current.routes.size });
    return {
      gw,
      log,
      settings,
      lastRoutingCheck: now,
      lastFlush: now,
      async release() {
        await gw.close();
        await upstream.close();
        await store.close();
      },
    };
  } catch (err) {
    for (const c of cleanup.reverse()) await c().catch(() => undefined);
    log.error("isthmus failed to start", { error: errorMessage(err) });
    throw err;
  }
}

/**
 * No pub/sub subscriber on Lambda: a frozen environment cannot act on messages, and a second
 * connection per environment would double the cache's connection count. The routing table follows
 * the store through the version check instead (at most once a second, before a request).
 */
function withoutSubscriptions(store: Store): Store {
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === "subscribe") return async () => async () => undefined;
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}


function lambdaConnection(c: Context): ConnectionFacts {
  const env = c.env as LambdaBindings | undefined;
  const event = env?.event as { rawQueryString?: string; requestContext?: { http?: { sourceIp?: string }; identity?: { sourceIp?: string } } } | undefined;
  const rc = event?.requestContext;
  const raw = event?.rawQueryString;
  return {
    // Function URLs and API Gateway give the caller's address in the request context (never a client-set header).
    clientAddress: rc?.http?.sourceIp ?? rc?.identity?.sourceIp ?? "",
    // Function URLs are HTTPS only.
    proto: "https",
    // The event body was decoded into the Request by the adapter; undici streams it from there.
    body: c.req.raw.body,
    ...(raw !== undefined ? { rawQuery: raw ? `?${raw}` : "" } : {}),
  };
}

// ---------------------------------------------------------------- per invocation

const ADMIN_PREFIX = "/_isthmus/v1/";

/** Before a request: the routing version check, at most once per `routingCheckMs` per environment. */
async function beforeRequest(e: Environment): Promise<void> {
  const now = Date.now();
  if (now - e.lastRoutingCheck < e.settings.routingCheckMs) return;
  e.lastRoutingCheck = now;
  // Bounded: when the store is slow or away the request is served from the table in memory, and
  // the check finishes in the background (or on the next thaw).
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([e.gw.routing.checkNow(), new Promise<void>((r) => (timer = setTimeout(r, ROUTING_CHECK_WAIT_MS)))]);
  clearTimeout(timer);
}

/** After a response: flush metric deltas at most every `metricsFlushMs`. */
async function afterResponse(e: Environment): Promise<void> {
  const now = Date.now();
  if (now - e.lastFlush < e.settings.metricsFlushMs) return;
  e.lastFlush = now;
  await e.gw.tasks.flushMetrics();
}

/** The entry app: waits for the environment's gateway, then hands it the request untouched. */
const entry = new Hono();
entry.all("*", async (c) => {
  let e: Environment;
  try {
    e = await environment();
  } catch {
    // Logged by startEnvironment; the caller gets no internals. The next invocation retries the start.
    return problem({ type: problemType("unavailable"), title: "Gateway unavailable", status: 503, detail: "the gateway could not start; see its log" }, { "retry-after": "1" });
  }
  await beforeRequest(e);
  const res = await e.gw.app.fetch(c.req.raw, c.env);
  // This environment just wrote: its next request checks the version at once.
  if (c.req.path.startsWith(ADMIN_PREFIX) && c.req.method !== "GET" && c.req.method !== "HEAD") e.lastRoutingCheck = 0;
  return res;
});

// ---------------------------------------------------------------- scheduled work

/** An EventBridge schedule's event (rate or cron rule with the default target input). */
export function isScheduledEvent(event: unknown): event is ScheduledEvent {
  if (typeof event !== "object" || event === null) return false;
  const e = event as Record<string, unknown>;
  return e.source === "aws.events" && e["detail-type"] === "Scheduled Event";
}

export interface ScheduledSummary {
  ok: true;
  instanceId: string;
  routingVersion: number;
  /** Milliseconds each task took. */
  tasks: Record<string, number>;
}

/** Runs every background task once, in dependency order. Each task logs and swallows its own failures. */
async function runScheduled(): Promise<ScheduledSummary> {
  const e = await environment();
  const { tasks } = e.gw;
  const took: Record<string, number> = {};
  const run = async (name: string, task: () => Promise<unknown>) => {
    const t0 = performance.now();
    await task();
    took[name] = Math.round(performance.now() - t0);
  };
  await run("applyConfig", () => tasks.applyConfig());
  await run("refreshSecrets", () => tasks.refreshSecrets());
  await run("syncRouting", () => tasks.syncRouting());
  e.lastRoutingCheck = Date.now();
  await run("probeClusters", () => tasks.probeClusters());
  await run("flushMetrics", () => tasks.flushMetrics());
  e.lastFlush = Date.now();
  await run("pushMetrics", () => tasks.pushMetrics());
  await run("tickRollouts", () => tasks.tickRollouts());
  e.log.debug("scheduled tasks done", { tasks: took });
  return { ok: true, instanceId: e.gw.instanceId, routingVersion: e.gw.routing.current.version, tasks: took };
}

/** After the response of an ordinary invocation. Never throws. */
async function settle(): Promise<void> {
  // `current` is set: the request itself started (or failed to start) the environment.
  const e = await current?.catch(() => null);
  if (e) await afterResponse(e);
}

// ---------------------------------------------------------------- handlers

const buffered = handle(entry);
type BufferedResult = Awaited<ReturnType<typeof buffered>>;

/** What the function is invoked with: HTTP events (Function URL, API Gateway, ALB) and the EventBridge schedule. */
export type IsthmusLambdaEvent = LambdaFunctionURLEvent | LambdaEvent | ScheduledEvent;

/** Buffered handler: Function URL (InvokeMode BUFFERED), API Gateway, ALB, and the EventBridge schedule. */
export async function handler(event: IsthmusLambdaEvent, context?: LambdaContext): Promise<BufferedResult | ScheduledSummary> {
  if (isScheduledEvent(event)) return runScheduled();
  // @types/aws-lambda and Hono type the same payload slightly differently (body undefined vs null).
  const result = await buffered(event as LambdaEvent, context);
  // The body is already read into `result`: flush now, Lambda freezes the environment once this returns.
  await settle();
  return result;
}

type StreamingHandler = (event: IsthmusLambdaEvent, responseStream: awslambda.HttpResponseStream, context: LambdaContext) => Promise<void>;

/**
 * Streaming handler: Function URL with InvokeMode RESPONSE_STREAM (and the EventBridge schedule,
 * whose invocation gets the task summary as its response). Needs the Lambda runtime's `awslambda`
 * global, present when the module is loaded on Lambda (tests install a stand-in before importing).
 */
export const streamingHandler: StreamingHandler =
  typeof awslambda === "undefined"
    ? async () => {
        throw new Error("streamingHandler needs the AWS Lambda Node.js runtime (the awslambda global); use `handler` elsewhere");
      }
    : makeStreamingHandler();

function makeStreamingHandler(): StreamingHandler {
  const streamed = streamHandle(entry) as unknown as StreamingHandler;
  return awslambda.streamifyResponse<IsthmusLambdaEvent, Promise<void>>(async (event, responseStream, context) => {
    if (isScheduledEvent(event)) {
      // Not an HTTP invocation: the summary is the plain response payload (no HTTP metadata prelude).
      responseStream.end(JSON.stringify(await runScheduled()));
      return;
    }
    // The client has the whole response once this returns; the flush after it adds no latency.
    await streamed(event, responseStream, context);
    await settle();
  }) as unknown as StreamingHandler;
}

// On real Lambda, start the gateway during the init phase (faster, and not billed at cold start):
// the first invocation then finds it ready. A failure here is retried by that invocation.
if (process.env.AWS_LAMBDA_FUNCTION_NAME && process.env.AWS_EXECUTION_ENV) void environment().catch(() => undefined);

// ---------------------------------------------------------------- test hooks

/** Test hook: closes this module's gateway (Redis connection, upstream pools) so the next invocation starts afresh from the environment. */
export async function __resetForTests(): Promise<void> {
  const e = current;
  current = null;
  const env = await e?.catch(() => null);
  await env?.release();
}

/** Test hook: the gateway of this execution environment (started if need be). */
export async function __gatewayForTests(): Promise<Gateway> {
  return (await environment()).gw;
}
