// Forwarding with the fetch upstream client inside workerd, on the embedded memory store (no
// ISTHMUS_REDIS_URL): request bodies stream out, response bodies stream back and end the exchange
// only when read (or cancelled), redirects go to the client, failures become 502/504.
import { beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../../src/gateway.ts";
import { createWorker, type WorkerEnv } from "../../src/runtime/worker.ts";
import { admin, clusterDoc, dataRequest, isolatedEnv, seen, send, upstreams, type Upstreams } from "./helpers.ts";

const CLUSTERS = ["east", "echo", "redirect", "slow", "stream", "cookies", "refused"] as const;
const handler = createWorker();
let wenv: WorkerEnv;
let gw: Gateway;

beforeAll(async () => {
  wenv = isolatedEnv("forwarding", { ISTHMUS_REDIS_URL: undefined, ISTHMUS_METRICS_FLUSH: "100ms" });
  const up: Upstreams = upstreams();
  for (const name of CLUSTERS) {
    expect((await admin(handler, wenv, "PUT", `/clusters/${name}`, clusterDoc(up[name], `${name}.example`))).status).toBe(201);
    const route = {
      hostnames: [`${name}.fwd`],
      authorization: { unauthenticated: true },
      rules: [{ name: "default", backendRefs: [{ cluster: name, service: `${name}.svc.cluster.local`, port: 8080, weight: 100 }], timeouts: { request: "5s", backendRequest: "300ms" } }],
    };
    expect((await admin(handler, wenv, "PUT", `/routes/${name}`, route)).status).toBe(201);
  }
  gw = await handler.gateway(wenv);
});

async function sha256(data: Uint8Array): Promise<string> {
  return [...new Uint8Array(await crypto.subtle.digest("SHA-256", data))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

describe("forwarding with fetch in workerd", () => {
  it("serves from the in-memory store when ISTHMUS_REDIS_URL is unset", async () => {
    const { res } = await send(handler, wenv, new Request("https://gateway.test/_isthmus/readyz"));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: "ready", store: { kind: "memory" }, routingTable: { routes: CLUSTERS.length } });
  });

  it("applies a declarative config given as ISTHMUS_CONFIG text", async () => {
    const configured = createWorker();
    const cenv = isolatedEnv("config", {
      ISTHMUS_REDIS_URL: undefined,
      ISTHMUS_CONFIG: [
        "clusters:",
        "  east:",
        `    endpoint: ${upstreams().east}`,
        "    trustDomain: east.example",
        "routes:",
        "  declared:",
        "    hostnames: [declared.fwd]",
        "    authorization: { unauthenticated: true }",
        "    rules:",
        "      - name: default",
        "        backendRefs: [{ cluster: east, service: declared.svc.cluster.local, port: 8080, weight: 100 }]",
      ].join("\n"),
    });
    const { res } = await send(configured, cenv, dataRequest("declared.fwd", "/"));
    expect(res.status).toBe(200);
    expect(((await res.json()) as { cluster: string }).cluster).toBe("east");
  });

  it("streams a 1 MiB request body to the upstream and its echo back", async () => {
    const id = crypto.randomUUID();
    const chunk = new Uint8Array(16 * 1024);
    const sent = new Uint8Array(64 * chunk.length);
    for (let i = 0; i < 64; i++) sent.set(chunk.fill(i), i * chunk.length);
    let i = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (i === 64) c.close();
        else c.enqueue(sent.slice(i * chunk.length, ++i * chunk.length));
      },
    });
    const { res } = await send(handler, wenv, dataRequest("echo.fwd", "/upload?x=1", { method: "POST", body, headers: { "x-test-case": id, "content-type": "application/octet-stream" }, duplex: "half" } as RequestInit));
    expect(res.status).toBe(200);
    expect(res.headers.get("x-isthmus-route-revision")).toBe("1");
    const echoed = new Uint8Array(await res.arrayBuffer());
    expect(echoed.byteLength).toBe(sent.byteLength);
    expect(await sha256(echoed)).toBe(await sha256(sent));
    const [rec] = await seen(id);
    expect(rec).toMatchObject({ method: "POST", path: "/upload?x=1", bodyBytes: sent.byteLength, bodySha256: await sha256(sent) });
  });

  it("streams the response body and ends the exchange when it is read to the end", async () => {
    const { res } = await send(handler, wenv, dataRequest("stream.fwd", "/big"));
    expect(res.status).toBe(200);
    // Headers passed on, body still flowing: the exchange is still in flight.
    expect(gw.resilience.limits.inFlight("stream")).toBe(1);
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect(bytes.byteLength).toBe(64 * 1024);
    expect(gw.resilience.limits.inFlight("stream")).toBe(0);
  });

  it("ends the exchange when the client cancels the body midway", async () => {
    const { res } = await send(handler, wenv, dataRequest("stream.fwd", "/big"));
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    expect((await reader.read()).done).toBe(false);
    expect(gw.resilience.limits.inFlight("stream")).toBe(1);
    await reader.cancel();
    expect(gw.resilience.limits.inFlight("stream")).toBe(0);
  });

  it("passes a redirect to the client instead of following it", async () => {
    const { res } = await send(handler, wenv, dataRequest("redirect.fwd", "/old"));
    expect(res.status).toBe(302);
    expect(res.headers.get("location")).toBe("https://elsewhere.example/next");
    await res.body?.cancel();
    expect(gw.resilience.limits.inFlight("redirect")).toBe(0);
  });

  it("passes repeated Set-Cookie headers on one by one", async () => {
    const { res } = await send(handler, wenv, dataRequest("cookies.fwd", "/"));
    expect(res.status).toBe(200);
    expect(res.headers.getSetCookie()).toEqual(["a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Path=/", "b=2; HttpOnly"]);
    await res.body?.cancel();
  });

  it("answers HEAD without a body", async () => {
    const { res } = await send(handler, wenv, dataRequest("east.fwd", "/", { method: "HEAD" }));
    expect(res.status).toBe(200);
    expect(res.body).toBeNull();
    expect(gw.resilience.limits.inFlight("east")).toBe(0);
  });

  it("answers 502 when the upstream refuses the connection", async () => {
    const { res } = await send(handler, wenv, dataRequest("refused.fwd", "/"));
    expect(res.status).toBe(502);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
    expect(await res.json()).toMatchObject({ status: 502, cluster: "refused" });
    expect(gw.resilience.limits.inFlight("refused")).toBe(0);
  });

  it("answers 504 when the upstream sends no headers within backendRequest", async () => {
    const t0 = Date.now();
    const { res } = await send(handler, wenv, dataRequest("slow.fwd", "/"));
    expect(res.status).toBe(504);
    expect(await res.json()).toMatchObject({ status: 504, cluster: "slow" });
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(gw.resilience.limits.inFlight("slow")).toBe(0);
  });
});
