// The bench's open-loop client (bench/openloop.c) against real HTTP servers on loopback: it must
// send the schedule it is given, read every framing an upstream may use, and count what failed,
// or the fixed-rate figures in bench/RESULTS.md mean nothing.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { CLIENT_STALL_US, fixedRate, pooled, unstalledRounds } from "../../bench/fixed-rate.ts";

let server: Server | null = null;

afterEach(async () => {
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = null;
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse, n: number) => void): Promise<{ origin: string; seen: IncomingMessage[] }> {
  const seen: IncomingMessage[] = [];
  server = createServer((req, res) => {
    seen.push(req);
    handler(req, res, seen.length);
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server?.listen(0, "127.0.0.1", r));
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

// 400 req/s for 0.5 s after 0.25 s of warm-up: 300 requests sent, the last 200 counted.
const run = (origin: string, headers?: Record<string, string>) => fixedRate({ origin, ratePerS: 400, durationS: 0.5, warmupS: 0.25, connections: 4, headers });

describe("bench/openloop.c", () => {
  it("sends the whole schedule with the given headers and times every counted request", async () => {
    const { origin, seen } = await serve((_req, res) => res.end('{"ok":true}'));
    const r = await run(origin, { host: "full.isthmus", "x-session": "user-4711" });
    expect(seen).toHaveLength(300);
    expect(seen.every((q) => q.headers.host === "full.isthmus" && q.headers["x-session"] === "user-4711" && q.method === "GET" && q.url === "/")).toBe(true);
    expect(r.requests).toBe(200);
    expect(r.errors).toBe(0);
    expect(r.latenciesUs).toHaveLength(200);
    expect(Array.from(r.latenciesUs).every((l) => l > 0 && l < 1_000_000)).toBe(true);
    expect(r.p50us).toBeLessThanOrEqual(r.p99us);
    expect(r.p99us).toBeLessThanOrEqual(r.maxUs);
    // At 400 req/s over 4 connections nothing queues: about 400 req/s were answered.
    expect(r.rps).toBeGreaterThan(300);
    expect(r.rps).toBeLessThan(500);
  });

  it("reads chunked answers written in pieces, and keeps the connections", async () => {
    const sockets = new Set<unknown>();
    const { origin } = await serve((req, res) => {
      sockets.add(req.socket);
      res.write("first piece,");
      setImmediate(() => {
        // Blank lines inside the data: only the chunk sizes say where the body ends.
        res.write("a\r\n\r\nb".repeat(1000));
        res.end(" and the last");
      });
    });
    const r = await run(origin);
    expect(r.errors).toBe(0);
    expect(r.requests).toBe(200);
    expect(sockets.size).toBeLessThanOrEqual(4);
  });

  it("follows Connection: close by opening a new connection", async () => {
    const sockets = new Set<unknown>();
    const { origin, seen } = await serve((req, res) => {
      sockets.add(req.socket);
      res.setHeader("connection", "close");
      res.end("bye");
    });
    const r = await run(origin);
    expect(r.errors).toBe(0);
    expect(seen).toHaveLength(300);
    expect(sockets.size).toBeGreaterThan(4);
  });

  it("counts answers outside 2xx as errors", async () => {
    const { origin } = await serve((_req, res) => {
      res.statusCode = 503;
      res.end("overloaded");
    });
    const r = await run(origin);
    expect(r.requests).toBe(200);
    expect(r.errors).toBe(200);
  });

  it("counts a connection cut before the answer as an error, and goes on with a new one", async () => {
    const { origin } = await serve((req, res, n) => {
      if (n % 5 === 0) req.socket.destroy();
      else res.end("ok");
    });
    const r = await run(origin);
    expect(r.requests).toBe(200);
    // Every fifth request received is cut: about 40 of the 200 counted.
    expect(r.errors).toBeGreaterThanOrEqual(30);
    expect(r.errors).toBeLessThanOrEqual(50);
  });

  it("refuses to run against a port nothing listens on", async () => {
    const { origin } = await serve((_req, res) => res.end());
    await new Promise<void>((r) => server?.close(() => r()));
    server = null;
    await expect(run(origin)).rejects.toThrow(/openloop exited/);
  });
});

describe("pooled quantiles", () => {
  it("pools rounds before taking quantiles", () => {
    const a = Float64Array.from({ length: 100 }, (_, i) => i + 1); // 1..100
    const b = Float64Array.from({ length: 100 }, (_, i) => 1000 + i); // 1000..1099
    const p = pooled([a, b]);
    expect(p.requests).toBe(200);
    expect(p.p50us).toBe(1000);
    expect(p.p99us).toBe(1098);
    expect(p.maxUs).toBe(1099);
    expect(pooled([]).p99us).toBeNaN();
  });

  it("counts the share of requests above 500 µs and 1 ms, the thresholds themselves not included", () => {
    const p = pooled([Float64Array.from([100, 500, 501, 999]), Float64Array.from([1000, 1000.5, 4000, 20])]);
    expect(p.over500us).toBe(5 / 8);
    expect(p.over1ms).toBe(2 / 8);
    expect(pooled([Float64Array.from([1, 2, 3])]).over500us).toBe(0);
    expect(pooled([]).over1ms).toBeNaN();
  });
});

describe("rounds for the tail goal", () => {
  it("leaves out the rounds in which the load generator sent late, the 1 ms threshold itself kept", () => {
    const rounds = [{ sendLagP99us: 40, n: 1 }, { sendLagP99us: 38_000, n: 2 }, { sendLagP99us: CLIENT_STALL_US, n: 3 }, { sendLagP99us: CLIENT_STALL_US + 1, n: 4 }];
    expect(unstalledRounds(rounds).map((r) => r.n)).toEqual([1, 3]);
  });

  it("keeps every round when none kept time, so a target still has figures", () => {
    const rounds = [{ sendLagP99us: 5000 }, { sendLagP99us: 2000 }];
    expect(unstalledRounds(rounds)).toEqual(rounds);
    expect(unstalledRounds([])).toEqual([]);
  });
});
