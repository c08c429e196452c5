// The processes under test, each on its own loopback port: nginx as the upstream and as a weighted
// proxy, @fastify/http-proxy, and isthmus twice (plain; everything on), plus the Redis isthmus-full uses.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { pinned, type Pinning } from "./pinning.ts";

const ROOT = join(import.meta.dirname, "..");

/** Builds dist/isthmus.mjs as \`npm start\` does, so the bench measures the current source. */
export function buildIsthmus(): void {
  const r = spawnSync(process.execPath, [join(ROOT, "scripts", "build-node.mjs")], { cwd: ROOT, stdio: "inherit" });
  if (r.status !== 0) throw new Error("npm run build failed");
}

export const PLAIN_HOST = "plain.isthmus";
export const FULL_HOST = "full.isthmus";
export const UPSTREAM_BODY = '{"ok":true,"service":"bench"}';

export interface Target {
  name: string;
  origin: string;
  headers: Record<string, string>;
  pid: number;
  /** Measured in the saturation rounds only (a variant of another target's request, for a throughput ratio). */
  saturationOnly?: boolean;
}

export interface Running {
  proc: ChildProcess;
  port: number;
}

/** The tools the bench runs but never installs. Returns what is missing, with how to get it. */
export function missingTools(): string[] {
  const missing: string[] = [];
  const has = (cmd: string, arg: string) => spawnSync(cmd, [arg], { stdio: "ignore" }).error === undefined;
  if (!has("wrk", "--version")) missing.push("wrk (Debian/Ubuntu: sudo apt-get install wrk)");
  if (!has("nginx", "-v")) missing.push("nginx (Debian/Ubuntu: sudo apt-get install nginx-light)");
  if (!has("redis-server", "--version")) missing.push("redis-server (Debian/Ubuntu: sudo apt-get install redis-server)");
  return missing;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export class Fleet {
  private readonly procs: ChildProcess[] = [];
  private constructor(readonly dir: string) {}

  static async create(): Promise<Fleet> {
    return new Fleet(await mkdtemp(join(tmpdir(), "isthmus-bench-")));
  }

  async stop(): Promise<void> {
    for (const p of this.procs) p.kill("SIGTERM");
    await Promise.all(this.procs.map((p) => (p.exitCode !== null || p.signalCode !== null ? undefined : new Promise((r) => p.once("exit", r)))));
    await rm(this.dir, { recursive: true, force: true });
  }

  private track(proc: ChildProcess): ChildProcess {
    this.procs.push(proc);
    return proc;
  }

  /**
   * Every target of the bench, each on a free loopback port: the upstream ("direct"), nginx,
   * fastify, node-floor, net-floor and both isthmus processes, with the headers each must be sent.
   * `isthmusEnv` is added to both isthmus processes' environment (bench/hold.ts passes NODE_OPTIONS).
   */
  async startTargets(isthmusEnv: Record<string, string> = {}): Promise<Target[]> {
    const [up, ngx, fst, floor, netFloorPort, plain, full, redisPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);
    const id = await callerIdentity();
    const config = isthmusConfig(up, id.bundle);
    const upstream = await this.upstream(up);
    const redis = await this.redis(redisPort);
    const [nginxProxy, fastify, nodeFloor, netFloor, isthmusPlain, isthmusFull] = await Promise.all([
      this.nginxProxy(ngx, up),
      this.fastifyProxy(fst, up),
      this.nodeFloor(floor, up),
      this.nodeScript("net-floor-proxy.mjs", netFloorPort, up),
      this.isthmus("plain", plain, config, isthmusEnv),
      this.isthmus("full", full, config, { ...isthmusEnv, ISTHMUS_REDIS_URL: `redis://127.0.0.1:${redis.port}` }),
    ]);
    const o = (port: number) => `http://127.0.0.1:${port}`;
    const callerHeaders = { authorization: `Bearer ${id.token}`, "x-session": "user-4711" };
    return [
      { name: "direct", origin: o(up), headers: {}, pid: upstream.proc.pid ?? 0 },
      { name: "nginx", origin: o(ngx), headers: {}, pid: nginxProxy.proc.pid ?? 0 },
      { name: "fastify-proxy", origin: o(fst), headers: {}, pid: fastify.proc.pid ?? 0 },
      { name: "node-floor", origin: o(floor), headers: {}, pid: nodeFloor.proc.pid ?? 0 },
      // Below node:http and undici: net + llhttp on both sides, no features (net-floor-proxy.mjs).
      { name: "net-floor", origin: o(netFloorPort), headers: {}, pid: netFloor.proc.pid ?? 0 },
      { name: "isthmus-plain", origin: o(plain), headers: { host: PLAIN_HOST }, pid: isthmusPlain.proc.pid ?? 0 },
      // The plain route sent isthmus-full's request (its token and session header, which an
      // unauthenticated route forwards as they are): full / this is what the features alone cost.
      { name: "isthmus-plain-samereq", origin: o(plain), headers: { host: PLAIN_HOST, ...callerHeaders }, pid: isthmusPlain.proc.pid ?? 0, saturationOnly: true },
      { name: "isthmus-full", origin: o(full), headers: { host: FULL_HOST, ...callerHeaders }, pid: isthmusFull.proc.pid ?? 0 },
    ];
  }

  /** nginx with one worker, no access log, keep-alive without the 1,000-requests-per-connection cap. */
  async nginx(name: string, port: number, httpBody: string, cpus: keyof Pinning): Promise<Running> {
    const dir = join(this.dir, name);
    await mkdir(dir, { recursive: true });
    const conf = join(dir, "nginx.conf");
    await writeFile(
      conf,
      `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 65s;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
${httpBody}
}
`,
    );
    const proc = this.track(spawn(...pinned(cpus, "nginx", ["-p", dir, "-c", conf]), { stdio: ["ignore", "ignore", "inherit"] }));
    await waitListening(port, proc);
    return { proc, port };
  }

  /** The fast static upstream (nginx \`return 200\`), on 127.0.0.1 and 127.0.0.2: two "clusters". */
  upstream(port: number): Promise<Running> {
    return this.nginx(
      "upstream",
      port,
      `  server {
    listen 127.0.0.1:${port}; listen 127.0.0.2:${port};
    location / { default_type application/json; return 200 '${UPSTREAM_BODY}'; }
  }`,
      "load",
    );
  }

  /** nginx as a 90/10 weighted reverse proxy with keep-alive upstream connections. */
  nginxProxy(port: number, upstreamPort: number): Promise<Running> {
    return this.nginx(
      "proxy",
      port,
      `  upstream clusters {
    server 127.0.0.1:${upstreamPort} weight=9;
    server 127.0.0.2:${upstreamPort} weight=1;
    keepalive 64;
    keepalive_requests 10000000;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://clusters;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
    }
  }`,
      "proxy",
    );
  }

  fastifyProxy(port: number, upstreamPort: number): Promise<Running> {
    return this.nodeScript("fastify-proxy.mjs", port, upstreamPort);
  }

  /** A minimal Node proxy on node:http + undici, no features (node-floor-proxy.mjs); net-floor-proxy.mjs is the same below both. */
  nodeFloor(port: number, upstreamPort: number): Promise<Running> {
    return this.nodeScript("node-floor-proxy.mjs", port, upstreamPort);
  }

  private async nodeScript(script: string, port: number, upstreamPort: number): Promise<Running> {
    const proc = this.track(
      spawn(...pinned("proxy", process.execPath, [join(import.meta.dirname, script)]), {
        env: { ...process.env, PORT: String(port), UPSTREAM: `http://127.0.0.1:${upstreamPort}` },
        stdio: ["ignore", "pipe", "inherit"],
      }),
    );
    await firstLine(proc);
    return { proc, port };
  }

  async redis(port: number): Promise<Running> {
    const proc = this.track(spawn(...pinned("load", "redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", this.dir]), { stdio: "ignore" }));
    await waitListening(port, proc);
    return { proc, port };
  }

  /**
   * isthmus, the Node entry exactly as \`npm start\` runs it, configured by a file: the bundle buildIsthmus
   * made, or `bundle` (another build, for bench/ab.ts).
   */
  async isthmus(name: string, port: number, config: unknown, env: Record<string, string>, bundle = join(ROOT, "dist", "isthmus.mjs")): Promise<Running> {
    const file = join(this.dir, `${name}.json`);
    await writeFile(file, JSON.stringify(config));
    const proc = this.track(
      spawn(...pinned("proxy", process.execPath, [...startFlags(), ...benchNodeArgs(), bundle]), {
        env: { ...process.env, PORT: String(port), HOST: "127.0.0.1", ISTHMUS_CONFIG: file, ISTHMUS_LOG_LEVEL: "error", ISTHMUS_REDIS_URL: "", ...env },
        stdio: ["ignore", "inherit", "inherit"],
      }),
    );
    await waitReady(`http://127.0.0.1:${port}/_isthmus/readyz`, proc);
    return { proc, port };
  }
}

/**
 * The node flags \`npm start\` runs the bundle with (read from package.json, so the bench runs what
 * users run): the V8 garbage-collector settings for a one-core event loop (see docs/architecture.md).
 */
export function startFlags(): string[] {
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: { start: string } };
  const m = /(?:^|&&)\s*node\s+((?:--\S+\s+)*)dist\/isthmus\.mjs\s*$/.exec(pkg.scripts.start);
  if (!m) throw new Error(`package.json's start script does not end in "node [flags] dist/isthmus.mjs": ${pkg.scripts.start}`);
  return (m[1] as string).split(/\s+/).filter((a) => a !== "");
}

/** Extra node flags for both isthmus processes (BENCH_NODE_ARGS, for experiments by hand: V8 flags such as --trace-gc are refused in NODE_OPTIONS). */
function benchNodeArgs(): string[] {
  return (process.env.BENCH_NODE_ARGS ?? "").split(/\s+/).filter((a) => a !== "");
}

/** A caller's workload identity: a key whose public half is the west cluster's bundle, and its JWT-SVID. */
export async function callerIdentity(): Promise<{ bundle: { keys: unknown[] }; token: string; spiffeId: string }> {
  const { privateKey, publicKey } = await generateKeyPair("ES256");
  const jwk = { ...(await exportJWK(publicKey)), kid: "bench-1", alg: "ES256", use: "jwt-svid" };
  const spiffeId = "spiffe://west.example/ns/shop/sa/web";
  const token = await new SignJWT({})
    .setProtectedHeader({ alg: "ES256", kid: "bench-1", typ: "JWT" })
    .setSubject(spiffeId)
    .setAudience("isthmus")
    .setIssuedAt()
    .setExpirationTime("4h")
    .sign(privateKey);
  return { bundle: { keys: [jwk] }, token, spiffeId };
}

/** Two clusters on the two upstream addresses; a route split 90/10 across them. */
export function isthmusConfig(upstreamPort: number, bundle: { keys: unknown[] }) {
  const backends = [
    { cluster: "east", service: "checkout.shop.svc.cluster.local", port: 8080, weight: 90 },
    { cluster: "west", service: "checkout.shop.svc.cluster.local", port: 8080, weight: 10 },
  ];
  return {
    clusters: {
      east: { endpoint: `http://127.0.0.1:${upstreamPort}`, trustDomain: "east.example", health: { path: "/ready", interval: "2s" } },
      west: { endpoint: `http://127.0.0.2:${upstreamPort}`, trustDomain: "west.example", bundle: { jwks: bundle }, health: { path: "/ready", interval: "2s" } },
    },
    routes: {
      plain: { hostnames: [PLAIN_HOST], authorization: { unauthenticated: true }, rules: [{ name: "split", backendRefs: backends }] },
      full: {
        hostnames: [FULL_HOST],
        authorization: { identities: ["spiffe://west.example/ns/shop/*"] },
        rules: [{ name: "split", backendRefs: backends, sessionPersistence: { key: [{ header: "x-session" }] } }],
      },
    },
  };
}

function firstLine(proc: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    proc.once("exit", (code) => reject(new Error(`process exited (${code}) before it was ready`)));
    createInterface({ input: proc.stdout as NodeJS.ReadableStream }).once("line", resolve);
  });
}

async function waitListening(port: number, proc: ChildProcess): Promise<void> {
  const { connect } = await import("node:net");
  for (let i = 0; i < 400; i++) {
    if (proc.exitCode !== null) throw new Error(`process for port ${port} exited with ${proc.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, "127.0.0.1", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`nothing listens on port ${port}`);
}

async function waitReady(url: string, proc: ChildProcess): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (proc.exitCode !== null) throw new Error(`isthmus exited with ${proc.exitCode}`);
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${url} never answered 200`);
}
