// Metrics in the Worker: recorded in the isolate on the data plane, flushed to the store as
// waitUntil work after the responses (throttled per isolate), and visible from another isolate.
import { describe, expect, it } from "vitest";
import { createWorker } from "../../src/runtime/worker.ts";
import { admin, clusterDoc, dataRequest, isolatedEnv, send, upstreams } from "./helpers.ts";

/** The value of one exposition line whose name and labels include all of `parts`. */
function sample(text: string, name: string, parts: string[]): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && parts.every((p) => l.includes(p)));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

describe("metrics in the Worker", () => {
  it("flushes the recorded counts with waitUntil after the responses; another isolate reads them from the store", async () => {
    const wenv = isolatedEnv("metrics", { ISTHMUS_METRICS_FLUSH: "200ms" });
    const isolateA = createWorker();
    const up = upstreams();
    expect((await admin(isolateA, wenv, "PUT", "/clusters/east", clusterDoc(up.east, "east.example"))).status).toBe(201);
    const route = { hostnames: ["metered.shop"], authorization: { unauthenticated: true }, rules: [{ name: "default", backendRefs: [{ cluster: "east", service: "metered.shop.svc.cluster.local", port: 8080, weight: 100 }] }] };
    expect((await admin(isolateA, wenv, "PUT", "/routes/metered", route)).status).toBe(201);

    const settled: Array<Promise<void>> = [];
    for (let i = 0; i < 30; i++) {
      const a = await send(isolateA, wenv, dataRequest("metered.shop", `/n/${i}`));
      expect(a.res.status).toBe(200);
      await a.res.body?.cancel();
      settled.push(a.settled);
    }
    // Everything the requests left running after their responses: the throttled flushes.
    await Promise.all(settled);
    const gwA = await isolateA.gateway(wenv);
    expect(gwA.flusher.backlog).toBe(false);
    // Throttled: far fewer flushes than requests.
    expect(gwA.flusher.flushes).toBeGreaterThanOrEqual(1);
    expect(gwA.flusher.flushes).toBeLessThan(10);

    // A second isolate (its own gateway, nothing recorded) sees the fleet totals in the store.
    const isolateB = createWorker();
    const { res: text } = await send(isolateB, wenv, new Request("https://gateway.test/_isthmus/v1/metrics", { headers: { authorization: "Bearer workers-test-admin-token" } }));
    expect(text.status).toBe(200);
    const body = await text.text();
    const labels = ['route_name="metered"', 'dst_target_cluster="east"'];
    expect(sample(body, "request_total", labels)).toBe(30);
    expect(sample(body, "response_total", [...labels, 'classification="success"', 'status_code="200"'])).toBe(30);
    expect(sample(body, "response_latency_ms_count", labels)).toBe(30);
  });
});
