// Starts the real Node gateway in-process for integration tests: port 0, a silent logger, the
// embedded memory store unless a Redis URL is given, and a declarative config built from
// `clusters: {name: url}` and route specs. Comes with a keep-alive undici client that sets Host.
import { Agent, request as undiciRequest, type Dispatcher } from "undici";
import type { DeclarativeConfig } from "../../src/config/declarative.ts";
import type { RouteInput } from "../../src/config/schemas.ts";
import { parseCluster, parseRoute } from "../../src/config/validate.ts";
import { startNodeGateway, type RunningGateway } from "../../src/runtime/node.ts";
import { silentLogger, type Logger } from "../../src/util/log.ts";

export interface TestGatewayOptions {
  /** Cluster name -> endpoint URL (e.g. an upstream's `url`). The trust domain is `<name>.example`. */
  clusters: Record<string, string>;
  /** Route name -> route spec (validated and defaulted through the real schema). */
  routes: Record<string, RouteInput>;
  adminToken?: string;
  redisUrl?: string;
  redisPrefix?: string;
  log?: Logger;
  /** Connections the test client keeps to the gateway; default 64. */
  clientConnections?: number;
}

export type RequestInit = Omit<Dispatcher.RequestOptions, "origin" | "path" | "method" | "headers"> & {
  method?: Dispatcher.HttpMethod;
  headers?: Record<string, string | string[]>;
};

export interface TestGateway extends RunningGateway {
  /** The keep-alive client used by `request` (closed by `close`). */
  client: Agent;
  /** Sends a request to the gateway with the given Host header. */
  request(host: string, path: string, init?: RequestInit): Promise<Dispatcher.ResponseData>;
  /** Calls the admin API with the admin token. */
  admin(method: Dispatcher.HttpMethod, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; headers: Dispatcher.ResponseData["headers"]; body: unknown }>;
  /** Resolves once the live routing table serves `route` at `revision` or later. */
  waitForRevision(route: string, revision: number): Promise<void>;
}

export function buildConfig(clusters: Record<string, string>, routes: Record<string, RouteInput>): DeclarativeConfig {
  return {
    clusters: Object.fromEntries(Object.entries(clusters).map(([name, endpoint]) => [name, parseCluster({ endpoint, trustDomain: `${name}.example` }, ["clusters", name])])),
    routes: Object.fromEntries(Object.entries(routes).map(([name, spec]) => [name, parseRoute(spec, ["routes", name])])),
  };
}

export async function startTestGateway(opts: TestGatewayOptions): Promise<TestGateway> {
  const gw = await startNodeGateway({
    port: 0,
    hostname: "127.0.0.1",
    config: buildConfig(opts.clusters, opts.routes),
    adminToken: opts.adminToken,
    redisUrl: opts.redisUrl,
    redisPrefix: opts.redisPrefix,
    log: opts.log ?? silentLogger,
  });
  const client = new Agent({ connections: opts.clientConnections ?? 64, keepAliveTimeout: 10_000, pipelining: 1 });

  const request: TestGateway["request"] = (host, path, init = {}) => {
    const { headers, method, ...rest } = init;
    return undiciRequest(`${gw.url}${path}`, { dispatcher: client, ...rest, method: method ?? "GET", headers: { ...headers, host } });
  };

  const admin: TestGateway["admin"] = async (method, path, body, headers = {}) => {
    const res = await undiciRequest(`${gw.url}/_isthmus/v1${path}`, {
      dispatcher: client,
      method,
      headers: {
        ...(opts.adminToken ? { authorization: `Bearer ${opts.adminToken}` } : {}),
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
        ...headers,
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.body.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // not JSON: keep the text
    }
    return { status: res.statusCode, headers: res.headers, body: parsed };
  };

  const waitForRevision: TestGateway["waitForRevision"] = (route, revision) =>
    new Promise<void>((resolve) => {
      const has = () => (gw.routing.current.routes.get(route)?.revision ?? 0) >= revision;
      if (has()) return resolve();
      const off = gw.routing.onSwap(() => {
        if (!has()) return;
        off();
        resolve();
      });
      // Nudge a reload in case the change notification raced the listener (no sleeping).
      void gw.routing.checkNow();
    });

  let closing: Promise<void> | null = null;
  return {
    ...gw,
    client,
    request,
    admin,
    waitForRevision,
    close() {
      closing ??= (async () => {
        await client.destroy().catch(() => undefined);
        await gw.close();
      })();
      return closing;
    },
  };
}

/** Collects things to close; call `closeAll()` from afterEach/afterAll. */
export class Closer {
  private readonly items: Array<{ close(): Promise<void> }> = [];
  add<T extends { close(): Promise<void> }>(item: T): T {
    this.items.push(item);
    return item;
  }
  async closeAll(): Promise<void> {
    const items = this.items.splice(0).reverse();
    await Promise.allSettled(items.map((i) => i.close()));
  }
}
