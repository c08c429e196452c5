// The Worker's Cron Trigger handler: each scheduled() event runs the background round (version
// check, metric flush, health probes, bundle and secret refresh, remote write, rollout tick) as
// waitUntil work. Repeated events carry a canary rollout through to Succeeded.
import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { RolloutView } from "../../src/admin/rollouts.ts";
import { createWorker, type WorkerEnv, type WorkerHandler } from "../../src/runtime/worker.ts";
import { admin, clusterDoc, dataRequest, isolatedEnv, send, sleep, upstreams } from "./helpers.ts";

const STABLE = { cluster: "east", service: "checkout.shop.svc.cluster.local", port: 8080 };
const CANARY = { cluster: "west", service: "checkout-v2.shop.svc.cluster.local", port: 8080 };

async function cron(handler: WorkerHandler, wenv: WorkerEnv): Promise<void> {
  const ctx = createExecutionContext();
  await handler.scheduled(createScheduledController({ cron: "* * * * *", scheduledTime: Date.now() }), wenv, ctx);
  await waitOnExecutionContext(ctx);
}

describe("the scheduled (cron) handler", () => {
  it("advances a rollout step by step to Succeeded, and probes the clusters", async () => {
    // Traffic-driven rollout ticks off: only the cron moves the rollout here.
    const wenv = isolatedEnv("cron", { ISTHMUS_ROLLOUT_TICK: "0s", ISTHMUS_METRICS_FLUSH: "100ms" });
    const handler = createWorker();
    const up = upstreams();
    expect((await admin(handler, wenv, "PUT", "/clusters/east", clusterDoc(up.east, "east.example", { health: { path: "/ready", interval: "1s" } }))).status).toBe(201);
    expect((await admin(handler, wenv, "PUT", "/clusters/west", clusterDoc(up.west, "west.example", { health: { path: "/ready", interval: "1s" } }))).status).toBe(201);
    const route = { hostnames: ["checkout.shop"], authorization: { unauthenticated: true }, rules: [{ name: "default", backendRefs: [{ ...STABLE, weight: 100 }] }] };
    expect((await admin(handler, wenv, "PUT", "/routes/checkout", route)).status).toBe(201);

    const created = await admin<RolloutView>(handler, wenv, "POST", "/rollouts", {
      name: "checkout-v2",
      route: "checkout",
      rule: "default",
      stable: STABLE,
      canary: CANARY,
      steps: [{ setWeight: 20 }, { setWeight: 100 }],
      analysis: { interval: "200ms", threshold: 2, minRequests: 50, successRate: { min: 0.99 }, onNoData: "pass" },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);

    // Requests alone do not move it (ROLLOUT_TICK 0s): still at its first state.
    const a = await send(handler, wenv, dataRequest("checkout.shop"));
    expect(a.res.status).toBe(200);
    await a.res.body?.cancel();
    await a.settled;
    expect((await admin<RolloutView>(handler, wenv, "GET", "/rollouts/checkout-v2")).body.status.canaryWeight).toBe(0);

    const phases: string[] = [];
    let view: RolloutView | undefined;
    for (let i = 0; i < 40; i++) {
      await cron(handler, wenv);
      view = (await admin<RolloutView>(handler, wenv, "GET", "/rollouts/checkout-v2")).body;
      phases.push(`${view.status.phase}:${view.status.canaryWeight}`);
      if (view.status.phase !== "Progressing") break;
      await sleep(250);
    }
    expect(view?.status.phase, phases.join(" ")).toBe("Succeeded");
    expect(view?.status).toMatchObject({ canaryWeight: 100, weights: { stable: 0, canary: 100 } });
    // It went through the 20 % step first.
    expect(phases.some((p) => p.endsWith(":20"))).toBe(true);

    // Every weight change was a route revision in the store; the isolate's table follows it.
    const stored = (await admin<{ rules: Array<{ backendRefs: Array<{ cluster: string; weight: number }> }> }>(handler, wenv, "GET", "/routes/checkout")).body;
    expect(stored.rules[0]?.backendRefs.map((b) => [b.cluster, b.weight])).toEqual([
      ["east", 0],
      ["west", 100],
    ]);
    const served = await send(handler, wenv, dataRequest("checkout.shop"));
    expect(((await served.res.json()) as { cluster: string }).cluster).toBe("west");
    await served.settled;

    const gw = await handler.gateway(wenv);
    expect(gw.prober.state("east")?.alive).toBe(true);
    expect(gw.prober.state("west")?.alive).toBe(true);
    expect(gw.controller.ticks).toBeGreaterThanOrEqual(2);
  });
});
