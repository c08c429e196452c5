// The Node.js runtime: one process serving the Hono app with undici upstreams and either the
// embedded store or Redis. The only module (with node-main.ts and node-upstream.ts) that knows it runs on Node.
import type { AddressInfo, Server } from "node:net";
import type { Context } from "hono";
import type { ConnectionFacts } from "../app.ts";
import { createGateway, type Gateway, type GatewayOptions } from "../gateway.ts";
import { createAwsSecrets } from "../secrets/aws.ts";
import { CachedSecrets, type SecretsProvider } from "../secrets/secrets.ts";
import { createLogger, errorMessage, type Logger } from "../util/log.ts";
import { readFile, rename, writeFile } from "node:fs/promises";
import { compileTable } from "../routing/compile.ts";
import type { StoreSnapshot } from "../store/types.ts";
import { loadConfigFile } from "./config-file.ts";
import { openStore } from "./open-store.ts";
import { createHttp1Server } from "./http1-server.ts";
import { createAppBridge, type NodeBindings } from "./node-app-bridge.ts";
import { createNodeDataPlane, takes } from "./node-data-plane.ts";
import { createNodeUpstream } from "./node-upstream.ts";

export { loadConfigFile };

export interface NodeGatewayOptions extends GatewayOptions {
  /** 0 picks a free port. */
  port?: number;
  hostname?: string;
  redisUrl?: string;
  redisPrefix?: string;
  /** Path of a JSON/YAML config file (ISTHMUS_CONFIG); or `config`, the parsed document itself. */
  configPath?: string;
  log?: Logger;
  /** Largest request header block accepted, bytes. */
  maxHeaderBytes?: number;
  /** Where secrets come from; default AWS Secrets Manager (region and endpoint from the AWS SDK settings). */
  secrets?: SecretsProvider;
  secretsRegion?: string;
  /** How often cached secrets (signing key, admin token, secret-held bundles) are re-read. */
  secretsRefreshMs?: number;
  /** How often this instance adds its metric deltas to the store. */
  metricsFlushMs?: number;
  /** How often the rollout controller ticks (0 disables it on this instance). */
  rolloutTickMs?: number;
  /**
   * A file where the last good routing snapshot is kept (ISTHMUS_SNAPSHOT_FILE): when the store is
   * unreachable at start, the gateway serves from it (as from ISTHMUS_CONFIG) until the store answers.
   */
  snapshotPath?: string;
}

export interface RunningGateway extends Omit<Gateway, "close"> {
  url: string;
  port: number;
  server: Server;
  /** Runs one remote-write round now (if this instance holds the pusher lease). */
  pushMetrics(): Promise<void>;
  close(): Promise<void>;
}


export async function startNodeGateway(opts: NodeGatewayOptions = {}): Promise<RunningGateway> {
  const cleanup: Array<() => Promise<unknown> | unknown> = [];
  try {
    return await start(opts, cleanup);
  } catch (err) {
    // A failed start leaves nothing running: timers, subscriptions and connections are closed.
    for (const c of cleanup.reverse()) await Promise.resolve(c()).catch(() => undefined);
    throw err;
  }
}

async function start(opts: NodeGatewayOptions, cleanup: Array<() => Promise<unknown> | unknown>): Promise<RunningGateway> {
  const log = opts.log ?? createLogger();
  const config = opts.config ?? (opts.configPath ? await loadConfigFile(opts.configPath) : undefined);

  const store = await openStore(opts.redisUrl, opts.redisPrefix, log, { level: "info", msg: "using the embedded in-memory store (set ISTHMUS_REDIS_URL to share state between instances)" });
  cleanup.push(() => store.close());

  const secrets = new CachedSecrets(opts.secrets ?? createAwsSecrets({ region: opts.secretsRegion }), { refreshMs: opts.secretsRefreshMs ?? 300_000, log });
  const upstream = createNodeUpstream();
  cleanup.push(() => upstream.close());
  const gw = await createGateway(
    { store, upstream, fetch: (u, i) => fetch(u, i), secrets, log, connection: nodeConnection },
    { ...opts, config, checkIntervalMs: opts.checkIntervalMs ?? 2000 },
  );
  cleanup.push(() => gw.close());
  const stopSnapshots = opts.snapshotPath ? await keepSnapshot(gw, opts.snapshotPath, log) : () => undefined;
  cleanup.push(stopSnapshots);

  // Background work on timers (unref'd: they never keep the process alive by themselves).
  const every = (ms: number, task: () => Promise<unknown>) => {
    let running = false;
    const t = setInterval(() => {
      if (running) return;
      running = true;
      void task().finally(() => (running = false));
    }, ms);
    t.unref();
    return t;
  };
  const tickMs = opts.rolloutTickMs ?? 1_000;
  const timers = [
    every(2_000, async () => {
      if (gw.configPending) await gw.tasks.applyConfig();
    }),
    every(Math.max(100, Math.min(opts.secretsRefreshMs ?? 300_000, 60_000)), () => gw.tasks.refreshSecrets()),
    every(opts.metricsFlushMs ?? 5_000, () => gw.tasks.flushMetrics()),
    every(Math.min(500, opts.probeIntervalMs ?? 500), () => gw.tasks.probeClusters()),
    every(opts.remoteWriteIntervalMs ?? 15_000, () => gw.tasks.pushMetrics()),
    ...(tickMs > 0 ? [every(tickMs, () => gw.tasks.tickRollouts())] : []),
  ];
  cleanup.push(() => timers.forEach((t) => clearInterval(t)));
  void gw.tasks.probeClusters();

  // Data-plane requests go below Hono (node-data-plane.ts); the Hono app serves the rest.
  const app = createAppBridge((request, env) => gw.app.fetch(request, env), log);
  const dataPlane = createNodeDataPlane(gw.dataPlane, log);
  const http = createHttp1Server(
    (req, res) => {
      if (takes(req)) dataPlane(req, res);
      else app(req, res);
    },
    {
      maxHeaderBytes: opts.maxHeaderBytes ?? 16_384,
      // Slow clients must send their headers in time (checked every second, so a slowloris
      // client is cut within about 11 s); keep-alive outlives typical LB idle timeouts.
      headersTimeoutMs: 10_000,
      keepAliveTimeoutMs: 65_000,
      onError: (err) => log.error("unexpected error in the HTTP server", { error: errorMessage(err) }),
    },
  );
  await http.listen(opts.port ?? 8080, opts.hostname);
  const server = http.net;
  const port = (server.address() as AddressInfo).port;
  const host = opts.hostname && opts.hostname !== "0.0.0.0" ? opts.hostname : "127.0.0.1";
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  log.info("isthmus listening", { url, store: store.kind });

  let closed: Promise<void> | null = null;
  return {
    ...gw,
    url,
    port,
    server,
    pushMetrics: () => gw.tasks.pushMetrics(),
    close() {
      closed ??= (async () => {
        for (const t of timers) clearInterval(t);
        stopSnapshots();
        await http.close(2_000);
        await gw.close();
        await upstream.close();
        await store.close();
      })();
      return closed;
    },
  };
}

function nodeConnection(c: Context): ConnectionFacts {
  return (c.env as NodeBindings).facts;
}

/** Serves from the snapshot file when the store could not be loaded at start, and keeps the file current. */
async function keepSnapshot(gw: Gateway, path: string, log: Logger): Promise<() => void> {
  if (!gw.routing.loaded) {
    try {
      const snap = JSON.parse(await readFile(path, "utf8")) as StoreSnapshot;
      gw.routing.install(compileTable(snap));
      log.warn("store unreachable at start: serving the last snapshot until it answers", { path, version: snap.version, routes: snap.routes.length });
    } catch (err) {
      log.warn("store unreachable at start and no usable snapshot", { path, error: errorMessage(err) });
    }
  }
  let pending: ReturnType<typeof setTimeout> | null = null;
  const save = () => {
    pending = null;
    const snap = gw.routing.lastSnapshot;
    if (!snap) return;
    const tmp = `${path}.${process.pid}.tmp`;
    // Write then rename: a crash mid-write never leaves a torn snapshot.
    void writeFile(tmp, JSON.stringify(snap))
      .then(() => rename(tmp, path))
      .catch((err: unknown) => log.warn("could not write the routing snapshot", { path, error: errorMessage(err) }));
  };
  const off = gw.routing.onSwap(() => {
    if (!gw.routing.provisional && !pending) {
      pending = setTimeout(save, 500);
      pending.unref();
    }
  });
  if (gw.routing.lastSnapshot) save();
  return () => {
    off();
    if (pending) clearTimeout(pending);
  };
}
