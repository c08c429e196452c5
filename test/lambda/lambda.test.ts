// The AWS Lambda runtime end to end, in Node: the exported handlers are invoked with Function URL
// (payload 2.0) and EventBridge events, against a real redis-server, real upstream HTTP servers and
// the real AWS SDK client talking to a local Secrets Manager fake. Nothing is mocked inside the
// gateway; only the Lambda runtime's `awslambda` global is a stand-in (test/helpers/lambda-events.ts).
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from "jose";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { RouteInput } from "../../src/config/schemas.ts";
import { RedisStore } from "../../src/store/redis.ts";
import type { MetricBatch } from "../../src/telemetry/metric-batch.ts";
import { bundleOf, jwkEntry, jwtSvid, makeKey, type TestKey } from "../helpers/identity.ts";
import { FUNCTION_URL_HOST, installAwsLambdaGlobal, lambdaContext, ResponseSink, scheduledEvent, setEnv, urlEvent, type UrlEventOptions } from "../helpers/lambda-events.ts";
import { uniquePrefix } from "../helpers/redis-server.ts";
import { startSecretsManagerFake, useFakeAwsCredentials, type SecretsManagerFake } from "../helpers/secrets-manager-fake.ts";
import { startUpstream, type Upstream, type UpstreamEcho } from "../helpers/upstream.ts";

// The module wraps its streaming handler at load time: the runtime global must exist before the import.
const restoreAwsLambda = installAwsLambdaGlobal();
const lambda = await import("../../src/runtime/lambda.ts");
afterAll(() => restoreAwsLambda());

interface Result {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
  isBase64Encoded: boolean;
}

const SERVICE = "checkout.shop.svc.cluster.local";
const CALLER = "spiffe://east.example/ns/shop/sa/web";
const SIGNING_SECRET = "isthmus/signing-key";
const ADMIN_SECRET = "isthmus/admin-token";
const ADMIN_TOKEN = "lambda-test-admin-token-0123456789";
const ISSUER = "https://isthmus.lambda.test";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function invoke(o: UrlEventOptions): Promise<Result> {
  return (await lambda.handler(urlEvent(o), lambdaContext())) as Result;
}

async function admin(method: string, p: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await invoke({
    method,
    path: `/_isthmus/v1${p}`,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.statusCode, body: res.body ? (JSON.parse(res.body) as Record<string, unknown>) : {} };
}

function splitRoute(east: number, west: number, extra: Partial<RouteInput> = {}): RouteInput {
  return {
    hostnames: [FUNCTION_URL_HOST],
    rules: [
      {
        name: "default",
        matches: [{ path: { type: "PathPrefix", value: "/checkout" } }],
        backendRefs: [
          { cluster: "east", service: SERVICE, port: 8080, weight: east },
          { cluster: "west", service: SERVICE, port: 8080, weight: west },
        ],
      },
    ],
    ...extra,
  };
}

/** Sum of a counter in a metric batch over the series whose labels include `where`. */
function counterSum(batch: MetricBatch, name: string, where: Record<string, string>): number {
  let sum = 0;
  for (const [key, info] of Object.entries(batch.series)) {
    if (info.name !== name || !Object.entries(where).every(([k, v]) => info.labels[k] === v)) continue;
    sum += batch.values[`${key}\t`] ?? 0;
  }
  return sum;
}

/** Sum of a counter in Prometheus text over the samples whose labels include `where`. */
function textSum(text: string, name: string, where: Record<string, string>): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+)\{(.*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels = Object.fromEntries([...(m[2] ?? "").matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(where).every(([k, v]) => labels[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

interface Suite {
  east: Upstream;
  west: Upstream;
  eastKey: TestKey;
  gatewayKey: TestKey;
  fake: SecretsManagerFake;
  store: RedisStore;
  prefix: string;
}

/**
 * A fresh execution environment against its own key prefix: Secrets Manager holds the gateway's
 * signing key and the admin token, and the environment variables are those the CDK stack sets.
 */
interface SuiteOptions {
  env?: Record<string, string | undefined>;
  /** Runs once the upstreams exist, before the environment starts; returns more environment variables. */
  beforeStart?: (s: Suite) => Promise<Record<string, string>>;
  /** Register the clusters east and west through the admin API (default true). */
  registerClusters?: boolean;
}

function suite(label: string, opts: SuiteOptions = {}): Suite {
  const s = {} as Suite;
  const restores: Array<() => void> = [];
  beforeAll(async () => {
    s.east = await startUpstream("east");
    s.west = await startUpstream("west");
    s.eastKey = await makeKey("ES256", "east-1");
    s.gatewayKey = await makeKey("ES256", "gateway-1");
    s.fake = await startSecretsManagerFake({ [SIGNING_SECRET]: JSON.stringify(s.gatewayKey.privateJwk), [ADMIN_SECRET]: ADMIN_TOKEN });
    s.prefix = uniquePrefix(label);
    restores.push(useFakeAwsCredentials());
    restores.push(
      setEnv({
        AWS_ENDPOINT_URL_SECRETS_MANAGER: s.fake.endpoint,
        ISTHMUS_REDIS_URL: inject("redisUrl"),
        ISTHMUS_REDIS_PREFIX: s.prefix,
        ISTHMUS_ADMIN_TOKEN_SECRET_ID: ADMIN_SECRET,
        ISTHMUS_SIGNING_KEY_SECRET_ID: SIGNING_SECRET,
        ISTHMUS_AUDIENCE: "isthmus",
        ISTHMUS_ISSUER: ISSUER,
        ISTHMUS_LOG_LEVEL: "error",
        ISTHMUS_CONFIG: undefined,
        ISTHMUS_ADMIN_TOKEN: undefined,
        ...opts.env,
        ...(opts.beforeStart ? await opts.beforeStart(s) : {}),
      }),
    );
    await lambda.__resetForTests();
    s.store = new RedisStore({ url: inject("redisUrl"), prefix: s.prefix });
    await s.store.connect();
    if (opts.registerClusters === false) return;
    for (const [name, up] of [["east", s.east], ["west", s.west]] as const) {
      const bundle = name === "east" ? { jwks: bundleOf(jwkEntry(s.eastKey)) } : { jwks: bundleOf() };
      const put = await admin("PUT", `/clusters/${name}`, { endpoint: up.url, trustDomain: `${name}.example`, bundle });
      expect(put.status, JSON.stringify(put.body)).toBe(201);
    }
  });
  afterAll(async () => {
    await lambda.__resetForTests();
    for (const r of restores.reverse()) r();
    await s.store?.close();
    await Promise.all([s.east?.close(), s.west?.close(), s.fake?.close()]);
  });
  return s;
}

describe("buffered handler (Function URL, InvokeMode BUFFERED)", () => {
  const s = suite("lambda-buffered", { env: { ISTHMUS_METRICS_FLUSH: "1500ms" } });
  let token: string;

  beforeAll(async () => {
    token = await jwtSvid(s.eastKey, CALLER);
    const put = await admin("PUT", "/routes/checkout", splitRoute(90, 10));
    expect(put.status, JSON.stringify(put.body)).toBe(201);
  });

  it("starts one gateway per execution environment and reuses it: secrets are read once, not per invocation", async () => {
    const gw = await lambda.__gatewayForTests();
    const reads = s.fake.getCalls;
    for (let i = 0; i < 5; i++) expect((await invoke({ path: "/_isthmus/healthz" })).statusCode).toBe(200);
    expect(await lambda.__gatewayForTests()).toBe(gw);
    expect(s.fake.getCalls).toBe(reads);
    // Both secrets were read through the real SDK client (signed requests) at cold start.
    expect(s.fake.callsFor(SIGNING_SECRET, "AWSCURRENT")).toBeGreaterThanOrEqual(1);
    expect(s.fake.callsFor(ADMIN_SECRET, "AWSCURRENT")).toBeGreaterThanOrEqual(1);
    expect(s.fake.unsigned).toBe(0);
    expect(gw.store.kind).toBe("redis");
  });

  it("splits 90/10 by the weights stored in Redis, within tolerance over 1,000 invocations", async () => {
    const stored = await s.store.getRoute("checkout");
    expect(stored?.spec.rules[0]?.backendRefs.map((b) => b.weight)).toEqual([90, 10]);
    s.east.resetStats();
    s.west.resetStats();
    const served: Record<string, number> = { east: 0, west: 0 };
    for (let i = 0; i < 1000; i++) {
      const res = await invoke({ path: "/checkout/cart", headers: { authorization: `Bearer ${token}` } });
      expect(res.statusCode).toBe(200);
      const by = res.headers["x-served-by"] as string;
      served[by] = (served[by] ?? 0) + 1;
    }
    // Binomial(1000, 0.1): sd 9.5; 60..140 is more than 4 sd either side.
    expect(served.west).toBeGreaterThanOrEqual(60);
    expect(served.west).toBeLessThanOrEqual(140);
    expect((served.east ?? 0) + (served.west ?? 0)).toBe(1000);
    expect(s.east.requests + s.west.requests).toBe(1000);
  });

  it("follows a weight change written by another instance within a second, with no store round trip per request", async () => {
    await sleep(1100);
    // This invocation is due a version check: the table is current afterwards.
    expect((await invoke({ path: "/checkout/a", headers: { authorization: `Bearer ${token}` } })).statusCode).toBe(200);
    // Another gateway instance moves all traffic to west, straight in Redis.
    const before = await s.store.getRoute("checkout");
    const put = await s.store.putRoute("checkout", { ...before!.spec, rules: [{ ...before!.spec.rules[0]!, backendRefs: before!.spec.rules[0]!.backendRefs.map((b) => ({ ...b, weight: b.cluster === "west" ? 100 : 0 })) }] }, {}, { actor: "other-instance" });
    // Within the second since the last check the table in memory still serves (no per-request lookup)...
    const stale = await invoke({ path: "/checkout/b", headers: { authorization: `Bearer ${token}` } });
    expect(stale.headers["x-isthmus-route-revision"]).toBe(String(before!.revision));
    // ...and once the second has passed, the next request sees the new revision.
    await sleep(1100);
    const fresh = await invoke({ path: "/checkout/c", headers: { authorization: `Bearer ${token}` } });
    expect(fresh.headers["x-isthmus-route-revision"]).toBe(String(put.route.revision));
    for (let i = 0; i < 20; i++) expect((await invoke({ path: "/checkout/d", headers: { authorization: `Bearer ${token}` } })).headers["x-served-by"]).toBe("west");
  });

  it("verifies the caller's JWT-SVID: a bad, foreign, expired or missing token gets 401 and reaches no upstream", async () => {
    const foreign = await makeKey("ES256", "east-1"); // same kid, different key: the signature cannot verify
    const tokens = {
      forged: await jwtSvid(foreign, CALLER),
      expired: await jwtSvid(s.eastKey, CALLER, { exp: Math.floor(Date.now() / 1000) - 120 }),
      wrongAudience: await jwtSvid(s.eastKey, CALLER, { aud: "someone-else" }),
      garbage: "not-a-jwt",
    };
    const seen = s.east.requests + s.west.requests;
    for (const [what, t] of Object.entries(tokens)) {
      const res = await invoke({ path: "/checkout/x", headers: { authorization: `Bearer ${t}` } });
      expect(res.statusCode, what).toBe(401);
      expect(res.headers["content-type"]).toBe("application/problem+json");
      expect(res.headers["www-authenticate"]).toContain('error="invalid_token"');
    }
    const missing = await invoke({ path: "/checkout/x" });
    expect(missing.statusCode).toBe(401);
    expect(s.east.requests + s.west.requests).toBe(seen);
  });

  it("forwards the body from the Request, the raw query and the caller's address, with a token signed by the key from Secrets Manager", async () => {
    const body = new Uint8Array(70_000).map((_, i) => (i * 31) % 256);
    const res = await invoke({ method: "POST", path: "/checkout/orders", query: "a=1&b=%20x&c", headers: { authorization: `Bearer ${token}`, "content-type": "application/octet-stream" }, body, sourceIp: "198.51.100.23" });
    expect(res.statusCode).toBe(200);
    const echo = JSON.parse(res.body) as UpstreamEcho;
    expect(echo.path).toBe("/checkout/orders?a=1&b=%20x&c");
    expect(echo.bodyBytes).toBe(body.length);
    expect(echo.bodySha256).toBe((await import("node:crypto")).createHash("sha256").update(body).digest("hex"));
    expect(echo.headers["x-forwarded-for"]).toBe("198.51.100.23");
    expect(echo.headers["x-forwarded-proto"]).toBe("https");
    expect(echo.headers.host).toBe(`${SERVICE}:8080`);
    // The caller's token was replaced by one the gateway signed with the key held in Secrets Manager.
    const forwarded = String(echo.headers.authorization).replace(/^Bearer /, "");
    expect(forwarded).not.toBe(token);
    expect(decodeProtectedHeader(forwarded).kid).toBe(s.gatewayKey.kid);
    const jwks = JSON.parse((await invoke({ path: "/.well-known/jwks.json" })).body) as JSONWebKeySet;
    const { payload } = await jwtVerify(forwarded, createLocalJWKSet(jwks), { issuer: ISSUER, audience: "west.example" });
    expect(payload.sub).toBe(CALLER);
  });

  it("records metrics per request, flushes them to Redis at most every ISTHMUS_METRICS_FLUSH, and serves them on GET /metrics", async () => {
    const put = await admin("PUT", "/routes/metered", {
      hostnames: [FUNCTION_URL_HOST],
      authorization: { unauthenticated: true },
      rules: [{ matches: [{ path: { type: "PathPrefix", value: "/metered" } }], backendRefs: [{ cluster: "east", service: SERVICE, port: 8080 }] }],
    });
    expect(put.status).toBe(201);
    const inRedis = async () => counterSum(await s.store.readMetrics(), "request_total", { route_name: "metered" });

    await sleep(1600);
    for (let i = 0; i < 10; i++) expect((await invoke({ path: "/metered/x" })).statusCode).toBe(200);
    // The first of those was due a flush; the other nine came within the interval and stay in memory.
    expect(await inRedis()).toBe(1);
    await sleep(1600);
    expect((await invoke({ path: "/metered/y" })).statusCode).toBe(200);
    // Flushed before the handler returned (Lambda freezes the environment right after).
    expect(await inRedis()).toBe(11);

    const res = await invoke({ path: "/_isthmus/v1/metrics", headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toContain("text/plain");
    expect(textSum(res.body, "request_total", { route_name: "metered", dst_target_cluster: "east" })).toBe(11);
    expect(textSum(res.body, "response_total", { route_name: "metered", classification: "success", status_code: "200" })).toBe(11);
    const checkout = textSum(res.body, "request_total", { route_name: "checkout" });
    expect(checkout).toBeGreaterThanOrEqual(1000);
  });

  it("answers the EventBridge schedule with one run of every background task", async () => {
    const summary = (await lambda.handler(scheduledEvent(), lambdaContext())) as { ok: boolean; tasks: Record<string, number>; instanceId: string };
    expect(summary.ok).toBe(true);
    expect(Object.keys(summary.tasks)).toEqual(["applyConfig", "refreshSecrets", "syncRouting", "probeClusters", "flushMetrics", "pushMetrics", "tickRollouts"]);
    expect(summary.instanceId).toBe((await lambda.__gatewayForTests()).instanceId);
  });
});

describe("streaming handler (Function URL, InvokeMode RESPONSE_STREAM)", () => {
  const s = suite("lambda-streaming", { env: { ISTHMUS_METRICS_FLUSH: "0" } });

  beforeAll(async () => {
    const put = await admin("PUT", "/routes/stream", {
      hostnames: [FUNCTION_URL_HOST],
      authorization: { identities: [CALLER] },
      rules: [{ matches: [{ path: { type: "PathPrefix", value: "/stream" } }], backendRefs: [{ cluster: "east", service: SERVICE, port: 8080 }] }],
    });
    expect(put.status).toBe(201);
  });

  it("streams the upstream's chunks to the response stream as they arrive", async () => {
    let release!: () => void;
    const hold = new Promise<void>((r) => (release = r));
    s.east.setBehaviour({ stream: { chunks: 4, chunkBytes: 8, holdAfterFirst: hold }, headers: { "x-custom": "yes" } });
    const finished = new Promise<void>((r) => s.east.events.once("finished", () => r()));
    let upstreamDone = false;
    void finished.then(() => (upstreamDone = true));

    const sink = new ResponseSink();
    const token = await jwtSvid(s.eastKey, CALLER);
    const done = lambda.streamingHandler(urlEvent({ path: "/stream/feed", headers: { authorization: `Bearer ${token}` } }), sink as never, lambdaContext());
    await sink.firstChunk();
    // The first chunk reached the caller while the upstream was still holding the rest back.
    expect(upstreamDone).toBe(false);
    expect(sink.metadata?.statusCode).toBe(200);
    expect(sink.metadata?.headers?.["x-custom"]).toBe("yes");
    expect(sink.metadata?.headers?.["x-isthmus-route-revision"]).toBe("1");
    release();
    await done;
    await finished;
    expect(sink.text).toBe("aaaaaaaabbbbbbbbccccccccdddddddd");
    expect(sink.writableEnded).toBe(true);
    s.east.setBehaviour({});
  });

  it("refuses a bad token with 401 problem+json on the stream, without calling the upstream", async () => {
    const seen = s.east.requests;
    const sink = new ResponseSink();
    const forged = await jwtSvid(await makeKey("ES256", "east-1"), CALLER);
    await lambda.streamingHandler(urlEvent({ path: "/stream/feed", headers: { authorization: `Bearer ${forged}` } }), sink as never, lambdaContext());
    expect(sink.metadata?.statusCode).toBe(401);
    expect(sink.metadata?.headers?.["content-type"]).toBe("application/problem+json");
    expect((JSON.parse(sink.text) as { title: string }).title).toBe("Unauthenticated");
    expect(s.east.requests).toBe(seen);
  });

  it("flushes metrics once the stream has ended (ISTHMUS_METRICS_FLUSH=0: after every invocation)", async () => {
    const token = await jwtSvid(s.eastKey, CALLER);
    const sink = new ResponseSink();
    await lambda.streamingHandler(urlEvent({ path: "/stream/once", headers: { authorization: `Bearer ${token}` } }), sink as never, lambdaContext());
    expect(sink.metadata?.statusCode).toBe(200);
    // Two requests reached the upstream in this suite (the 401 did not); both are in Redis already.
    expect(counterSum(await s.store.readMetrics(), "request_total", { route_name: "stream" })).toBe(2);
  });

  it("runs the schedule when EventBridge invokes the streaming handler, answering with the task summary", async () => {
    const scheduled = new ResponseSink();
    await lambda.streamingHandler(scheduledEvent(), scheduled as never, lambdaContext());
    const summary = JSON.parse(scheduled.text) as { ok: boolean; tasks: Record<string, number> };
    expect(summary.ok).toBe(true);
    expect(Object.keys(summary.tasks)).toContain("tickRollouts");
    expect(scheduled.metadata).toBeNull();
  });
});

describe("start failures (a signing key not filled in yet)", () => {
  const s = suite("lambda-start-failure", { registerClusters: false });

  it("answers 503 and fails scheduled runs while the secret is unusable, and recovers on the next invocation once it is put", async () => {
    await lambda.__resetForTests();
    s.fake.put(SIGNING_SECRET, '{"placeholder":"put the gateway signing key (a private JWK) here"}');
    const down = await invoke({ path: "/_isthmus/healthz" });
    expect(down.statusCode).toBe(503);
    expect(down.headers["content-type"]).toBe("application/problem+json");
    expect(down.body).not.toContain("placeholder");
    await expect(lambda.handler(scheduledEvent(), lambdaContext())).rejects.toThrow(/ISTHMUS_SIGNING_KEY_SECRET_ID/);
    // A failed start is not cached: once the key is in place the next invocation starts the gateway.
    s.fake.put(SIGNING_SECRET, JSON.stringify(s.gatewayKey.privateJwk));
    expect((await invoke({ path: "/_isthmus/healthz" })).statusCode).toBe(200);
    const jwks = JSON.parse((await invoke({ path: "/.well-known/jwks.json" })).body) as JSONWebKeySet;
    expect(jwks.keys.map((k) => k.kid)).toContain(s.gatewayKey.kid);
  });
});

describe("EventBridge schedule drives rollouts (ISTHMUS_CONFIG applied at cold start)", () => {
  let dir: string;
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  // The clusters and the route come from the ISTHMUS_CONFIG file, read once at cold start.
  const s = suite("lambda-rollout", {
    registerClusters: false,
    beforeStart: async (suite) => {
      dir = await mkdtemp(path.join(tmpdir(), "isthmus-lambda-"));
      const configPath = path.join(dir, "isthmus.yaml");
      await writeFile(
        configPath,
        [
          "clusters:",
          `  east: { endpoint: "${suite.east.url}", trustDomain: east.example }`,
          `  west: { endpoint: "${suite.west.url}", trustDomain: west.example }`,
          "routes:",
          "  checkout:",
          "    authorization: { unauthenticated: true }",
          "    rules:",
          "      - name: default",
          "        backendRefs:",
          `          - { cluster: east, service: ${SERVICE}, port: 8080, weight: 100 }`,
          "",
        ].join("\n"),
      );
      return { ISTHMUS_CONFIG: configPath };
    },
  });

  it("advances a canary rollout step by step on scheduled events only, to Succeeded", async () => {
    // A route without hostnames catches every Host: all traffic to the Function URL.
    const first = await invoke({ path: "/anything" });
    expect(first.statusCode).toBe(200);
    expect(first.headers["x-served-by"]).toBe("east");

    const start = await admin("POST", "/rollouts", {
      name: "checkout-v2",
      route: "checkout",
      rule: "default",
      stable: { cluster: "east", service: SERVICE, port: 8080 },
      canary: { cluster: "west", service: SERVICE, port: 8080 },
      steps: [{ setWeight: 50 }, { setWeight: 100 }],
      analysis: { interval: "200ms", threshold: 1, minRequests: 0, onNoData: "pass" },
    });
    expect(start.status, JSON.stringify(start.body)).toBe(201);

    // Ordinary invocations never move a rollout: only the schedule does.
    for (let i = 0; i < 5; i++) await invoke({ path: "/anything" });
    await sleep(300);
    for (let i = 0; i < 5; i++) await invoke({ path: "/anything" });
    const idle = await admin("GET", "/rollouts/checkout-v2");
    expect((idle.body.status as { phase: string; canaryWeight: number }).canaryWeight).toBe(0);

    const phases: string[] = [];
    let phase = "Progressing";
    for (let i = 0; i < 40 && phase !== "Succeeded"; i++) {
      await lambda.handler(scheduledEvent(), lambdaContext());
      const r = await admin("GET", "/rollouts/checkout-v2");
      const st = r.body.status as { phase: string; canaryWeight: number };
      phase = st.phase;
      phases.push(`${st.phase}:${st.canaryWeight}`);
      if (phase === "Failed") break;
      await sleep(250);
    }
    expect(phase, phases.join(" ")).toBe("Succeeded");
    expect(phases).toContain("Progressing:50");

    const events = await admin("GET", "/rollouts/checkout-v2/events");
    const types = (events.body.items as Array<{ type: string }>).map((e) => e.type);
    expect(types).toContain("WeightSet");
    expect(types).toContain("AnalysisPassed");
    expect(types.at(-1)).toBe("Succeeded");

    // The route in Redis now sends everything to the canary, and so does this environment at once.
    const route = await s.store.getRoute("checkout");
    expect(route?.spec.rules[0]?.backendRefs.map((b) => `${b.cluster}:${b.weight}`)).toEqual(["east:0", "west:100"]);
    for (let i = 0; i < 10; i++) expect((await invoke({ path: "/anything" })).headers["x-served-by"]).toBe("west");
  });
});
