// Resilience end to end, through the real Node gateway (in-process) to real upstreams, with a TCP
// fault proxy (test/helpers/fault-proxy.ts) between the gateway and what it talks to. Covers the
// retry budget (research/perf-reliability.md §4.2 B "Upstream 50% 503", P9), which requests may be
// retried, ejection and health-driven failover (blackhole, refused), the "never every backend" rule,
// Redis pausing and dying under load, fail static at start, the data-plane limits (413, 503 + Retry-After,
// 431), and slow clients (slowloris, a 1 GB upload) next to normal traffic (§4.2 A4/A5).
// States are awaited by polling the gateway's own view (probe state, breakers) or the upstreams'
// counters, never by sleeping a guessed duration; every wait has a deadline.
import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { Worker } from "node:worker_threads";
import { Agent, request } from "undici";
import { afterEach, describe, expect, inject, it, vi } from "vitest";
import type { RouteInput } from "../../src/config/schemas.ts";
import { startNodeGateway, type NodeGatewayOptions, type RunningGateway } from "../../src/runtime/node.ts";
import { silentLogger } from "../../src/util/log.ts";
import { startFaultProxy } from "../helpers/fault-proxy.ts";
import { buildConfig, Closer } from "../helpers/gateway.ts";
import { startRedis, uniquePrefix } from "../helpers/redis-server.ts";
import { refusedPort, startUpstream } from "../helpers/upstream.ts";

const SERVICE = "checkout.shop.svc.cluster.local";
const ADMIN_TOKEN = "resilience-test-admin-token-0123456789";
const KiB = 1024;
const MiB = 1024 * KiB;
const PROBLEM = "urn:isthmus:problem:";

const closer = new Closer();
afterEach(async () => {
  await closer.closeAll();
});

// ------------------------------------------------------------------ helpers

interface RuleSpec {
  prefix?: string;
  backends: Array<{ cluster: string; weight?: number; failover?: string[]; service?: string }>;
  timeouts?: { request?: string; backendRequest?: string };
  retry?: { attempts?: number; codes?: number[]; backoff?: string };
}

/** A route open to unauthenticated callers (identity is not what these tests are about). */
function route(host: string, ...rules: RuleSpec[]): RouteInput {
  return {
    hostnames: [host],
    authorization: { unauthenticated: true },
    rules: rules.map((r) => ({
      ...(r.prefix ? { matches: [{ path: { type: "PathPrefix" as const, value: r.prefix } }] } : {}),
      backendRefs: r.backends.map((b) => ({ cluster: b.cluster, service: b.service ?? SERVICE, port: 8080, weight: b.weight ?? 1, ...(b.failover ? { failover: b.failover } : {}) })),
      ...(r.timeouts ? { timeouts: r.timeouts } : {}),
      ...(r.retry ? { retry: r.retry } : {}),
    })),
  };
}

const backendId = (cluster: string, service = SERVICE) => `${cluster}/${service}:8080`;

interface Hit {
  status: number;
  /** The cluster that served it (the upstream's x-served-by), or "" for a gateway answer or an error. */
  cluster: string;
  /** The problem type slug of a gateway answer, if any. */
  problem: string;
  headers: IncomingHttpHeaders;
  ms: number;
  error?: string;
}

interface Gw {
  gw: RunningGateway;
  client: Agent;
  hit(host: string, path?: string, init?: { method?: "GET" | "POST" | "PUT"; body?: string | Readable; headers?: Record<string, string> }): Promise<Hit>;
  admin(method: "GET" | "PUT", p: string, body?: unknown): Promise<number>;
  readyz(): Promise<number>;
}

/** The real Node gateway on a free loopback port, with a keep-alive client; closed after each test. */
async function gateway(opts: Partial<NodeGatewayOptions> & { clusters?: Record<string, string>; routes?: Record<string, RouteInput>; connections?: number }): Promise<Gw> {
  const { clusters, routes, connections, ...rest } = opts;
  const gw = await startNodeGateway({
    port: 0,
    hostname: "127.0.0.1",
    log: silentLogger,
    adminToken: ADMIN_TOKEN,
    ...(clusters && routes ? { config: buildConfig(clusters, routes) } : {}),
    ...rest,
  });
  closer.add(gw);
  const client = new Agent({ connections: connections ?? 64, keepAliveTimeout: 10_000, pipelining: 1 });
  closer.add({ close: () => client.destroy().catch(() => undefined) });

  const hit: Gw["hit"] = async (host, p = "/", init = {}) => {
    const started = performance.now();
    try {
      const res = await request(`${gw.url}${p}`, { dispatcher: client, method: init.method ?? "GET", headers: { ...init.headers, host }, body: init.body });
      const text = await res.body.text();
      const ct = String(res.headers["content-type"] ?? "");
      const problem = ct.startsWith("application/problem+json") ? String((JSON.parse(text) as { type?: string }).type ?? "").replace(PROBLEM, "") : "";
      return { status: res.statusCode, cluster: String(res.headers["x-served-by"] ?? ""), problem, headers: res.headers as IncomingHttpHeaders, ms: performance.now() - started };
    } catch (err) {
      return { status: 0, cluster: "", problem: "", headers: {}, ms: performance.now() - started, error: String(err) };
    }
  };
  const admin: Gw["admin"] = async (method, p, body) => {
    const res = await request(`${gw.url}/_isthmus/v1${p}`, {
      dispatcher: client,
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    await res.body.dump();
    return res.statusCode;
  };
  const readyz = async () => {
    const res = await request(`${gw.url}/_isthmus/readyz`, { dispatcher: client });
    await res.body.dump();
    return res.statusCode;
  };
  return { gw, client, hit, admin, readyz };
}

/** Runs `fn` `n` times with at most `limit` in flight. */
async function pool<R>(n: number, limit: number, fn: (i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      out[i] = await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
  return out;
}

/** Polls a condition (a state to reach, not a duration to wait) until it holds or the deadline passes. */
async function until(what: string, cond: () => boolean | Promise<boolean>, deadlineMs: number): Promise<number> {
  const start = performance.now();
  for (;;) {
    if (await cond()) return performance.now() - start;
    if (performance.now() - start > deadlineMs) throw new Error(`not within ${deadlineMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** `workers` request loops until stopped; every result is kept (tests stay in the thousands). */
function steadyLoad(send: () => Promise<Hit>, workers: number) {
  let running = true;
  const hits: Hit[] = [];
  const loops = Array.from({ length: workers }, async () => {
    while (running) hits.push(await send());
  });
  return {
    hits,
    get ok() {
      return hits.filter((h) => h.status === 200).length;
    },
    failures: () => hits.filter((h) => h.status !== 200),
    /** Resolves once `n` more requests have completed. */
    async more(n: number, deadlineMs = 30_000) {
      const target = hits.length + n;
      await until(`${n} more requests`, () => hits.length >= target, deadlineMs);
    },
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** Deterministic PRNG (mulberry32), so a failing run can be replayed. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
};

/** A raw HTTP/1.1 exchange over a fresh socket: sends `head` as is and resolves with the status line. */
function rawStatusLine(port: number, head: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1", () => s.write(head));
    let out = "";
    s.on("data", (d: Buffer) => {
      out += d.toString("latin1");
      const eol = out.indexOf("\r\n");
      if (eol >= 0) {
        s.destroy();
        resolve(out.slice(0, eol));
      }
    });
    s.on("error", reject);
    s.on("close", () => resolve(out.split("\r\n")[0] ?? ""));
  });
}

/**
 * A POST of `bytes` generated bytes through node:http (chunked when `chunked`, else with a
 * Content-Length). Stops writing once the answer arrives; a connection cut is an outcome, not an error.
 */
function upload(port: number, host: string, bytes: number, chunked: boolean): Promise<{ status: number; body: string; headers: IncomingHttpHeaders } | { cut: string }> {
  return new Promise((resolve) => {
    let answered = false;
    const req = httpRequest(
      { host: "127.0.0.1", port, method: "POST", path: "/upload", agent: false, headers: { host, "content-type": "application/octet-stream", ...(chunked ? {} : { "content-length": String(bytes) }) } },
      (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8"), headers: res.headers }));
        res.on("error", (err) => resolve({ cut: String(err) }));
      },
    );
    req.on("error", (err) => {
      if (!answered) resolve({ cut: String(err) });
    });
    const chunk = Buffer.alloc(64 * KiB, 0x61);
    let sent = 0;
    const pump = () => {
      while (sent < bytes && !answered && !req.destroyed) {
        const n = Math.min(chunk.length, bytes - sent);
        sent += n;
        if (!req.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void req.once("drain", pump);
      }
      if (!req.destroyed) req.end();
    };
    pump();
  });
}

/**
 * A worker thread (its own event loop, so the measurement sees the gateway's cost, not the test's):
 * a sink upstream that reads and discards bodies, and an uploader that streams `total` bytes made on
 * the fly from one reused 64 KiB buffer (never `total` in memory) to the gateway.
 */
const UPLOAD_WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
const http = require("node:http");
let bytes = 0;
let announced = false;
const sink = http.createServer((req, res) => {
  let n = 0;
  req.on("data", (c) => {
    n += c.length;
    bytes += c.length;
    if (!announced && bytes > workerData.announceAt) {
      announced = true;
      parentPort.postMessage({ streaming: true });
    }
  });
  req.on("end", () => res.writeHead(200, { "content-type": "application/json", "x-served-by": "sink" }).end(JSON.stringify({ bytes: n })));
});
sink.listen(0, "127.0.0.1", () => parentPort.postMessage({ sinkPort: sink.address().port }));
parentPort.on("message", (m) => {
  if (!m.upload) return;
  const { port, host, total } = m.upload;
  const started = performance.now();
  const buf = Buffer.alloc(65536, 0x7a);
  const headers = { host, "content-type": "application/octet-stream", "content-length": String(total) };
  const req = http.request({ host: "127.0.0.1", port, method: "POST", path: "/upload", agent: false, headers }, (res) => {
    let body = "";
    res.setEncoding("utf8");
    res.on("data", (d) => (body += d));
    res.on("end", () => parentPort.postMessage({ done: { status: res.statusCode, body, seconds: (performance.now() - started) / 1000 } }));
  });
  req.on("error", (err) => parentPort.postMessage({ done: { status: 0, body: String(err), seconds: 0 } }));
  let sent = 0;
  const pump = () => {
    while (sent < total) {
      const n = Math.min(buf.length, total - sent);
      sent += n;
      if (!req.write(n === buf.length ? buf : buf.subarray(0, n))) return void req.once("drain", pump);
    }
    req.end();
  };
  pump();
});
`;

/** Resolves with the value under `key` of the first worker message that has it. */
function messageOf<T>(worker: Worker, key: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const on = (m: Record<string, unknown>) => {
      if (!(key in m)) return;
      worker.off("message", on);
      resolve(m[key] as T);
    };
    worker.on("message", on);
    worker.once("error", reject);
  });
}

/** One command to Redis over a raw socket (RESP), resolving with its one-line reply. */
function redisCommand(port: number, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1", () => s.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`));
    let out = "";
    s.on("data", (d: Buffer) => {
      out += d.toString("utf8");
      if (out.endsWith("\r\n")) {
        s.end();
        resolve(out.trim());
      }
    });
    s.on("error", reject);
  });
}

// ------------------------------------------------------------------ the fault proxy itself

describe("fault proxy (test helper)", () => {
  it("passes through, adds latency, drops, refuses, resets and blackholes, switchable at run time", async () => {
    const up = closer.add(await startUpstream("east"));
    const proxy = closer.add(await startFaultProxy(up.url));
    const agent = new Agent({ connections: 1, keepAliveTimeout: 10_000 });
    closer.add({ close: () => agent.destroy().catch(() => undefined) });
    const get = async (headersTimeout = 5000) => {
      const t = performance.now();
      try {
        const res = await request(`${proxy.url}/x`, { dispatcher: agent, headersTimeout });
        await res.body.dump();
        return { status: res.statusCode, ms: performance.now() - t };
      } catch (err) {
        return { status: 0, ms: performance.now() - t, code: String((err as { code?: string }).code ?? err) };
      }
    };
    const fresh = async (): Promise<string> =>
      new Promise((resolve) => {
        const s = net.connect(proxy.port, "127.0.0.1");
        s.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
        s.on("close", () => resolve("closed"));
        s.on("connect", () => s.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        s.on("data", () => {
          resolve("answered");
          s.destroy();
        });
      });

    expect((await get()).status).toBe(200);
    expect(proxy.connections).toBe(1);

    await proxy.latency(150);
    const slow = await get();
    expect(slow.status).toBe(200);
    expect(slow.ms).toBeGreaterThanOrEqual(290); // 150 ms each way

    await proxy.pass();
    await proxy.drop();
    expect(await fresh()).toBe("closed");
    await proxy.refuse();
    expect(await fresh()).toBe("ECONNREFUSED");
    await proxy.reset();
    expect(await fresh()).toBe("ECONNRESET");
    await proxy.blackhole();
    const hole = await get(300);
    expect(hole.status).toBe(0); // accepted, never answered
    expect(up.requests).toBe(2); // nothing reached the upstream
    await proxy.pass();
    expect((await get()).status).toBe(200);
    expect(up.requests).toBe(3);
    expect(proxy.connections).toBeGreaterThanOrEqual(5);
  });
});

// ------------------------------------------------------------------ retry budget

describe("retry budget (Linkerd: 20% of requests + 10/s over 10 s, per cluster)", () => {
  const N = 3000;
  const CONCURRENCY = 20;

  /** `N` GETs at `CONCURRENCY` against one upstream answering 503 with probability `failRate`. */
  async function run(failRate: number, withRetry: boolean, seed: number) {
    const up = closer.add(await startUpstream("east"));
    const rng = mulberry32(seed);
    // The upstream reads its behaviour per request: each arrival decides the next one's status.
    const decide = () => up.setBehaviour({ status: rng() < failRate ? 503 : 200 });
    decide();
    up.events.on("request", decide);
    const g = await gateway({
      clusters: { east: up.url },
      routes: { budget: route("budget.test", { backends: [{ cluster: "east" }], ...(withRetry ? { retry: { attempts: 2, codes: [503], backoff: "5ms" } } : {}) }) },
      connections: CONCURRENCY,
    });
    const started = performance.now();
    const hits = await pool(N, CONCURRENCY, () => g.hit("budget.test"));
    const seconds = (performance.now() - started) / 1000;
    const ok = hits.filter((h) => h.status === 200).length;
    const errors = hits.filter((h) => h.status !== 200 && h.status !== 503);
    // Retries may add 20% of the requests plus 10 per second of the window's age, counted in whole
    // wall-clock seconds (a run of d seconds touches at most ceil(d) + 1 of them).
    const maxUpstream = N + N / 5 + 10 * (Math.ceil(seconds) + 1);
    return { success: ok / N, upstream: up.requests, ratio: up.requests / N, seconds, maxUpstream, bound: maxUpstream / N, errors };
  }

  it("50% 503: retries raise the success rate, and upstream requests stay within 1.2x client requests (+ the 10/s floor)", async () => {
    const without = await run(0.5, false, 42);
    const withRetry = await run(0.5, true, 42);
    console.log(
      `[retry budget, 50% 503] no retry: success ${(without.success * 100).toFixed(1)}%, upstream/client ${without.ratio.toFixed(3)} in ${without.seconds.toFixed(1)} s; ` +
        `retry attempts 2: success ${(withRetry.success * 100).toFixed(1)}%, upstream/client ${withRetry.ratio.toFixed(3)} (bound ${withRetry.bound.toFixed(3)}) in ${withRetry.seconds.toFixed(1)} s`,
    );
    expect(without.errors).toEqual([]);
    expect(withRetry.errors).toEqual([]);
    expect(without.ratio).toBe(1);
    expect(withRetry.success).toBeGreaterThan(without.success + 0.05);
    expect(withRetry.ratio).toBeGreaterThan(1.1); // the budget is actually used...
    expect(withRetry.upstream).toBeLessThanOrEqual(withRetry.maxUpstream); // ...and holds: not 1.5x, let alone 3x
  });

  it("100% 503: the upstream sees about 1.2x the client's requests, not attempts-x", async () => {
    const r = await run(1, true, 7);
    console.log(`[retry budget, 100% 503] upstream/client ${r.ratio.toFixed(3)} (bound ${r.bound.toFixed(3)}) in ${r.seconds.toFixed(1)} s`);
    expect(r.errors).toEqual([]);
    expect(r.success).toBe(0);
    expect(r.ratio).toBeGreaterThan(1.15);
    expect(r.ratio).toBeLessThan(1.3);
    expect(r.upstream).toBeLessThanOrEqual(r.maxUpstream);
  });
});

// ------------------------------------------------------------------ what may be retried

describe("which requests are retried", () => {
  it("a POST with a body is not retried on 503; a PUT is; a chunked body never is", async () => {
    const east = closer.add(await startUpstream("east", { status: 503 }));
    const g = await gateway({ clusters: { east: east.url }, routes: { r: route("retry.test", { backends: [{ cluster: "east" }], retry: { attempts: 2, codes: [503], backoff: "1ms" } }) } });

    const post = await g.hit("retry.test", "/orders", { method: "POST", body: JSON.stringify({ item: 1 }), headers: { "content-type": "application/json" } });
    expect(post.status).toBe(503);
    expect(east.requests).toBe(1); // non-idempotent: the upstream may have acted on it

    east.resetStats();
    const put = await g.hit("retry.test", "/orders/1", { method: "PUT", body: JSON.stringify({ item: 1 }), headers: { "content-type": "application/json" } });
    expect(put.status).toBe(503);
    expect(east.requests).toBe(3); // idempotent and held: 1 + 2 attempts

    east.resetStats();
    const chunked = await g.hit("retry.test", "/orders/2", { method: "PUT", body: Readable.from([Buffer.from("part one, "), Buffer.from("part two")]) });
    expect(chunked.status).toBe(503);
    expect(east.requests).toBe(1); // streamed once, never held, never sent again
    expect(east.received.at(-1)?.bodyBytes).toBe(18);
  });

  it("a POST whose connection was refused is retried on the other backend; a chunked one is not", async () => {
    const west = closer.add(await startUpstream("west"));
    const refused = `http://127.0.0.1:${await refusedPort()}`;
    const g = await gateway({
      clusters: { east: refused, west: west.url },
      routes: {
        r: route(
          "connect.test",
          // Nearly all first tries go to the refused east; a retry avoids the backend that failed.
          { prefix: "/split", backends: [{ cluster: "east", weight: 1000 }, { cluster: "west", weight: 1 }], retry: { attempts: 1, codes: [503], backoff: "1ms" } },
          // One backend only: a retry would go to it again, so its failure count tells tries apart.
          { prefix: "/single", backends: [{ cluster: "east", service: "single.shop.svc.cluster.local" }], retry: { attempts: 1, codes: [503], backoff: "1ms" } },
        ),
      },
      // No ejection and no probe verdict during the test: every first try really goes to east.
      breaker: { maxFailures: 1000 },
      probeIntervalMs: 60_000,
    });
    const body = JSON.stringify({ order: "a".repeat(1000) });
    const sha = createHash("sha256").update(body).digest("hex");
    const posts = await pool(5, 1, () => g.hit("connect.test", "/split/orders", { method: "POST", body, headers: { "content-type": "application/json" } }));
    expect(posts.map((p) => `${p.status}:${p.cluster}`)).toEqual(Array(5).fill("200:west"));
    expect(west.received.map((r) => `${r.method}:${r.bodySha256}`)).toEqual(Array(5).fill(`POST:${sha}`));
    // Each went to east first (a 1/1001 chance per request that it did not).
    expect(g.gw.resilience.breakers.view(backendId("east")).consecutiveFailures).toBeGreaterThanOrEqual(3);

    const single = backendId("east", "single.shop.svc.cluster.local");
    const held = await g.hit("connect.test", "/single/orders", { method: "POST", body, headers: { "content-type": "application/json" } });
    expect(held.status).toBe(502);
    expect(g.gw.resilience.breakers.view(single).consecutiveFailures).toBe(2); // tried twice
    const chunked = await g.hit("connect.test", "/single/orders", { method: "POST", body: Readable.from([Buffer.from(body)]), headers: { "content-type": "application/json" } });
    expect(chunked.status).toBe(502);
    expect(chunked.problem).toBe("upstream-unavailable");
    expect(g.gw.resilience.breakers.view(single).consecutiveFailures).toBe(3); // tried once
  });
});

// ------------------------------------------------------------------ ejection and failover

describe("ejection and failover", () => {
  it("a blackholed cluster is ejected: the next window succeeds > 99.9% on the other cluster, and the healed cluster gets traffic again", async () => {
    const east = closer.add(await startUpstream("east"));
    const west = closer.add(await startUpstream("west"));
    const proxy = closer.add(await startFaultProxy(east.url));
    const g = await gateway({
      clusters: { east: proxy.url, west: west.url },
      routes: { r: route("split.test", { backends: [{ cluster: "east", weight: 50 }, { cluster: "west", weight: 50 }], timeouts: { request: "2s", backendRequest: "200ms" }, retry: { attempts: 1, codes: [504], backoff: "5ms" } }) },
      probeIntervalMs: 100,
      probeTimeoutMs: 100,
      breaker: { minPenaltyMs: 200, maxPenaltyMs: 1000 },
    });
    const begin = vi.spyOn(g.gw.resilience.breakers, "begin");
    const load = steadyLoad(() => g.hit("split.test"), 8);
    try {
      await until("both clusters serve", () => east.requests >= 50 && west.requests >= 50, 10_000);

      await proxy.blackhole();
      const blackholedAt = performance.now();
      // Whichever comes first (breaker or probe) ejects east; the window starts once the probe has
      // failed too, so no half-open try can reach east during it.
      let ejectedMs = NaN;
      const detectedMs = await until(
        "east fails its probe",
        () => {
          if (Number.isNaN(ejectedMs) && g.gw.resilience.breakers.view(backendId("east")).state !== "closed") ejectedMs = performance.now() - blackholedAt;
          return g.gw.prober.state("east")?.alive === false;
        },
        10_000,
      );
      const mark = load.hits.length;
      const eastTriesBefore = begin.mock.calls.filter(([id]) => id === backendId("east")).length;
      const eastUpstreamBefore = east.requests;
      await load.more(2000);
      const window = load.hits.slice(mark, mark + 2000);
      const failed = window.filter((h) => h.status !== 200);
      const eastTries = begin.mock.calls.filter(([id]) => id === backendId("east")).length - eastTriesBefore;
      console.log(
        `[blackhole] east's breaker opened ${ejectedMs.toFixed(0)} ms and its probe failed ${detectedMs.toFixed(0)} ms after the blackhole; ` +
          `failures before detection ${load.hits.slice(0, mark).filter((h) => h.status !== 200).length}; ` +
          `window of 2000: ${failed.length} failed, ${window.filter((h) => h.cluster === "west").length} on west, ${eastTries} tries to east, p99 ${percentile(window.map((h) => h.ms), 99).toFixed(1)} ms`,
      );
      expect(failed.length).toBeLessThanOrEqual(2); // success rate >= 99.9%
      expect(window.filter((h) => h.status === 200).every((h) => h.cluster === "west")).toBe(true);
      expect(eastTries).toBe(0); // not even tried while its probe fails
      expect(east.requests).toBe(eastUpstreamBefore);

      await proxy.pass();
      const healedMs = await until("the healed east receives requests again", () => east.requests > eastUpstreamBefore + 20, 15_000);
      console.log(`[blackhole] east back in rotation ${healedMs.toFixed(0)} ms after healing`);
    } finally {
      await load.stop();
    }
    const tail = await pool(200, 8, () => g.hit("split.test"));
    expect(tail.every((h) => h.status === 200)).toBe(true);
    expect(tail.filter((h) => h.cluster === "east").length).toBeGreaterThan(40); // about half again
  });

  it("failover: [west] on a 100%-east backend: east refused -> served by west (same service); back on east when it returns", async () => {
    const east = closer.add(await startUpstream("east"));
    const west = closer.add(await startUpstream("west"));
    const proxy = closer.add(await startFaultProxy(east.url));
    const g = await gateway({
      clusters: { east: proxy.url, west: west.url },
      routes: { r: route("failover.test", { backends: [{ cluster: "east", weight: 100, failover: ["west"] }] }) },
      probeIntervalMs: 100,
      probeTimeoutMs: 200,
      breaker: { minPenaltyMs: 200, maxPenaltyMs: 1000 },
    });
    const before = await pool(20, 4, () => g.hit("failover.test"));
    expect(before.map((h) => `${h.status}:${h.cluster}`)).toEqual(Array(20).fill("200:east"));

    // East goes down: new connections refused, open ones cut.
    await proxy.refuse();
    proxy.disconnect();
    await until("east fails its probe", () => g.gw.prober.state("east")?.alive === false, 5000);
    const during = await pool(50, 4, () => g.hit("failover.test"));
    expect(during.map((h) => `${h.status}:${h.cluster}`)).toEqual(Array(50).fill("200:west"));
    expect(west.received.every((r) => r.headers.host === `${SERVICE}:8080`)).toBe(true);

    await proxy.pass();
    const back = await until("served by east again", async () => (await g.hit("failover.test")).cluster === "east", 10_000);
    console.log(`[failover] east back ${back.toFixed(0)} ms after it returned`);
    const after = await pool(20, 4, () => g.hit("failover.test"));
    expect(after.map((h) => `${h.status}:${h.cluster}`)).toEqual(Array(20).fill("200:east"));
  });

  it("a half-open probe whose client went away does not leave the backend ejected for good", async () => {
    const east = closer.add(await startUpstream("east", { status: 503 }));
    const west = closer.add(await startUpstream("west"));
    const g = await gateway({
      clusters: { east: east.url, west: west.url },
      routes: { r: route("probe.test", { backends: [{ cluster: "east", weight: 50 }, { cluster: "west", weight: 50 }] }) },
      breaker: { maxFailures: 3, minPenaltyMs: 100, maxPenaltyMs: 200 },
      probeIntervalMs: 60_000,
    });
    const breaker = () => g.gw.resilience.breakers.view(backendId("east"));
    await until("east is ejected", async () => (await g.hit("probe.test"), breaker().state !== "closed"), 5000);
    await until("east's penalty is over", () => breaker().state === "half-open", 5000);

    // East now answers 200, slowly: the next request it gets is the probe, and its client gives up first.
    east.setBehaviour({ delayMs: 500 });
    let probeArrived = false;
    east.events.once("request", () => (probeArrived = true));
    const abandoned = async () => {
      const ctl = new AbortController();
      const t = setTimeout(() => ctl.abort(), 100);
      await request(`${g.gw.url}/`, { dispatcher: g.client, headers: { host: "probe.test" }, signal: ctl.signal })
        .then((r) => r.body.dump())
        .catch(() => undefined)
        .finally(() => clearTimeout(t));
    };
    let sent = 0;
    while (!probeArrived && sent < 200) {
      sent++;
      await abandoned();
    }
    expect(sent).toBeLessThan(200); // the probe went out (and was abandoned)

    // East is healthy and fast again: it must be probed again and readmitted within a few penalties.
    east.setBehaviour({});
    const before = east.requests;
    const readmitted = await until("east gets traffic again", async () => (await g.hit("probe.test"), east.requests > before), 5000).catch(() => null);
    console.log(`[abandoned probe] east breaker ${JSON.stringify(breaker())}; ${readmitted === null ? "never readmitted" : `readmitted after ${readmitted.toFixed(0)} ms`}`);
    expect(readmitted).not.toBeNull();
  });

  it("never removes every backend: with both clusters failing, requests are still attempted (502), never 'no backend'", async () => {
    const g = await gateway({
      clusters: { east: `http://127.0.0.1:${await refusedPort()}`, west: `http://127.0.0.1:${await refusedPort()}` },
      routes: { r: route("down.test", { backends: [{ cluster: "east", weight: 50 }, { cluster: "west", weight: 50 }] }) },
      probeIntervalMs: 100,
      probeTimeoutMs: 100,
      breaker: { minPenaltyMs: 60_000, maxPenaltyMs: 60_000 },
    });
    await pool(40, 4, () => g.hit("down.test"));
    await until(
      "both clusters fail their probes and both backends are ejected",
      () => ["east", "west"].every((c) => g.gw.prober.state(c)?.alive === false && g.gw.resilience.breakers.view(backendId(c)).state === "open"),
      5000,
    );
    const hits = await pool(30, 4, () => g.hit("down.test"));
    expect(hits.map((h) => `${h.status}:${h.problem}`)).toEqual(Array(30).fill("502:upstream-unavailable"));
  });
});

// ------------------------------------------------------------------ the store failing

describe("the store failing", () => {
  it("Redis paused (DEBUG SLEEP 2) and then killed under load fails no data-plane request", async () => {
    const redis = await startRedis({ persistent: true, extraArgs: ["--enable-debug-command", "local"] });
    closer.add({ close: () => redis.stop() });
    const east = closer.add(await startUpstream("east"));
    const g = await gateway({ clusters: { east: east.url }, routes: { r: route("store.test", { backends: [{ cluster: "east" }] }) }, redisUrl: redis.url, redisPrefix: uniquePrefix("pause-kill"), checkIntervalMs: 100 });
    expect(await g.readyz()).toBe(200);
    const load = steadyLoad(() => g.hit("store.test"), 8);
    try {
      await load.more(300);
      const beforeSleep = load.hits.length;
      expect(await redisCommand(redis.port, "DEBUG", "SLEEP", "2")).toBe("+OK"); // answers when the 2 s are over
      const duringSleep = load.hits.length - beforeSleep;
      expect(duringSleep).toBeGreaterThan(100); // traffic flowed while Redis did not answer

      await redis.kill("SIGKILL");
      await until("readyz reports the store down", async () => (await g.readyz()) === 503, 5000);
      await load.more(500);
      await redis.restart();
      await until("readyz reports the store back", async () => (await g.readyz()) === 200, 10_000);
      await load.more(300);
      console.log(`[redis pause/kill] ${duringSleep} requests served during DEBUG SLEEP 2; ${load.hits.length} in all`);
    } finally {
      await load.stop();
    }
    expect(load.failures()).toEqual([]);
  });

  it("fail static at start: store unreachable -> the config file's routes are served, writes 503, readyz 503; when it answers the file is applied and readyz 200", async () => {
    const east = closer.add(await startUpstream("east"));
    const proxy = closer.add(await startFaultProxy(inject("redisUrl")));
    await proxy.refuse();
    const dir = await mkdtemp(path.join(tmpdir(), "isthmus-failstatic-"));
    closer.add({ close: () => rm(dir, { recursive: true, force: true }) });
    const configPath = path.join(dir, "isthmus.yaml");
    await writeFile(
      configPath,
      [
        "clusters:",
        "  east:",
        `    endpoint: ${east.url}`,
        "    trustDomain: east.example",
        "routes:",
        "  static:",
        "    hostnames: [static.test]",
        "    authorization: {unauthenticated: true}",
        "    rules:",
        "      - name: default",
        "        backendRefs:",
        `          - {cluster: east, service: ${SERVICE}, port: 8080, weight: 100}`,
        "",
      ].join("\n"),
    );
    const prefix = uniquePrefix("fail-static");
    const g = await gateway({ configPath, redisUrl: `redis://127.0.0.1:${proxy.port}`, redisPrefix: prefix, checkIntervalMs: 100 });

    expect((await g.hit("static.test")).status).toBe(200);
    expect(await g.readyz()).toBe(503);
    expect(await g.admin("PUT", "/routes/other", route("other.test", { backends: [{ cluster: "east" }] }))).toBe(503);

    const load = steadyLoad(() => g.hit("static.test"), 4);
    try {
      await load.more(200);
      await proxy.pass();
      const readyMs = await until("readyz 200 once Redis answers", async () => (await g.readyz()) === 200, 15_000);
      await until("the file is applied to the store", async () => (await g.admin("GET", "/routes/static")) === 200, 10_000);
      await load.more(300);
      console.log(`[fail static] ready ${readyMs.toFixed(0)} ms after Redis became reachable`);
    } finally {
      await load.stop();
    }
    expect(await g.admin("PUT", "/routes/other", route("other.test", { backends: [{ cluster: "east" }] }))).toBe(201);
    const failures = new Map<string, number>();
    for (const h of load.failures()) failures.set(`${h.status}:${h.problem}`, (failures.get(`${h.status}:${h.problem}`) ?? 0) + 1);
    console.log(`[fail static] ${load.hits.length} requests, failures: ${JSON.stringify(Object.fromEntries(failures))}`);
    expect(Object.fromEntries(failures)).toEqual({});
  });
});

// ------------------------------------------------------------------ limits

describe("limits", () => {
  it("a body over limits.maxBodyBytes gets 413 problem+json (Content-Length: up front; chunked: mid-stream), and the gateway keeps serving", async () => {
    const east = closer.add(await startUpstream("east"));
    const g = await gateway({ clusters: { east: east.url }, routes: { r: route("limits.test", { backends: [{ cluster: "east" }] }) }, limits: { maxBodyBytes: 1 * MiB } });

    const big = await upload(g.gw.port, "limits.test", 2 * MiB, false);
    expect("status" in big ? big.status : big.cut).toBe(413);
    if ("status" in big) {
      expect(big.headers["content-type"]).toMatch(/^application\/problem\+json/);
      expect((JSON.parse(big.body) as { type: string }).type).toBe(`${PROBLEM}payload-too-large`);
    }
    expect(east.requests).toBe(0); // refused before anything was forwarded

    const within = await upload(g.gw.port, "limits.test", 512 * KiB, false);
    expect("status" in within && within.status).toBe(200);

    const chunked = await upload(g.gw.port, "limits.test", 2 * MiB, true);
    console.log(`[limits] chunked 2 MiB over a 1 MiB limit: ${"status" in chunked ? chunked.status : `cut (${chunked.cut})`}`);
    if ("status" in chunked) expect(chunked.status).toBe(413);
    expect(east.received.filter((r) => r.bodyBytes > MiB)).toEqual([]); // the upstream never got more than the limit
    expect((await g.hit("limits.test")).status).toBe(200);
  });

  it("maxInFlightPerCluster: 5 with a slow upstream and 20 concurrent requests: the rest get 503 + Retry-After at once, nothing queued", async () => {
    const slow = closer.add(await startUpstream("slow", { delayMs: 300 }));
    const g = await gateway({ clusters: { slow: slow.url }, routes: { r: route("slow.test", { backends: [{ cluster: "slow" }] }) }, limits: { maxInFlightPerCluster: 5 } });
    const rssBefore = process.memoryUsage().rss;
    const rounds: Hit[][] = [];
    for (let round = 0; round < 10; round++) rounds.push(await Promise.all(Array.from({ length: 20 }, () => g.hit("slow.test"))));
    const rssAfter = process.memoryUsage().rss;
    const all = rounds.flat();
    const ok = all.filter((h) => h.status === 200);
    const rejected = all.filter((h) => h.status === 503);
    console.log(
      `[limits] 10 rounds of 20 concurrent, limit 5: ${ok.length} ok, ${rejected.length} rejected (p99 ${percentile(rejected.map((h) => h.ms), 99).toFixed(1)} ms), ` +
        `RSS ${(rssBefore / MiB).toFixed(0)} -> ${(rssAfter / MiB).toFixed(0)} MiB`,
    );
    expect(ok.length + rejected.length).toBe(200);
    for (const r of rounds) expect(r.filter((h) => h.status === 200).length).toBeLessThanOrEqual(5 * 2); // a slot may be reused within a round
    expect(ok.length).toBeGreaterThanOrEqual(50);
    expect(rejected.length).toBeGreaterThanOrEqual(100);
    expect(rejected.every((h) => h.headers["retry-after"] === "1" && h.problem === "overloaded")).toBe(true);
    expect(rejected.every((h) => h.ms < 300)).toBe(true); // answered at once, not after a queue
    expect(slow.requests).toBe(ok.length);
    expect(g.gw.resilience.limits.inFlight()).toBe(0);
    expect(rssAfter - rssBefore).toBeLessThan(64 * MiB);
  });

  it("request headers over 16 KiB get 431", async () => {
    const east = closer.add(await startUpstream("east"));
    const g = await gateway({ clusters: { east: east.url }, routes: { r: route("limits.test", { backends: [{ cluster: "east" }] }) } });
    const line = await rawStatusLine(g.gw.port, `GET / HTTP/1.1\r\nHost: limits.test\r\nX-Big: ${"a".repeat(17 * KiB)}\r\n\r\n`);
    expect(line).toMatch(/^HTTP\/1\.1 431 /);
    expect(east.requests).toBe(0);
    expect((await g.hit("limits.test")).status).toBe(200);
  });
});

// ------------------------------------------------------------------ slow clients next to normal ones

describe("slow clients do not hurt normal ones", () => {
  // The issue's requirement: other clients' latency stays bounded. Generous, so a loaded 2-core CI
  // box does not flake: p99 of 200 normal requests under 250 ms while 50 slowloris sockets dribble
  // headers and a 1 GB upload streams through the same gateway.
  const P99_BOUND_MS = 250;
  const SLOWLORIS = 50;
  const UPLOAD_BYTES = 1_000_000_000;

  it(
    `50 slowloris sockets and a 1 GB upload: normal p99 < ${P99_BOUND_MS} ms; slowloris closed within 15 s; the upload streams whole`,
    async () => {
      const worker = new Worker(UPLOAD_WORKER, { eval: true, workerData: { announceAt: 20 * MiB } });
      closer.add({ close: () => worker.terminate().then(() => undefined) });
      const sinkPort = await messageOf<number>(worker, "sinkPort");
      const east = closer.add(await startUpstream("east"));
      const g = await gateway({
        clusters: { east: east.url, sink: `http://127.0.0.1:${sinkPort}` },
        routes: { normal: route("normal.test", { backends: [{ cluster: "east" }] }), upload: route("upload.test", { backends: [{ cluster: "sink" }] }) },
        limits: { maxBodyBytes: 2 * 1024 * MiB },
      });
      for (let i = 0; i < 20; i++) expect((await g.hit("normal.test")).status).toBe(200); // warm the pools

      // Slowloris: a header byte every 200 ms, never finishing the header block.
      const lorisSockets: net.Socket[] = [];
      closer.add({ close: async () => lorisSockets.forEach((s) => s.destroy()) });
      const lorisClosed = Array.from(
        { length: SLOWLORIS },
        () =>
          new Promise<number>((resolve) => {
            const opened = performance.now();
            const s = net.connect(g.gw.port, "127.0.0.1", () => s.write("GET / HTTP/1.1\r\nHost: normal.test\r\nX-Slow: "));
            lorisSockets.push(s);
            const drip = setInterval(() => s.writable && s.write("a"), 200);
            s.on("error", () => undefined);
            s.on("close", () => {
              clearInterval(drip);
              resolve(performance.now() - opened);
            });
          }),
      );

      // The upload, from the worker to the worker's sink through the gateway.
      const streaming = messageOf<true>(worker, "streaming");
      const uploadDone = messageOf<{ status: number; body: string; seconds: number }>(worker, "done");
      let uploadEndedAt = Infinity;
      void uploadDone.then(() => (uploadEndedAt = performance.now()));
      worker.postMessage({ upload: { port: g.gw.port, host: "upload.test", total: UPLOAD_BYTES } });
      await streaming;

      // 200 normal requests, one every 5 ms, while both are going on.
      const normal = new Agent({ connections: 16, keepAliveTimeout: 10_000 });
      closer.add({ close: () => normal.destroy().catch(() => undefined) });
      const latencies: Array<Promise<number>> = [];
      let overlapped = 0;
      for (let i = 0; i < 200; i++) {
        if (performance.now() < uploadEndedAt) overlapped++;
        latencies.push(
          (async () => {
            const t = performance.now();
            const res = await request(`${g.gw.url}/`, { dispatcher: normal, headers: { host: "normal.test" } });
            await res.body.dump();
            if (res.statusCode !== 200) throw new Error(`normal request got ${res.statusCode}`);
            return performance.now() - t;
          })(),
        );
        await new Promise((r) => setTimeout(r, 5));
      }
      const ms = await Promise.all(latencies);
      const p50 = percentile(ms, 50);
      const p99 = percentile(ms, 99);

      const lorisClosedAfter = await Promise.all(lorisClosed);
      const upload = await uploadDone;
      console.log(
        `[slow clients] normal requests p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${Math.max(...ms).toFixed(1)} ms (bound ${P99_BOUND_MS} ms), ${overlapped}/200 sent during the upload; ` +
          `upload ${(UPLOAD_BYTES / 1e6).toFixed(0)} MB in ${upload.seconds.toFixed(1)} s (${(UPLOAD_BYTES / 1e6 / upload.seconds).toFixed(0)} MB/s); ` +
          `slowloris closed after ${(Math.min(...lorisClosedAfter) / 1000).toFixed(1)}-${(Math.max(...lorisClosedAfter) / 1000).toFixed(1)} s`,
      );
      expect(p99).toBeLessThan(P99_BOUND_MS);
      expect(overlapped).toBeGreaterThanOrEqual(100); // the measurement really ran next to the upload
      expect(Math.max(...lorisClosedAfter)).toBeLessThan(15_000);
      expect(Math.min(...lorisClosedAfter)).toBeGreaterThan(9_000); // by headersTimeout, not earlier
      expect(upload.status).toBe(200);
      expect(JSON.parse(upload.body)).toEqual({ bytes: UPLOAD_BYTES });
    },
    60_000,
  );
});
