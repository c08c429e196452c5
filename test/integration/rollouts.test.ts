// Canary rollouts end to end (SPEC.md "Rollout", docs/rollouts.md): a real gateway on the shared test
// Redis, real upstreams standing for the stable cluster "east" and a canary in another cluster "west",
// steady background traffic, and the rollout driven by the gateway's own controller (or by explicit
// controller.tick() calls where a test needs the steps under its control). Every wait is for a state,
// polled with a deadline; the only timers are the load's pacing and one injected slow table reload.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Agent, request } from "undici";
import { afterAll, afterEach, describe, expect, inject, it } from "vitest";
import type { RolloutView } from "../../src/admin/rollouts.ts";
import type { Route, RouteInput } from "../../src/config/schemas.ts";
import { RolloutController } from "../../src/rollout/controller.ts";
import type { RolloutEvent } from "../../src/rollout/schema.ts";
import { startNodeGateway, type RunningGateway } from "../../src/runtime/node.ts";
import type { RevisionRecord } from "../../src/store/types.ts";
import { silentLogger } from "../../src/util/log.ts";
import { buildConfig, Closer } from "../helpers/gateway.ts";
import { uniquePrefix } from "../helpers/redis-server.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

const TOKEN = "rollouts-test-admin-token";
const STABLE = { cluster: "east", service: "checkout.shop.svc.cluster.local", port: 8080 };
const CANARY = { cluster: "west", service: "checkout-v2.shop.svc.cluster.local", port: 8080 };
const TICK_MS = 50;

const closer = new Closer();
const client = new Agent({ connections: 128, keepAliveTimeout: 10_000 });
afterEach(async () => {
  await closer.closeAll();
});
afterAll(async () => {
  await client.close();
});

// ------------------------------------------------------------------ environment

interface Env {
  gw: RunningGateway;
  /** Further gateways on the same Redis prefix, when asked for. */
  others: RunningGateway[];
  east: Upstream;
  west: Upstream;
  prefix: string;
}

/** A route "NAME" for host "NAME.shop" whose rule "default" has only the stable backend. */
function routeInput(name: string, rule: Record<string, unknown> = {}): RouteInput {
  return {
    hostnames: [`${name}.shop`],
    authorization: { unauthenticated: true },
    rules: [{ name: "default", backendRefs: [{ ...STABLE, weight: 100 }], timeouts: { request: "3s" }, ...rule }],
  } as RouteInput;
}

async function setup(opts: { routes?: Record<string, Record<string, unknown>>; tickMs?: number; gateways?: number; prefix?: string } = {}): Promise<Env> {
  const east = closer.add(await startUpstream("east"));
  const west = closer.add(await startUpstream("west"));
  const prefix = opts.prefix ?? uniquePrefix("rollouts");
  const routes = Object.fromEntries(Object.entries(opts.routes ?? { checkout: {} }).map(([n, r]) => [n, routeInput(n, r)]));
  const config = buildConfig({ east: east.url, west: west.url }, routes);
  const start = () =>
    startNodeGateway({
      port: 0,
      hostname: "127.0.0.1",
      redisUrl: inject("redisUrl"),
      redisPrefix: prefix,
      adminToken: TOKEN,
      config,
      log: silentLogger,
      checkIntervalMs: 1_000,
      metricsFlushMs: 100,
      probeIntervalMs: 60_000,
      rolloutTickMs: opts.tickMs ?? TICK_MS,
    });
  const gw = closer.add(await start());
  const others: RunningGateway[] = [];
  for (let i = 1; i < (opts.gateways ?? 1); i++) others.push(closer.add(await start()));
  return { gw, others, east, west, prefix };
}

interface AdminAnswer<T> {
  status: number;
  body: T;
}

interface ProblemBody {
  status: number;
  detail?: string;
  errors?: Array<{ path: string; message: string }>;
  phase?: string;
}

async function admin<T = unknown>(gw: RunningGateway, method: "GET" | "POST" | "PUT", path: string, body?: unknown): Promise<AdminAnswer<T>> {
  const res = await request(`${gw.url}/_isthmus/v1${path}`, {
    dispatcher: client,
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, body: (text ? JSON.parse(text) : null) as T };
}

const getRollout = async (gw: RunningGateway, name: string) => (await admin<RolloutView>(gw, "GET", `/rollouts/${name}`)).body;
const events = async (gw: RunningGateway, name: string) => (await admin<{ items: RolloutEvent[] }>(gw, "GET", `/rollouts/${name}/events`)).body.items;
const revisions = async (gw: RunningGateway, route: string) => (await admin<{ items: RevisionRecord[] }>(gw, "GET", `/routes/${route}/revisions`)).body.items;
const verb = (gw: RunningGateway, name: string, v: string, body?: unknown) => admin<RolloutView & ProblemBody>(gw, "POST", `/rollouts/${name}/${v}`, body);

/** A rollout document: stable east, canary west, on route NAME's rule "default". */
function rolloutDoc(name: string, route: string, extra: Record<string, unknown>): Record<string, unknown> {
  return { name, route, rule: "default", stable: STABLE, canary: CANARY, ...extra };
}

async function startRollout(gw: RunningGateway, doc: Record<string, unknown>): Promise<RolloutView> {
  const res = await admin<RolloutView & ProblemBody>(gw, "POST", "/rollouts", doc);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

/** Polls until `probe` returns something other than undefined/false, or fails with `what` at the deadline. */
async function until<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 5_000, describeLast?: () => string, everyMs = 20): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${describeLast ? `; last seen: ${describeLast()}` : ""}`);
    await new Promise((r) => (everyMs > 0 ? setTimeout(r, everyMs) : setImmediate(r)));
  }
}

/** Waits for the rollout to reach a state; the error names the state it was last seen in. */
async function waitRollout(gw: RunningGateway, name: string, what: string, pred: (r: RolloutView) => boolean, timeoutMs = 5_000, everyMs = 20): Promise<RolloutView> {
  let last: RolloutView | undefined;
  return until(
    `rollout ${name}: ${what}`,
    async () => {
      last = await getRollout(gw, name);
      return pred(last) ? last : undefined;
    },
    timeoutMs,
    () => (last ? `${last.status.phase} step ${last.status.step} canary ${last.status.canaryWeight}: ${last.status.message}` : "nothing"),
    everyMs,
  );
}

interface Served {
  status: number;
  cluster: string | undefined;
}

/** One data-plane request through the gateway (undici, so the Host header can be set). */
async function send(gw: RunningGateway, host: string, headers: Record<string, string> = {}): Promise<Served> {
  const res = await request(`${gw.url}/`, { dispatcher: client, headers: { ...headers, host } });
  const text = await res.body.text();
  let cluster: string | undefined;
  try {
    cluster = (JSON.parse(text) as { cluster?: string }).cluster;
  } catch {
    cluster = undefined;
  }
  return { status: res.statusCode, cluster };
}

/** Sends `n` requests with at most `concurrency` in flight; `headersOf(i)` gives request i's headers. */
async function sendMany(gw: RunningGateway, host: string, n: number, headersOf: (i: number) => Record<string, string> = () => ({}), concurrency = 16): Promise<Served[]> {
  const out = new Array<Served>(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, n) }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await send(gw, host, headersOf(i));
      }
    }),
  );
  return out;
}

/** Steady background traffic with bounded concurrency, until stop() (which waits for in-flight requests). */
function traffic(gws: RunningGateway[], host: string, concurrency = 6): { stop(): Promise<void>; sent(): number } {
  let stopped = false;
  let sent = 0;
  const workers = Array.from({ length: concurrency }, async (_, w) => {
    for (let i = 0; !stopped; i++) {
      const gw = gws[(w + i) % gws.length] as RunningGateway;
      try {
        const res = await request(`${gw.url}/`, { dispatcher: client, headers: { host } });
        await res.body.dump();
        sent++;
      } catch {
        // a gateway closing under the load: keep going until stopped
      }
      // Pace each worker a little so the controller's ticks are not starved (a rate, not a wait for a state).
      await new Promise((r) => setTimeout(r, 2));
    }
  });
  const done = Promise.all(workers);
  closer.add({
    close: async () => {
      stopped = true;
      await done;
    },
  });
  return {
    async stop() {
      stopped = true;
      await done;
    },
    sent: () => sent,
  };
}

/** Upstream behaviour: request n (from 0) answers 500 when `fails(n)`, else 200; returns an undo. */
function failWhen(up: Upstream, fails: (n: number) => boolean): () => void {
  let n = 0;
  // The helper reads its behaviour when a request arrives, after emitting "request": set the next one's.
  up.setBehaviour({ status: fails(0) ? 500 : 200 });
  const onRequest = () => {
    n++;
    up.setBehaviour({ status: fails(n) ? 500 : 200 });
  };
  up.events.on("request", onRequest);
  return () => {
    up.events.off("request", onRequest);
    up.setBehaviour({});
  };
}
/** 20% 5xx: every fifth request. */
const oneInFive = (n: number) => n % 5 === 4;
/** 80% 5xx, never more than four in a row (so the circuit breaker, at 7, never ejects the canary). */
const fourInFive = (n: number) => n % 5 !== 4;

function weightsOf(spec: Route | undefined): { east: number; west: number } {
  const refs = spec?.rules[0]?.backendRefs ?? [];
  return { east: refs.find((b) => b.cluster === "east")?.weight ?? 0, west: refs.find((b) => b.cluster === "west")?.weight ?? 0 };
}

const byRollout = (name: string) => (r: RevisionRecord) => r.actor === `rollout:${name}`;
const count = (xs: Served[], cluster: string) => xs.filter((x) => x.cluster === cluster).length;

const HEALTHY_ANALYSIS = { interval: "300ms", threshold: 2, minRequests: 5, successRate: { min: 0.95 }, latencyP99Ms: { max: 2_000 } };

// ------------------------------------------------------------------ the happy path

describe("a healthy canary", () => {
  it("ramps 5 -> 25 -> 100 across clusters and ends Succeeded, with one route revision per step", async () => {
    const { gw, west } = await setup();
    const load = traffic([gw], "checkout.shop");
    const created = await startRollout(gw, rolloutDoc("checkout-v2", "checkout", { steps: [{ setWeight: 5 }, { setWeight: 25 }, { setWeight: 100 }], analysis: HEALTHY_ANALYSIS }));
    expect(created.status).toMatchObject({ phase: "Progressing", step: 0, weights: { stable: 100, canary: 0 } });

    // Seen on its way: the 25 step, waiting for its analysis.
    const mid = await waitRollout(gw, "checkout-v2", "at weight 25", (r) => r.status.canaryWeight === 25, 8_000);
    expect(mid.status).toMatchObject({ phase: "Progressing", step: 1, weights: { stable: 75, canary: 25 } });
    const done = await waitRollout(gw, "checkout-v2", "Succeeded", (r) => r.status.phase !== "Progressing", 8_000);
    await load.stop();
    expect(west.requests).toBeGreaterThan(0);

    expect(done.status).toMatchObject({ phase: "Succeeded", step: 3, canaryWeight: 100, weights: { stable: 0, canary: 100 }, failedChecks: 0 });
    const a = done.status.lastAnalysis;
    expect(a?.verdict).toBe("pass");
    expect(a?.canary.requests).toBeGreaterThanOrEqual(5);
    expect(a?.canary.successRate).toBe(1);
    expect(a?.canary.failures).toBe(0);
    expect(typeof a?.canary.latencyP99Ms).toBe("number");
    expect(a?.stable).toEqual(expect.objectContaining({ requests: expect.any(Number), failures: 0 }));
    expect(Date.parse(a?.at ?? "")).not.toBeNaN();

    // Route history: exactly the three weight changes, each written by the rollout.
    const revs = await revisions(gw, "checkout");
    const mine = revs.filter(byRollout("checkout-v2")).reverse();
    expect(mine.map((r) => weightsOf(r.spec))).toEqual([
      { east: 95, west: 5 },
      { east: 75, west: 25 },
      { east: 0, west: 100 },
    ]);
    const route = (await admin<Route & { revision: number }>(gw, "GET", "/routes/checkout")).body;
    expect(weightsOf(route)).toEqual({ east: 0, west: 100 });
    expect(route.revision).toBe(mine[2]?.revision);
    // The canary was added to the rule by the rollout, with its own service.
    expect(route.rules[0]?.backendRefs).toContainEqual({ ...CANARY, weight: 100 });
    expect(done.status.routeRevision).toBe(route.revision);

    // Audit trail: Created, one WeightSet per step (each with its revision), analyses, Succeeded.
    const evs = await events(gw, "checkout-v2");
    expect(evs[0]).toMatchObject({ type: "Created", actor: "admin-token", phase: "Progressing", step: 0 });
    const sets = evs.filter((e) => e.type === "WeightSet");
    expect(sets.map((e) => [e.step, e.canaryWeight, e.routeRevision])).toEqual(mine.map((r, i) => [i, [5, 25, 100][i], r.revision]));
    expect(sets.every((e) => e.actor === "controller")).toBe(true);
    expect(evs.filter((e) => e.type === "AnalysisPassed").length).toBeGreaterThanOrEqual(3);
    expect(evs.filter((e) => e.type === "AnalysisFailed")).toEqual([]);
    const last = evs.at(-1);
    expect(last).toMatchObject({ type: "Succeeded", phase: "Succeeded", canaryWeight: 100, routeRevision: route.revision });

    // And the data plane follows: everything goes to the canary's cluster now.
    const after = await sendMany(gw, "checkout.shop", 50);
    expect(count(after, "west")).toBe(50);
  });
});

describe("analysis cadence", () => {
  it("a weight reached by promote is analysed for a full interval at that weight before the next step", async () => {
    const { gw } = await setup();
    const load = traffic([gw], "checkout.shop", 4);
    await startRollout(
      gw,
      rolloutDoc("checkout-v2", "checkout", {
        steps: [{ setWeight: 10 }, { pause: { duration: "1h" } }, { setWeight: 50 }, { setWeight: 100 }],
        analysis: { interval: "1s", threshold: 2, minRequests: 5, successRate: { min: 0.95 } },
      }),
    );
    await waitRollout(gw, "checkout-v2", "in the timed pause", (r) => r.status.step === 1 && r.status.stepApplied, 5_000);
    // Promote shortly before the next analysis is due (the rollout keeps its analysis cadence in a timed pause).
    await until(
      "200-350 ms before the next analysis",
      async () => {
        const due = Date.parse((await getRollout(gw, "checkout-v2")).status.nextAnalysisAt ?? "") - Date.now();
        return due > 200 && due < 350;
      },
      3_000,
      undefined,
      5,
    );
    expect((await verb(gw, "checkout-v2", "promote")).status).toBe(200);
    await waitRollout(gw, "checkout-v2", "Succeeded", (r) => r.status.phase !== "Progressing", 6_000);
    await load.stop();
    const sets = (await events(gw, "checkout-v2")).filter((e) => e.type === "WeightSet");
    expect(sets.map((e) => e.canaryWeight)).toEqual([10, 50, 100]);
    const at50 = Date.parse(sets[1]?.at ?? "");
    const at100 = Date.parse(sets[2]?.at ?? "");
    expect(at100 - at50).toBeGreaterThanOrEqual(950);
  });
});

// ------------------------------------------------------------------ failing canaries

/** Once `revision` of the route is live on `gw`: 200 more requests, none of which reaches the canary. */
async function expectNoMoreCanaryTraffic(gw: RunningGateway, west: Upstream, host: string, revision: number): Promise<void> {
  const route = host.replace(/\.shop$/, "");
  await until(`revision ${revision} of ${route} live`, () => (gw.routing.current.routes.get(route)?.revision ?? 0) >= revision, 2_000);
  const before = west.requests;
  const res = await sendMany(gw, host, 200);
  expect(res.every((r) => r.status === 200 && r.cluster === "east")).toBe(true);
  expect(west.requests).toBe(before);
}

describe("a canary answering 20% 5xx", () => {
  it("fails by analysis within interval x threshold, canary back to 0, and then takes no traffic", async () => {
    const { gw, west } = await setup();
    failWhen(west, oneInFive);
    const load = traffic([gw], "checkout.shop");
    await startRollout(gw, rolloutDoc("checkout-v2", "checkout", { steps: [{ setWeight: 20 }, { setWeight: 50 }, { setWeight: 100 }], analysis: { interval: "300ms", threshold: 2, minRequests: 10, successRate: { min: 0.95 } } }));
    const failed = await waitRollout(gw, "checkout-v2", "Failed", (r) => r.status.phase !== "Progressing", 8_000);
    // Whatever was in flight finishes; once the Failed revision is live nothing more reaches the canary.
    await load.stop();
    await expectNoMoreCanaryTraffic(gw, west, "checkout.shop", failed.status.routeRevision);

    expect(failed.status).toMatchObject({ phase: "Failed", canaryWeight: 0, weights: { stable: 100, canary: 0 }, failedChecks: 2, step: 0 });
    expect(failed.status.message).toMatch(/analysis failed 2 times/);
    expect(failed.status.lastAnalysis?.verdict).toBe("fail");
    expect(failed.status.lastAnalysis?.reasons.join(" ")).toMatch(/success rate .* below 0.95/);
    expect(failed.status.lastAnalysis?.canary.successRate).toBeLessThan(0.95);

    const evs = await events(gw, "checkout-v2");
    const set = evs.find((e) => e.type === "WeightSet");
    const fail = evs.find((e) => e.type === "Failed");
    expect(evs.filter((e) => e.type === "WeightSet").map((e) => e.canaryWeight)).toEqual([20]);
    expect(evs.filter((e) => e.type === "AnalysisFailed").length).toBe(2);
    // interval x threshold after the weight went up, give or take the controller's ticks.
    const took = Date.parse(fail?.at ?? "") - Date.parse(set?.at ?? "");
    expect(took).toBeGreaterThanOrEqual(2 * 300 - 5);
    expect(took).toBeLessThanOrEqual(2 * 300 + 6 * TICK_MS + 300);

    const revs = (await revisions(gw, "checkout")).filter(byRollout("checkout-v2"));
    expect(revs.map((r) => weightsOf(r.spec))).toEqual([
      { east: 100, west: 0 },
      { east: 80, west: 20 },
    ]);
    expect(fail?.routeRevision).toBe(revs[0]?.revision);
    expect(failed.status.routeRevision).toBe(revs[0]?.revision);
  });

  it("fails at once by fast abort, long before the first analysis", async () => {
    const { gw, west } = await setup();
    failWhen(west, oneInFive);
    const load = traffic([gw], "checkout.shop");
    await startRollout(
      gw,
      rolloutDoc("checkout-v2", "checkout", {
        steps: [{ setWeight: 20 }, { setWeight: 100 }],
        analysis: { interval: "10s", threshold: 3, minRequests: 10, successRate: { min: 0.95 } },
        fastAbort: { errorRate: 0.1, window: "10s", minRequests: 20 },
      }),
    );
    const failed = await waitRollout(gw, "checkout-v2", "Failed", (r) => r.status.phase !== "Progressing", 5_000);
    await load.stop();
    await expectNoMoreCanaryTraffic(gw, west, "checkout.shop", failed.status.routeRevision);

    expect(failed.status).toMatchObject({ phase: "Failed", canaryWeight: 0, weights: { stable: 100, canary: 0 }, failedChecks: 0 });
    expect(failed.status.message).toMatch(/^fast abort: canary error rate 0\.\d+ over \d+ requests is at or above 0.1/);
    const evs = await events(gw, "checkout-v2");
    expect(evs.filter((e) => e.type.startsWith("Analysis"))).toEqual([]);
    const took = Date.parse(evs.find((e) => e.type === "Failed")?.at ?? "") - Date.parse(evs.find((e) => e.type === "WeightSet")?.at ?? "");
    expect(took).toBeLessThan(3_000);
  });

  it("the moment Failed is visible through the admin API, the gateway that answered routes nothing more to the canary", async () => {
    const { gw, west } = await setup();
    failWhen(west, oneInFive);
    const load = traffic([gw], "checkout.shop");
    await startRollout(gw, rolloutDoc("checkout-v2", "checkout", { steps: [{ setWeight: 20 }, { pause: { duration: "1h" } }, { setWeight: 100 }], fastAbort: { errorRate: 0.1, minRequests: 20 } }));
    await waitRollout(gw, "checkout-v2", "at weight 20", (r) => r.status.canaryWeight === 20);
    // Fault injection: this gateway's table reloads take 150 ms (a large table, a slow store), which
    // makes the window below deterministic; without it the window is 7-22 ms here and shows only sometimes.
    const snapshot = gw.store.snapshot.bind(gw.store);
    gw.store.snapshot = async () => {
      const snap = await snapshot();
      await new Promise((r) => setTimeout(r, 150));
      return snap;
    };
    // Polled back to back, and requests sent the moment Failed shows (the load's in-flight requests
    // are not counted: each of these requests says which cluster answered it).
    const failed = await waitRollout(gw, "checkout-v2", "Failed", (r) => r.status.phase !== "Progressing", 5_000, 0);
    const right = await sendMany(gw, "checkout.shop", 50);
    await load.stop();
    expect(failed.status).toMatchObject({ phase: "Failed", canaryWeight: 0 });
    expect(right.filter((r) => r.cluster !== "east")).toEqual([]);
  });

  it("fast abort judges the canary over fastAbort.window, not over the whole analysis interval", async () => {
    const { gw, west } = await setup();
    const load = traffic([gw], "checkout.shop");
    await startRollout(
      gw,
      rolloutDoc("checkout-v2", "checkout", {
        steps: [{ setWeight: 30 }, { setWeight: 100 }],
        analysis: { interval: "20s", threshold: 2, minRequests: 10, successRate: { min: 0.95 } },
        fastAbort: { errorRate: 0.7, window: "300ms", minRequests: 10 },
      }),
    );
    // Healthy for a while at 30%: successes pile up in the (20 s) analysis window...
    await waitRollout(gw, "checkout-v2", "at weight 30", (r) => r.status.canaryWeight === 30);
    await until("150 canary requests", () => west.requests >= 150, 10_000);
    // ...then the canary breaks: 80% 5xx, well above the 0.7 bound in every 300 ms window.
    failWhen(west, fourInFive);
    const broke = performance.now();
    const failed = await waitRollout(gw, "checkout-v2", "Failed by fast abort", (r) => r.status.phase === "Failed", 2_500);
    await load.stop();
    expect(failed.status.message).toMatch(/fast abort/);
    expect(performance.now() - broke).toBeLessThan(2_500);
  });

  it("a canary that breaks while the rollout is paused on a `pause: {}` step still fails and goes back to 0", async () => {
    const { gw, west } = await setup();
    const load = traffic([gw], "checkout.shop");
    await startRollout(
      gw,
      rolloutDoc("checkout-v2", "checkout", {
        steps: [{ setWeight: 20 }, { pause: {} }, { setWeight: 100 }],
        analysis: { interval: "300ms", threshold: 2, minRequests: 10, successRate: { min: 0.95 } },
        fastAbort: { errorRate: 0.5, window: "1s", minRequests: 10 },
      }),
    );
    await waitRollout(gw, "checkout-v2", "Paused at 20", (r) => r.status.phase === "Paused" && r.status.canaryWeight === 20, 5_000);
    failWhen(west, fourInFive);
    const failed = await waitRollout(gw, "checkout-v2", "Failed while paused", (r) => r.status.phase === "Failed", 2_500);
    await load.stop();
    expect(failed.status).toMatchObject({ canaryWeight: 0, weights: { stable: 100, canary: 0 } });
  });
});

// ------------------------------------------------------------------ no data

describe("traffic below minRequests", () => {
  it("holds with onNoData hold (and says so), passes with pass, fails with fail", async () => {
    const { gw } = await setup({ routes: { hold: {}, pass: {}, fail: {} } });
    const analysis = { interval: "300ms", threshold: 2, minRequests: 50, successRate: { min: 0.95 } };
    const steps = [{ setWeight: 10 }, { setWeight: 100 }];
    await startRollout(gw, rolloutDoc("ro-hold", "hold", { steps, analysis: { ...analysis, onNoData: "hold" } }));
    await startRollout(gw, rolloutDoc("ro-pass", "pass", { steps, analysis: { ...analysis, onNoData: "pass" } }));
    await startRollout(gw, rolloutDoc("ro-fail", "fail", { steps, analysis: { ...analysis, onNoData: "fail" } }));
    // A trickle: a handful of requests on the held route, far below minRequests.
    await sendMany(gw, "hold.shop", 10);

    const passed = await waitRollout(gw, "ro-pass", "Succeeded", (r) => r.status.phase !== "Progressing", 5_000);
    expect(passed.status).toMatchObject({ phase: "Succeeded", weights: { stable: 0, canary: 100 } });
    expect(passed.status.lastAnalysis?.verdict).toBe("nodata");

    const failed = await waitRollout(gw, "ro-fail", "Failed", (r) => r.status.phase !== "Progressing", 5_000);
    expect(failed.status).toMatchObject({ phase: "Failed", canaryWeight: 0, failedChecks: 2 });
    expect(failed.status.lastAnalysis?.verdict).toBe("nodata");
    expect(weightsOf((await admin<Route>(gw, "GET", "/routes/fail")).body)).toEqual({ east: 100, west: 0 });

    await until("two AnalysisHold events", async () => (await events(gw, "ro-hold")).filter((e) => e.type === "AnalysisHold").length >= 2, 5_000);
    const held = await getRollout(gw, "ro-hold");
    expect(held.status).toMatchObject({ phase: "Progressing", step: 0, canaryWeight: 10, failedChecks: 0 });
    expect(held.status.lastAnalysis?.verdict).toBe("nodata");
    expect(held.status.lastAnalysis?.canary.requests).toBeLessThan(50);
    expect(held.status.message).toMatch(/holding: .*fewer than minRequests 50/);
    const evs = await events(gw, "ro-hold");
    expect(evs.find((e) => e.type === "AnalysisHold")?.message).toMatch(/minRequests 50/);
    expect(evs.filter((e) => e.type === "WeightSet").map((e) => e.canaryWeight)).toEqual([10]);
    expect(evs.some((e) => e.type === "AnalysisFailed" || e.type === "Failed")).toBe(false);
  });
});

// ------------------------------------------------------------------ two controllers

describe("two controllers on one Redis", () => {
  it("take each step once: two gateways ticking, plus concurrent direct ticks from both", async () => {
    const { gw, others } = await setup({ gateways: 2 });
    const b = others[0] as RunningGateway;
    const load = traffic([gw, b], "checkout.shop");
    await startRollout(b, rolloutDoc("checkout-v2", "checkout", { steps: [{ setWeight: 5 }, { setWeight: 25 }, { setWeight: 100 }], analysis: HEALTHY_ANALYSIS }));
    let stop = false;
    const hammer = (async () => {
      while (!stop) await Promise.all([gw.controller.tick(), b.controller.tick(), gw.controller.tick(), b.controller.tick()]);
    })();
    try {
      await waitRollout(gw, "checkout-v2", "Succeeded", (r) => r.status.phase !== "Progressing", 10_000);
    } finally {
      stop = true;
      await hammer;
      await load.stop();
    }
    const final = await getRollout(b, "checkout-v2");
    expect(final.status.phase).toBe("Succeeded");
    const evs = await events(gw, "checkout-v2");
    expect(evs.filter((e) => e.type === "WeightSet").map((e) => [e.step, e.canaryWeight])).toEqual([
      [0, 5],
      [1, 25],
      [2, 100],
    ]);
    expect(evs.filter((e) => e.type === "Succeeded").length).toBe(1);
    expect(evs.filter((e) => e.type === "Created").length).toBe(1);
    const revs = await revisions(b, "checkout");
    expect(revs.filter(byRollout("checkout-v2")).reverse().map((r) => weightsOf(r.spec).west)).toEqual([5, 25, 100]);
    // Only the config's create and the three steps: nothing was written twice.
    expect(revs.length).toBe(4);
    // Both gateways serve the final table.
    expect(count(await sendMany(b, "checkout.shop", 20), "west")).toBe(20);
    expect(count(await sendMany(gw, "checkout.shop", 20), "west")).toBe(20);
  });

  it("without the lease (same instance id on both), the compare-and-set alone keeps each step single", async () => {
    const { gw, others } = await setup({ gateways: 2, tickMs: 0 });
    const b = others[0] as RunningGateway;
    const controllerOn = (g: RunningGateway) =>
      new RolloutController({
        store: g.store,
        totals: async () => {
          await g.flusher.flush();
          return g.store.readMetrics();
        },
        fetch: (u, i) => fetch(u, i),
        instanceId: "same-instance",
        afterRouteWrite: () => g.routing.reload(),
      });
    const c1 = controllerOn(gw);
    const c2 = controllerOn(b);
    await startRollout(gw, rolloutDoc("checkout-v2", "checkout", { steps: [{ setWeight: 10 }, { pause: { duration: "1ms" } }, { setWeight: 40 }, { setWeight: 70 }, { setWeight: 100 }] }));
    let rounds = 0;
    await until(
      "Succeeded",
      async () => {
        rounds++;
        await Promise.all([c1.tick(), c2.tick(), c1.tick(), c2.tick()]);
        return (await getRollout(gw, "checkout-v2")).status.phase === "Succeeded";
      },
      10_000,
    );
    expect(rounds).toBeGreaterThanOrEqual(5);
    const evs = await events(gw, "checkout-v2");
    expect(evs.filter((e) => e.type === "WeightSet").map((e) => e.canaryWeight)).toEqual([10, 40, 70, 100]);
    expect(evs.filter((e) => e.type === "PauseStarted").length).toBe(1);
    expect(evs.filter((e) => e.type === "Succeeded").length).toBe(1);
    const revs = (await revisions(gw, "checkout")).filter(byRollout("checkout-v2")).reverse();
    expect(revs.map((r) => weightsOf(r.spec).west)).toEqual([10, 40, 70, 100]);
    // Each revision is the one its WeightSet event names.
    expect(evs.filter((e) => e.type === "WeightSet").map((e) => e.routeRevision)).toEqual(revs.map((r) => r.revision));
  });
});

// ------------------------------------------------------------------ verbs

describe("verbs", () => {
  it("abort during a pause step, retry from step 0, promote full, and the conflicts", async () => {
    // The controller ticks only when the test says so: each transition is under its control.
    const { gw } = await setup({ tickMs: 0 });
    const tick = () => gw.controller.tick();
    await startRollout(gw, rolloutDoc("checkout-v2", "checkout", { steps: [{ setWeight: 10 }, { pause: { duration: "1h" } }, { setWeight: 100 }] }));
    expect((await verb(gw, "checkout-v2", "retry")).status).toBe(409); // retry while Progressing
    const conflict = await verb(gw, "checkout-v2", "resume"); // resume when not paused
    expect(conflict.status).toBe(409);
    expect(conflict.body).toMatchObject({ status: 409, phase: "Progressing" });
    expect(conflict.body.detail).toMatch(/cannot resume a rollout that is Progressing/);

    await tick(); // weight 10
    await tick(); // on to the pause step
    await tick(); // the pause starts
    const paused = await getRollout(gw, "checkout-v2");
    expect(paused.status).toMatchObject({ phase: "Progressing", step: 1, canaryWeight: 10 });
    expect(paused.status.message).toMatch(/pause for 1h/);
    expect(weightsOf((await admin<Route>(gw, "GET", "/routes/checkout")).body)).toEqual({ east: 90, west: 10 });

    // Abort: canary to 0 at once, in a route revision of its own.
    const aborted = await verb(gw, "checkout-v2", "abort");
    expect(aborted.status).toBe(200);
    expect(aborted.body.status).toMatchObject({ phase: "Aborted", canaryWeight: 0, weights: { stable: 100, canary: 0 } });
    const route = (await admin<Route & { revision: number }>(gw, "GET", "/routes/checkout")).body;
    expect(weightsOf(route)).toEqual({ east: 100, west: 0 });
    const newest = (await revisions(gw, "checkout"))[0];
    expect(newest).toMatchObject({ revision: route.revision, actor: "admin-token (rollout checkout-v2)" });
    expect(weightsOf(newest?.spec)).toEqual({ east: 100, west: 0 });
    expect(aborted.body.status.routeRevision).toBe(route.revision);
    const abortEvent = (await events(gw, "checkout-v2")).at(-1);
    expect(abortEvent).toMatchObject({ type: "Aborted", actor: "admin-token", phase: "Aborted", canaryWeight: 0, routeRevision: route.revision });
    // The live table follows at once.
    expect(count(await sendMany(gw, "checkout.shop", 30), "east")).toBe(30);
    await tick();
    expect((await getRollout(gw, "checkout-v2")).status.phase).toBe("Aborted"); // the controller leaves it alone

    expect((await verb(gw, "checkout-v2", "abort")).status).toBe(409);
    expect((await verb(gw, "checkout-v2", "promote")).status).toBe(409);

    // Retry: from step 0 again.
    const retried = await verb(gw, "checkout-v2", "retry");
    expect(retried.status).toBe(200);
    expect(retried.body.status).toMatchObject({ phase: "Progressing", step: 0, canaryWeight: 0, failedChecks: 0, lastAnalysis: null, stepApplied: false });
    await tick();
    const again = await getRollout(gw, "checkout-v2");
    expect(again.status).toMatchObject({ phase: "Progressing", step: 0, canaryWeight: 10 });
    const evs = await events(gw, "checkout-v2");
    const retriedAt = evs.findIndex((e) => e.type === "Retried");
    expect(retriedAt).toBeGreaterThan(0);
    expect(evs.slice(retriedAt + 1).find((e) => e.type === "WeightSet")).toMatchObject({ step: 0, canaryWeight: 10 });

    // Promote full: straight to 100 and Succeeded.
    const full = await verb(gw, "checkout-v2", "promote", { full: true });
    expect(full.status).toBe(200);
    expect(full.body.status).toMatchObject({ phase: "Succeeded", canaryWeight: 100, step: 3, weights: { stable: 0, canary: 100 } });
    expect(weightsOf((await admin<Route>(gw, "GET", "/routes/checkout")).body)).toEqual({ east: 0, west: 100 });
    expect(count(await sendMany(gw, "checkout.shop", 30), "west")).toBe(30);
    const abortDone = await verb(gw, "checkout-v2", "abort"); // abort when Succeeded
    expect(abortDone.status).toBe(409);
    expect(abortDone.body.phase).toBe("Succeeded");
    for (const v of ["promote", "pause", "resume", "retry"]) expect((await verb(gw, "checkout-v2", v)).status, v).toBe(409);
    const bad = await verb(gw, "checkout-v2", "promote", { full: "yes" });
    expect(bad.status).toBe(400);
    expect(bad.body.errors?.map((e) => e.path)).toContain("full");
  });

  it("promote moves past a `pause: {}` step; pause holds the controller until resume; promote is refused once Failed", async () => {
    const { gw } = await setup({ tickMs: 0, routes: { checkout: {}, other: {} } });
    const tick = () => gw.controller.tick();
    await startRollout(gw, rolloutDoc("checkout-v2", "checkout", { steps: [{ setWeight: 10 }, { pause: {} }, { setWeight: 30 }, { setWeight: 60 }, { setWeight: 100 }] }));
    for (let i = 0; i < 3; i++) await tick();
    const paused = await getRollout(gw, "checkout-v2");
    expect(paused.status).toMatchObject({ phase: "Paused", step: 1, canaryWeight: 10, pausedBy: "step" });
    expect(paused.status.message).toMatch(/paused until promoted/);
    for (let i = 0; i < 3; i++) await tick();
    expect((await getRollout(gw, "checkout-v2")).status).toMatchObject({ phase: "Paused", step: 1 });

    const promoted = await verb(gw, "checkout-v2", "promote");
    expect(promoted.status).toBe(200);
    expect(promoted.body.status).toMatchObject({ phase: "Progressing", step: 2, canaryWeight: 10 });
    await tick();
    expect((await getRollout(gw, "checkout-v2")).status).toMatchObject({ phase: "Progressing", step: 2, canaryWeight: 30 });

    // A user pause: the controller does not move it, however often it ticks.
    const p = await verb(gw, "checkout-v2", "pause");
    expect(p.status).toBe(200);
    expect(p.body.status).toMatchObject({ phase: "Paused", pausedBy: "user", step: 2, canaryWeight: 30 });
    expect((await verb(gw, "checkout-v2", "pause")).status).toBe(409); // already paused
    const before = await getRollout(gw, "checkout-v2");
    for (let i = 0; i < 5; i++) await tick();
    const still = await getRollout(gw, "checkout-v2");
    expect(still.status).toMatchObject({ phase: "Paused", step: 2, canaryWeight: 30 });
    expect(still.updatedAt).toBe(before.updatedAt);

    const resumed = await verb(gw, "checkout-v2", "resume");
    expect(resumed.status).toBe(200);
    // A user pause resumes where it was (step 2), not past it.
    expect(resumed.body.status).toMatchObject({ phase: "Progressing", step: 2, canaryWeight: 30, pausedBy: null });
    await until("Succeeded", async () => (await tick(), (await getRollout(gw, "checkout-v2")).status.phase === "Succeeded"), 5_000);
    const evs = await events(gw, "checkout-v2");
    expect(evs.filter((e) => e.type === "WeightSet").map((e) => e.canaryWeight)).toEqual([10, 30, 60, 100]);
    expect(evs.map((e) => e.type)).toEqual(expect.arrayContaining(["Paused", "Promoted", "Resumed"]));
    expect(evs.filter((e) => e.type === "Paused").map((e) => e.actor)).toEqual(["controller", "admin-token"]);

    // promote when Failed: a rollout that fails on no data at its first analysis.
    await startRollout(gw, rolloutDoc("other-v2", "other", { steps: [{ setWeight: 10 }, { setWeight: 100 }], analysis: { interval: "1ms", threshold: 1, minRequests: 5, onNoData: "fail" } }));
    await until("Failed", async () => (await tick(), (await getRollout(gw, "other-v2")).status.phase === "Failed"), 5_000);
    const refused = await verb(gw, "other-v2", "promote", { full: true });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ phase: "Failed" });
    expect(refused.body.detail).toMatch(/cannot promote a rollout that is Failed/);
    expect(weightsOf((await admin<Route>(gw, "GET", "/routes/other")).body)).toEqual({ east: 100, west: 0 });
    // Retry after a failure starts again from step 0.
    const retried = await verb(gw, "other-v2", "retry");
    expect(retried.body.status).toMatchObject({ phase: "Progressing", step: 0, canaryWeight: 0, failedChecks: 0 });
    await tick();
    expect((await getRollout(gw, "other-v2")).status).toMatchObject({ phase: "Progressing", step: 0, canaryWeight: 10 });
  });

  it("an unknown rollout is 404 for reads and verbs", async () => {
    const { gw } = await setup({ tickMs: 0 });
    expect((await admin(gw, "GET", "/rollouts/nope")).status).toBe(404);
    expect((await admin(gw, "GET", "/rollouts/nope/events")).status).toBe(404);
    for (const v of ["promote", "pause", "resume", "abort", "retry"]) expect((await verb(gw, "nope", v)).status, v).toBe(404);
    expect((await admin<{ items: unknown[] }>(gw, "GET", "/rollouts")).body.items).toEqual([]);
  });
});

// ------------------------------------------------------------------ validation

describe("starting a rollout: validation", () => {
  const valid = () => rolloutDoc("checkout-v2", "checkout", { steps: [{ setWeight: 5 }, { pause: { duration: "30s" } }, { setWeight: 100 }], analysis: { interval: "10s" } });
  const cases: Array<[string, (d: Record<string, unknown>) => void, string | RegExp]> = [
    ["missing steps", (d) => delete d.steps, "steps"],
    ["setWeight 101", (d) => (d.steps = [{ setWeight: 101 }]), "steps[0].setWeight"],
    ["pause duration x", (d) => (d.steps = [{ setWeight: 5 }, { pause: { duration: "x" } }]), "steps[1].pause.duration"],
    ["a step that is neither", (d) => (d.steps = [{ setWeight: 5 }, { wait: "1s" }]), /^steps\[1\]/],
    ["unknown field", (d) => (d.wieght = 5), "wieght"],
    ["stable == canary", (d) => (d.canary = { ...STABLE }), "canary"],
    ["threshold 0", (d) => (d.analysis = { threshold: 0 }), "analysis.threshold"],
    ["successRate.min 2", (d) => (d.analysis = { successRate: { min: 2 } }), "analysis.successRate.min"],
    ["bad webhook type", (d) => (d.webhooks = [{ type: "post-rollout", url: "http://127.0.0.1:1/x" }]), "webhooks[0].type"],
    ["bad webhook url", (d) => (d.webhooks = [{ type: "event", url: "not a url" }]), "webhooks[0].url"],
    ["non-http webhook url", (d) => (d.webhooks = [{ type: "event", url: "ftp://ci.example.com/x" }]), "webhooks[0].url"],
    ["onNoData maybe", (d) => (d.analysis = { onNoData: "maybe" }), "analysis.onNoData"],
    ["no setWeight step", (d) => (d.steps = [{ pause: {} }]), "steps"],
    ["name with capitals", (d) => (d.name = "Checkout-V2"), "name"],
    ["empty steps", (d) => (d.steps = []), "steps"],
    ["fastAbort errorRate 0", (d) => (d.fastAbort = { errorRate: 0 }), "fastAbort.errorRate"],
    ["headerOverride without value", (d) => (d.headerOverride = { name: "x-canary" }), "headerOverride.value"],
    ["analysis interval bad", (d) => (d.analysis = { interval: "10 seconds" }), "analysis.interval"],
    ["canary port 0", (d) => (d.canary = { ...CANARY, port: 0 }), "canary.port"],
  ];

  it("bad payloads get 400 with field paths, and nothing is created", async () => {
    const { gw } = await setup({ tickMs: 0 });
    for (const [label, mutate, path] of cases) {
      const doc = structuredClone(valid());
      mutate(doc);
      const res = await admin<ProblemBody>(gw, "POST", "/rollouts", doc);
      expect(res.status, label).toBe(400);
      const paths = (res.body.errors ?? []).map((e) => e.path);
      expect(paths.some((p) => (typeof path === "string" ? p === path : path.test(p))), `${label}: ${JSON.stringify(res.body.errors)}`).toBe(true);
    }
    const notJson = await request(`${gw.url}/_isthmus/v1/rollouts`, { dispatcher: client, method: "POST", headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" }, body: "{" });
    expect(notJson.statusCode).toBe(400);
    await notJson.body.dump();
    expect((await admin<{ items: unknown[] }>(gw, "GET", "/rollouts")).body.items).toEqual([]);
    expect((await revisions(gw, "checkout")).length).toBe(1);
  });

  it("checks the route, rule, stable and canary cluster; one running rollout per rule; names are unique", async () => {
    const { gw } = await setup({ tickMs: 0, routes: { checkout: {}, mixed: { backendRefs: [{ ...STABLE, weight: 50 }, { cluster: "west", service: "other.shop.svc.cluster.local", port: 8080, weight: 50 }] } } });
    const noRoute = await admin<ProblemBody>(gw, "POST", "/rollouts", { ...valid(), route: "missing" });
    expect(noRoute.status).toBe(404);
    const noRule = await admin<ProblemBody>(gw, "POST", "/rollouts", { ...valid(), rule: "canary-only" });
    expect(noRule.status).toBe(400);
    expect(noRule.body.errors?.map((e) => e.path)).toEqual(["rule"]);
    const noStable = await admin<ProblemBody>(gw, "POST", "/rollouts", { ...valid(), stable: { ...STABLE, service: "legacy.shop.svc.cluster.local" } });
    expect(noStable.status).toBe(400);
    expect(noStable.body.errors?.map((e) => e.path)).toContain("stable");
    const unknownCluster = await admin<ProblemBody>(gw, "POST", "/rollouts", { ...valid(), canary: { ...CANARY, cluster: "north" } });
    expect(unknownCluster.status).toBe(400);
    expect(unknownCluster.body.errors?.map((e) => e.path)).toEqual(["canary.cluster"]);
    const thirdBackend = await admin<ProblemBody>(gw, "POST", "/rollouts", { ...valid(), route: "mixed" });
    expect(thirdBackend.status).toBe(400);
    expect(thirdBackend.body.errors?.map((e) => e.path)).toContain("rule");

    const first = await admin<RolloutView>(gw, "POST", "/rollouts", valid());
    expect(first.status).toBe(201);
    const second = await admin<ProblemBody>(gw, "POST", "/rollouts", { ...valid(), name: "checkout-v3" });
    expect(second.status).toBe(409);
    expect(second.body.detail).toMatch(/checkout-v2.*already running/);
    // Once it is no longer running, another may start on the rule; the old name stays taken.
    expect((await verb(gw, "checkout-v2", "abort")).status).toBe(200);
    const dup = await admin<ProblemBody>(gw, "POST", "/rollouts", valid());
    expect(dup.status).toBe(409);
    expect(dup.body.detail).toMatch(/already exists/);
    expect((await admin(gw, "POST", "/rollouts", { ...valid(), name: "checkout-v3" })).status).toBe(201);
    expect((await admin<{ items: RolloutView[] }>(gw, "GET", "/rollouts")).body.items.map((r) => [r.name, r.status.phase])).toEqual([
      ["checkout-v2", "Aborted"],
      ["checkout-v3", "Progressing"],
    ]);
  });

  it("rollouts started at the same moment on one rule (through two gateways): one is created, the others are 409", async () => {
    const { gw, others } = await setup({ tickMs: 0, gateways: 2 });
    const b = others[0] as RunningGateway;
    const starts = await Promise.all(Array.from({ length: 8 }, (_, i) => admin(i % 2 ? b : gw, "POST", "/rollouts", { ...valid(), name: `contender-${i}` })));
    expect(starts.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409, 409, 409, 409]);
    expect((await admin<{ items: RolloutView[] }>(gw, "GET", "/rollouts")).body.items.filter((r) => r.status.phase === "Progressing")).toHaveLength(1);
  });
});

// ------------------------------------------------------------------ sticky ramp and header override

describe("routing during a rollout", () => {
  it("sticky ramp: users admitted to the canary at 5% stay on it at 25% and 100%", async () => {
    const { gw } = await setup({ routes: { checkout: { sessionPersistence: { key: [{ header: "x-user-id" }] } } } });
    await startRollout(gw, rolloutDoc("checkout-v2", "checkout", { steps: [{ setWeight: 5 }, { pause: {} }, { setWeight: 25 }, { pause: {} }, { setWeight: 100 }] }));
    const users = (i: number) => ({ "x-user-id": `user-${i}` });
    const canaryUsers = async () => {
      const res = await sendMany(gw, "checkout.shop", 500, users);
      expect(res.every((r) => r.status === 200)).toBe(true);
      return new Set(res.flatMap((r, i) => (r.cluster === "west" ? [i] : [])));
    };

    await waitRollout(gw, "checkout-v2", "paused at 5", (r) => r.status.phase === "Paused" && r.status.canaryWeight === 5);
    const at5 = await canaryUsers();
    expect(at5.size).toBeGreaterThan(5);
    expect(at5.size).toBeLessThan(60);
    // Sticky: the same users again land on the same side.
    expect(await canaryUsers()).toEqual(at5);

    expect((await verb(gw, "checkout-v2", "promote")).status).toBe(200);
    await waitRollout(gw, "checkout-v2", "paused at 25", (r) => r.status.phase === "Paused" && r.status.canaryWeight === 25);
    const at25 = await canaryUsers();
    expect(at25.size).toBeGreaterThan(80);
    expect(at25.size).toBeLessThan(180);
    expect([...at5].filter((u) => !at25.has(u))).toEqual([]);

    expect((await verb(gw, "checkout-v2", "promote")).status).toBe(200);
    await waitRollout(gw, "checkout-v2", "Succeeded", (r) => r.status.phase === "Succeeded");
    const at100 = await canaryUsers();
    expect(at100.size).toBe(500);
  });

  it("header override: such requests reach the canary at weight 0 and 5; others follow the weights", async () => {
    const { gw } = await setup();
    await startRollout(
      gw,
      rolloutDoc("checkout-v2", "checkout", { steps: [{ setWeight: 0 }, { pause: {} }, { setWeight: 5 }, { pause: {} }, { setWeight: 100 }], headerOverride: { name: "x-canary", value: "always" } }),
    );
    await waitRollout(gw, "checkout-v2", "paused at 0", (r) => r.status.phase === "Paused" && r.status.step === 1);
    expect(count(await sendMany(gw, "checkout.shop", 50, () => ({ "x-canary": "always" })), "west")).toBe(50);
    expect(count(await sendMany(gw, "checkout.shop", 50, () => ({ "X-Canary": "always" })), "west")).toBe(50);
    expect(count(await sendMany(gw, "checkout.shop", 50), "east")).toBe(50);
    expect(count(await sendMany(gw, "checkout.shop", 50, () => ({ "x-canary": "sometimes" })), "east")).toBe(50);

    expect((await verb(gw, "checkout-v2", "promote")).status).toBe(200);
    await waitRollout(gw, "checkout-v2", "paused at 5", (r) => r.status.phase === "Paused" && r.status.canaryWeight === 5);
    expect(count(await sendMany(gw, "checkout.shop", 50, () => ({ "x-canary": "always" })), "west")).toBe(50);
    const plain = await sendMany(gw, "checkout.shop", 600);
    expect(count(plain, "west")).toBeGreaterThan(5);
    expect(count(plain, "west")).toBeLessThan(80);

    // Once the rollout is over, the header is just a header.
    expect((await verb(gw, "checkout-v2", "abort")).status).toBe(200);
    expect(count(await sendMany(gw, "checkout.shop", 50, () => ({ "x-canary": "always" })), "east")).toBe(50);
  });

  it("header override works before any weight was written (a confirm-rollout gate holding the rollout)", async () => {
    const hooks = closer.add(await startHookServer());
    hooks.status.set("/confirm", 503);
    const { gw, west } = await setup();
    await startRollout(
      gw,
      rolloutDoc("checkout-v2", "checkout", {
        steps: [{ setWeight: 10 }, { setWeight: 100 }],
        headerOverride: { name: "x-canary", value: "always" },
        webhooks: [{ type: "confirm-rollout", url: `${hooks.url}/confirm` }],
      }),
    );
    await waitRollout(gw, "checkout-v2", "held by the gate", (r) => r.status.message.startsWith("waiting"));
    // The rollout is known to the table (the rule is labelled), no traffic has moved.
    await until("the table to know the rollout", () => gw.routing.current.exact.get("checkout.shop")?.matches[0]?.rule.rollout?.name === "checkout-v2");
    expect(count(await sendMany(gw, "checkout.shop", 20), "east")).toBe(20);
    const forced = await sendMany(gw, "checkout.shop", 20, () => ({ "x-canary": "always" }));
    expect(count(forced, "west"), JSON.stringify(forced.slice(0, 2))).toBe(20);
    expect(west.requests).toBe(20);
  });
});

// ------------------------------------------------------------------ webhooks

interface HookCall {
  path: string;
  body: { name: string; type: string; phase: string; step: number; canaryWeight: number; route: string; rule: string; metadata: Record<string, string>; event?: RolloutEvent };
}

interface HookServer {
  url: string;
  /** Path -> status to answer (200 when absent). */
  status: Map<string, number>;
  calls: HookCall[];
  close(): Promise<void>;
}

async function startHookServer(): Promise<HookServer> {
  const status = new Map<string, number>();
  const calls: HookCall[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const path = req.url ?? "";
      try {
        calls.push({ path, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) as HookCall["body"] });
      } catch {
        calls.push({ path, body: {} as HookCall["body"] });
      }
      res.writeHead(status.get(path) ?? 200, { "content-type": "text/plain" }).end("ok");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    status,
    calls,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

describe("webhooks", () => {
  it("confirm-rollout and confirm-promotion gates hold until they answer 2xx, and say which hook holds", async () => {
    const hooks = closer.add(await startHookServer());
    hooks.status.set("/confirm-rollout", 503);
    hooks.status.set("/confirm-promotion", 403);
    const { gw } = await setup();
    const load = traffic([gw], "checkout.shop", 4);
    await startRollout(
      gw,
      rolloutDoc("checkout-v2", "checkout", {
        steps: [{ setWeight: 20 }, { setWeight: 100 }],
        analysis: HEALTHY_ANALYSIS,
        webhooks: [
          { name: "ci-approval", type: "confirm-rollout", url: `${hooks.url}/confirm-rollout`, metadata: { ticket: "CHG-1" } },
          { name: "release-manager", type: "confirm-promotion", url: `${hooks.url}/confirm-promotion`, timeout: "2s" },
        ],
      }),
    );
    const held = await waitRollout(gw, "checkout-v2", "held by confirm-rollout", (r) => r.status.message.includes("ci-approval"));
    expect(held.status.message).toMatch(/waiting: confirm-rollout webhook ci-approval answered HTTP 503/);
    expect(held.status).toMatchObject({ phase: "Progressing", step: 0, canaryWeight: 0 });
    const call = hooks.calls.find((c) => c.path === "/confirm-rollout");
    expect(call?.body).toMatchObject({ name: "checkout-v2", type: "confirm-rollout", phase: "Progressing", step: 0, canaryWeight: 0, route: "checkout", rule: "default", metadata: { ticket: "CHG-1" } });
    // Held several ticks: still no traffic moved, one Held event (not one per tick).
    await until("more gate calls", () => hooks.calls.filter((c) => c.path === "/confirm-rollout").length >= 4);
    expect((await revisions(gw, "checkout")).filter(byRollout("checkout-v2"))).toEqual([]);
    expect((await events(gw, "checkout-v2")).filter((e) => e.type === "Held").length).toBe(1);

    hooks.status.set("/confirm-rollout", 200);
    await waitRollout(gw, "checkout-v2", "at 20", (r) => r.status.canaryWeight === 20);
    const promo = await waitRollout(gw, "checkout-v2", "held by confirm-promotion", (r) => r.status.message.includes("release-manager"), 5_000);
    expect(promo.status.message).toMatch(/waiting: confirm-promotion webhook release-manager answered HTTP 403/);
    expect(promo.status).toMatchObject({ phase: "Progressing", step: 1, canaryWeight: 20 });
    const promoCalls = hooks.calls.filter((c) => c.path === "/confirm-promotion").length;
    await until("more promotion gate calls", () => hooks.calls.filter((c) => c.path === "/confirm-promotion").length >= promoCalls + 3);
    expect((await getRollout(gw, "checkout-v2")).status).toMatchObject({ phase: "Progressing", canaryWeight: 20 });

    hooks.status.set("/confirm-promotion", 200);
    const done = await waitRollout(gw, "checkout-v2", "Succeeded", (r) => r.status.phase === "Succeeded", 5_000);
    await load.stop();
    expect(done.status.weights).toEqual({ stable: 0, canary: 100 });
    const evs = await events(gw, "checkout-v2");
    expect(evs.find((e) => e.type === "GatePassed")?.message).toMatch(/confirm-rollout webhook passed/);
    expect(evs.filter((e) => e.type === "WeightSet").map((e) => e.canaryWeight)).toEqual([20, 100]);
    // The rollback type was never configured; no call went anywhere else.
    expect(new Set(hooks.calls.map((c) => c.path))).toEqual(new Set(["/confirm-rollout", "/confirm-promotion"]));
  });

  it("a rollback webhook answering 2xx fails the rollout and puts the canary back to 0", async () => {
    const hooks = closer.add(await startHookServer());
    hooks.status.set("/rollback", 404);
    const { gw, west } = await setup();
    const load = traffic([gw], "checkout.shop", 4);
    await startRollout(
      gw,
      rolloutDoc("checkout-v2", "checkout", { steps: [{ setWeight: 30 }, { pause: { duration: "1h" } }, { setWeight: 100 }], webhooks: [{ name: "pager", type: "rollback", url: `${hooks.url}/rollback` }] }),
    );
    await waitRollout(gw, "checkout-v2", "in the pause at 30", (r) => r.status.step === 1 && r.status.canaryWeight === 30);
    const calls = hooks.calls.length;
    await until("rollback hook polled", () => hooks.calls.length >= calls + 3);
    expect((await getRollout(gw, "checkout-v2")).status.phase).toBe("Progressing");

    hooks.status.set("/rollback", 200);
    const failed = await waitRollout(gw, "checkout-v2", "Failed", (r) => r.status.phase === "Failed");
    await load.stop();
    expect(failed.status).toMatchObject({ canaryWeight: 0, weights: { stable: 100, canary: 0 } });
    expect(failed.status.message).toMatch(/rollback webhook/);
    expect(weightsOf((await admin<Route>(gw, "GET", "/routes/checkout")).body)).toEqual({ east: 100, west: 0 });
    await expectNoMoreCanaryTraffic(gw, west, "checkout.shop", failed.status.routeRevision);
  });

  it("an event webhook receives every event of the audit trail", async () => {
    const hooks = closer.add(await startHookServer());
    const { gw } = await setup();
    await startRollout(
      gw,
      rolloutDoc("checkout-v2", "checkout", { steps: [{ setWeight: 10 }, { pause: {} }, { setWeight: 100 }], webhooks: [{ type: "event", url: `${hooks.url}/events` }] }),
    );
    await waitRollout(gw, "checkout-v2", "paused", (r) => r.status.phase === "Paused");
    expect((await verb(gw, "checkout-v2", "promote")).status).toBe(200);
    await waitRollout(gw, "checkout-v2", "Succeeded", (r) => r.status.phase === "Succeeded");
    const trail = await events(gw, "checkout-v2");
    const received = () => hooks.calls.filter((c) => c.path === "/events").map((c) => c.body);
    // Controller events arrive (each with the rollout's state at that moment).
    await until("the Succeeded event", () => received().some((b) => b.event?.type === "Succeeded"));
    for (const b of received()) expect(b).toMatchObject({ name: "checkout-v2", type: "event", route: "checkout", rule: "default" });
    expect(received().map((b) => b.event?.type)).toEqual(expect.arrayContaining(["WeightSet", "Paused", "Succeeded"]));
    await until(
      "every event of the trail at the webhook",
      () => received().length >= trail.length,
      2_000,
      () => `trail ${trail.map((e) => e.type).join(",")} / received ${received().map((b) => b.event?.type).join(",")}`,
    );
    // Deliveries from the controller and from the admin API may interleave: compare as sets.
    const key = (e: RolloutEvent | undefined) => `${e?.at} ${e?.type} step ${e?.step} weight ${e?.canaryWeight}`;
    expect(received().map((b) => key(b.event)).sort()).toEqual(trail.map(key).sort());
  });
});

// ------------------------------------------------------------------ metrics

describe("metrics during a rollout", () => {
  it("carry rollout and rollout_role labels while it runs, and not after", async () => {
    const { gw } = await setup();
    await startRollout(gw, rolloutDoc("checkout-v2", "checkout", { steps: [{ setWeight: 50 }, { pause: {} }, { setWeight: 100 }] }));
    await waitRollout(gw, "checkout-v2", "paused at 50", (r) => r.status.phase === "Paused");
    const res = await sendMany(gw, "checkout.shop", 100);
    const westCount = count(res, "west");
    expect(westCount).toBeGreaterThan(10);
    const metricsText = async () => {
      const r = await request(`${gw.url}/_isthmus/v1/metrics`, { dispatcher: client, headers: { authorization: `Bearer ${TOKEN}` } });
      expect(r.statusCode).toBe(200);
      return r.body.text();
    };
    const sum = (lines: string[], pred: (l: string) => boolean) => lines.filter(pred).reduce((a, l) => a + Number(l.split(" ").at(-1)), 0);
    const canary = (l: string) => l.startsWith("response_total{") && l.includes('rollout="checkout-v2"') && l.includes('rollout_role="canary"');
    const stable = (l: string) => l.startsWith("response_total{") && l.includes('rollout="checkout-v2"') && l.includes('rollout_role="stable"');
    // Polled: a scrape racing the periodic flush can miss the newest samples (see the MetricsFlusher
    // case in test/unit/rollout-analysis.test.ts); the labels are what this test is about.
    let lines: string[] = [];
    await until("all 100 responses in the metrics", async () => {
      lines = (await metricsText()).split("\n");
      return sum(lines, canary) + sum(lines, stable) >= 100;
    });
    const value = (pred: (l: string) => boolean) => sum(lines, pred);
    expect(lines.filter(canary).every((l) => l.includes('dst_target_cluster="west"') && l.includes('dst_target_service="checkout-v2.shop.svc.cluster.local"'))).toBe(true);
    expect(lines.filter(stable).every((l) => l.includes('dst_target_cluster="east"'))).toBe(true);
    expect(value(canary)).toBe(westCount);
    expect(value(stable)).toBe(100 - westCount);
    expect(lines.some((l) => l.startsWith("request_total{") && l.includes('rollout_role="canary"'))).toBe(true);
    expect(lines.some((l) => l.startsWith("response_latency_ms_bucket{") && l.includes('rollout_role="canary"'))).toBe(true);

    // Finished: new traffic is no longer labelled with the rollout.
    expect((await verb(gw, "checkout-v2", "promote", { full: true })).status).toBe(200);
    await until("the table to drop the rollout", () => gw.routing.current.exact.get("checkout.shop")?.matches[0]?.rule.rollout === null);
    expect(count(await sendMany(gw, "checkout.shop", 30), "west")).toBe(30);
    const plainWest = (l: string) => l.startsWith("response_total{") && l.includes('dst_target_cluster="west"') && !l.includes("rollout=");
    let after: string[] = [];
    await until("the 30 unlabelled responses in the metrics", async () => {
      after = (await metricsText()).split("\n");
      return sum(after, plainWest) >= 30;
    });
    expect(sum(after, plainWest)).toBe(30);
    expect(sum(after, canary)).toBe(westCount);
  });
});
