// globalSetup of vitest.workers.config.ts, run in Node before workerd starts: a real redis-server
// (and a second one that speaks only TLS), real HTTP upstreams on 127.0.0.1
// (test/helpers/upstream.ts), a control server that tells the tests what the upstreams received,
// and a real ES256 signing key for the gateway. Their URLs and values reach the Worker as bindings
// (vitest.workers.config.ts) through `provide`.
import { rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import type { TestProject } from "vitest/node";
import { makeKey } from "../helpers/identity.ts";
import { freePort, startRedis, type RedisServer } from "../helpers/redis-server.ts";
import { refusedPort, startUpstream, type Upstream, type UpstreamBehaviour } from "../helpers/upstream.ts";

/** Upstreams by name, each with a fixed behaviour (test files run in parallel: nothing is switched at run time). */
const UPSTREAMS: Record<string, UpstreamBehaviour> = {
  east: {},
  west: {},
  echo: { echoBody: true },
  redirect: { status: 302, headers: { location: "https://elsewhere.example/next" } },
  slow: { delayMs: 5_000 },
  stream: { stream: { chunks: 64, chunkBytes: 1024 } },
  cookies: { headers: { "set-cookie": ["a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Path=/", "b=2; HttpOnly"] } },
};

declare module "vitest" {
  export interface ProvidedContext {
    redisUrl: string;
    /** rediss://localhost:<port>, certificate from a CA made for this run. */
    tlsRedisUrl: string;
    upstreams: Record<string, string>;
    controlUrl: string;
    signingKeyJwk: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const stops: Array<() => Promise<void>> = [];
  const teardown = async () => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  };
  try {
    const external = process.env.ISTHMUS_TEST_REDIS_URL;
    const redis = external ? null : await startRedis();
    if (redis) stops.push(() => redis.stop());
    const tls = await startTlsRedis();
    stops.push(() => tls.stop());
    const upstreams: Record<string, Upstream> = {};
    for (const [name, behaviour] of Object.entries(UPSTREAMS)) {
      const u = await startUpstream(name, behaviour);
      upstreams[name] = u;
      stops.push(() => u.close());
    }
    const control = await startControl(upstreams);
    stops.push(
      () =>
        new Promise<void>((resolve) => {
          control.close(() => resolve());
          control.closeAllConnections();
        }),
    );
    const key = await makeKey("ES256", "workers-gateway-1");

    project.provide("redisUrl", external ?? (redis?.url as string));
    project.provide("tlsRedisUrl", tls.url);
    project.provide("upstreams", { ...Object.fromEntries(Object.entries(upstreams).map(([n, u]) => [n, u.url])), refused: `http://127.0.0.1:${await refusedPort()}` });
    project.provide("controlUrl", `http://127.0.0.1:${(control.address() as AddressInfo).port}`);
    project.provide("signingKeyJwk", JSON.stringify(key.privateJwk));
    return teardown;
  } catch (err) {
    await teardown();
    throw err;
  }
}

/**
 * GET /seen?case=<id>: what the upstreams received for requests carrying `x-test-case: <id>`
 * (the workerd tests cannot see the upstreams' memory otherwise).
 * GET /bundle/<base64url of a JSON document>: serves that document, a stand-in SPIFFE bundle endpoint.
 */
async function startControl(upstreams: Record<string, Upstream>): Promise<Server> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://control");
    if (url.pathname.startsWith("/bundle/")) {
      res.writeHead(200, { "content-type": "application/json" }).end(Buffer.from(url.pathname.slice("/bundle/".length), "base64url"));
      return;
    }
    if (url.pathname !== "/seen") {
      res.writeHead(404).end();
      return;
    }
    const id = url.searchParams.get("case") ?? "";
    const records = Object.values(upstreams).flatMap((u) => u.received.filter((r) => r.headers["x-test-case"] === id));
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(records));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return server;
}

/**
 * A redis-server listening only with TLS, with the certificate vitest.workers.config.ts made (its
 * CA is in NODE_EXTRA_CA_CERTS, which miniflare hands to workerd as a trusted CA).
 */
async function startTlsRedis(): Promise<{ url: string; stop(): Promise<void> }> {
  const dir = process.env.ISTHMUS_TEST_TLS_DIR;
  if (!dir) throw new Error("ISTHMUS_TEST_TLS_DIR is not set: run these tests with vitest.workers.config.ts");
  const f = (name: string) => path.join(dir, name);
  const port = await freePort();
  // The plain port is switched off: this server answers TLS only.
  const server: RedisServer = await startRedis({
    extraArgs: ["--port", "0", "--tls-port", String(port), "--tls-cert-file", f("server.crt"), "--tls-key-file", f("server.key"), "--tls-ca-cert-file", f("ca.crt"), "--tls-auth-clients", "no"],
  });
  return {
    url: `rediss://localhost:${port}`,
    async stop() {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
