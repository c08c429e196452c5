// isthmus stat: success rate, RPS and latency quantiles per route and backend cluster, computed by
// the real binary from two scrapes of the real gateway's fleet-wide metrics while traffic flows.
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningGateway } from "../../src/runtime/node.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";
import { buildConfigWith, cli, json, startCli, startGateway, type CliResult } from "./helpers.ts";

let gw: RunningGateway;
let east: Upstream;
let west: Upstream;
const client = new Agent({ connections: 8 });

beforeAll(async () => {
  east = await startUpstream("east");
  west = await startUpstream("west", { status: 503 });
  gw = await startGateway(
    buildConfigWith(
      { east: { endpoint: east.url, trustDomain: "east.example" }, west: { endpoint: west.url, trustDomain: "west.example" } },
      {
        checkout: {
          hostnames: ["checkout.shop"],
          authorization: { unauthenticated: true },
          rules: [{ name: "default", backendRefs: [{ cluster: "east", service: "checkout.shop", weight: 1 }, { cluster: "west", service: "checkout.shop", weight: 1 }], retry: { attempts: 0 } }],
        },
        idle: { hostnames: ["idle.shop"], authorization: { unauthenticated: true }, rules: [{ backendRefs: [{ cluster: "east", service: "idle.shop" }] }] },
      },
    ),
    // west keeps taking its share even though it fails: no ejection by the circuit breaker.
    { breaker: { maxFailures: 1_000_000 } },
  );
});

afterAll(async () => {
  await client.close();
  await gw?.close();
  await east?.close();
  await west?.close();
});

/** Runs the CLI while sending requests to checkout.shop until it exits. */
async function withTraffic(args: string[]): Promise<{ result: CliResult; sent: number }> {
  const run = startCli(args, { url: gw.url });
  let done = false;
  void run.done.then(() => (done = true));
  let sent = 0;
  while (!done) {
    const res = await request(`${gw.url}/cart`, { dispatcher: client, headers: { host: "checkout.shop" } });
    await res.body.text();
    sent++;
    await new Promise((r) => setTimeout(r, 5));
  }
  return { result: await run.done, sent };
}

describe("isthmus stat", () => {
  it("shows each route and backend cluster with its success rate, RPS and latency", async () => {
    const { result, sent } = await withTraffic(["stat", "--window", "1500ms"]);
    expect(result.code, result.stderr).toBe(0);
    expect(sent).toBeGreaterThan(20);
    const lines = result.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^ROUTE\s+CLUSTER\s+SUCCESS\s+RPS\s+LATENCY_P50\s+LATENCY_P95\s+LATENCY_P99$/);
    expect(lines).toContainEqual(expect.stringMatching(/^checkout\s+east\s+100\.00%\s+\d+\.\drps\s+\d+(\.\d)?ms\s+\d+(\.\d)?ms\s+\d+(\.\d)?ms$/));
    expect(lines).toContainEqual(expect.stringMatching(/^checkout\s+west\s+0\.00%\s+\d+\.\drps\s+\d+(\.\d)?ms\s+\d+(\.\d)?ms\s+\d+(\.\d)?ms$/));
    // A route without traffic in the window is listed, with dashes.
    expect(lines).toContainEqual(expect.stringMatching(/^idle\s+east\s+-\s+-\s+-\s+-\s+-$/));
  });

  it("--json: the numbers, filtered by route and cluster", async () => {
    const { result, sent } = await withTraffic(["stat", "checkout", "--cluster", "east", "--window", "1s", "--json"]);
    expect(result.code, result.stderr).toBe(0);
    const body = json<{ windowSeconds: number; items: Array<Record<string, number | string | null>> }>(result);
    expect(body.windowSeconds).toBeGreaterThanOrEqual(1);
    expect(body.items).toHaveLength(1);
    const row = body.items[0] as Record<string, number | string | null>;
    expect(row).toMatchObject({ route: "checkout", cluster: "east", successRate: 1, failures: 0 });
    expect(row.requests as number).toBeGreaterThan(0);
    expect(row.requests as number).toBeLessThanOrEqual(sent);
    expect(row.rps as number).toBeGreaterThan(0);
    for (const q of ["latencyMsP50", "latencyMsP95", "latencyMsP99"]) expect(typeof row[q]).toBe("number");
    expect(row.latencyMsP50 as number).toBeLessThanOrEqual(row.latencyMsP99 as number);
  });

  it("an unknown route: exit 1", async () => {
    const r = await cli(["stat", "nope", "--window", "100ms"], { url: gw.url });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('route "nope" does not exist');
  });
});
