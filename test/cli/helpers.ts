// Runs the real `isthmus` binary (node bin/isthmus.mjs, the package's bin) as a child process
// against a real gateway started in-process on the shared test Redis, with real upstreams.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { inject } from "vitest";
import type { DeclarativeConfig } from "../../src/config/declarative.ts";
import type { ClusterInput, RouteInput } from "../../src/config/schemas.ts";
import { parseCluster, parseRoute } from "../../src/config/validate.ts";
import { startNodeGateway, type NodeGatewayOptions, type RunningGateway } from "../../src/runtime/node.ts";
import { silentLogger } from "../../src/util/log.ts";
import { uniquePrefix } from "../helpers/redis-server.ts";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const BIN = path.join(ROOT, "bin/isthmus.mjs");
export const TOKEN = "cli-test-admin-token";

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  url?: string;
  token?: string | null;
  env?: Record<string, string>;
  timeoutMs?: number;
  /** Written to the CLI's stdin (closed after). */
  input?: string;
}

/** Starts the CLI; the promise settles when it exits (killed after `timeoutMs`, default 20 s). */
export function startCli(args: string[], opts: CliOptions = {}): { child: ChildProcess; done: Promise<CliResult>; stdout(): string } {
  const env: Record<string, string> = { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", NO_COLOR: "1", ...opts.env };
  if (opts.url) env.ISTHMUS_URL = opts.url;
  if (opts.token !== null) env.ISTHMUS_ADMIN_TOKEN = opts.token ?? TOKEN;
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env, stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
  if (opts.input !== undefined) child.stdin?.end(opts.input);
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr?.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 20_000);
  const done = new Promise<CliResult>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
  return { child, done, stdout: () => stdout };
}

export const cli = (args: string[], opts: CliOptions = {}): Promise<CliResult> => startCli(args, opts).done;

/** Parses the CLI's --json output, failing with the whole output when it is not JSON. */
export function json<T = Record<string, unknown>>(r: CliResult): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${r.code}):\n${r.stdout}\n--- stderr\n${r.stderr}`);
  }
}

export function buildConfigWith(clusters: Record<string, ClusterInput>, routes: Record<string, RouteInput>): DeclarativeConfig {
  return {
    clusters: Object.fromEntries(Object.entries(clusters).map(([n, c]) => [n, parseCluster(c, ["clusters", n])])),
    routes: Object.fromEntries(Object.entries(routes).map(([n, r]) => [n, parseRoute(r, ["routes", n])])),
  };
}

/** A real gateway on the shared test Redis (its own key prefix), quick probes, flushes and ticks. */
export async function startGateway(config: DeclarativeConfig, opts: Partial<NodeGatewayOptions> = {}): Promise<RunningGateway> {
  return startNodeGateway({
    port: 0,
    hostname: "127.0.0.1",
    redisUrl: inject("redisUrl"),
    redisPrefix: uniquePrefix("cli"),
    adminToken: TOKEN,
    config,
    log: silentLogger,
    probeIntervalMs: 100,
    metricsFlushMs: 100,
    rolloutTickMs: 100,
    checkIntervalMs: 500,
    ...opts,
  });
}

/** Calls the admin API directly (test setup and assertions, not the code under test). */
export async function admin<T = unknown>(gw: RunningGateway, method: string, p: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${gw.url}/_isthmus/v1${p}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
}

/** Polls `probe` until it returns a value (not undefined), or fails after `timeoutMs`. */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function tempDir(): Promise<{ dir: string; file(name: string, text: string): Promise<string>; close(): Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), "isthmus-cli-"));
  return {
    dir,
    async file(name, text) {
      const p = path.join(dir, name);
      await writeFile(p, text);
      return p;
    },
    close: () => rm(dir, { recursive: true, force: true }),
  };
}
