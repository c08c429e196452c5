// Helpers of the workerd tests: drive a Worker handler the way the runtime does (a Request, the
// bindings and an ExecutionContext whose waitUntil work can be awaited), talk to its admin API,
// and ask the Node-side control server what the upstreams received.
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import type { UpstreamRequestRecord } from "../helpers/upstream.ts";
import type { WorkerEnv, WorkerHandler } from "../../src/runtime/worker.ts";

export const ADMIN_TOKEN = "workers-test-admin-token";

export type Upstreams = Record<"east" | "west" | "echo" | "redirect" | "slow" | "stream" | "cookies" | "refused", string>;
export const upstreams = (): Upstreams => JSON.parse(env.TEST_UPSTREAMS) as Upstreams;

/** The test bindings with a key prefix (and so a StoreHolder) of this test's own, plus overrides. */
export function isolatedEnv(label: string, overrides: Partial<WorkerEnv> = {}): WorkerEnv {
  return { ...env, ISTHMUS_REDIS_PREFIX: `isthmus-workers-test:${label}:${crypto.randomUUID()}`, ...overrides } as WorkerEnv;
}

export interface Answer {
  res: Response;
  /** Settles when the request's waitUntil work (version check, metric flush...) is done. */
  settled: Promise<void>;
}

/** One request through `handler`, as the runtime would make it. */
export async function send(handler: WorkerHandler, workerEnv: WorkerEnv, request: Request): Promise<Answer> {
  const ctx = createExecutionContext();
  const res = await handler.fetch(request, workerEnv, ctx);
  return { res, settled: waitOnExecutionContext(ctx) };
}

/** A data-plane request for `host` (the Worker sees it as https://<host><path>). */
export function dataRequest(host: string, path = "/", init: RequestInit = {}): Request {
  return new Request(`https://${host}${path}`, init);
}

/** An admin API call; waits for its waitUntil work so the isolate's table has seen the change. */
export async function admin<T = unknown>(handler: WorkerHandler, workerEnv: WorkerEnv, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const { res, settled } = await send(
    handler,
    workerEnv,
    new Request(`https://gateway.test/_isthmus/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    }),
  );
  const text = await res.text();
  await settled;
  return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
}

/** What the upstreams received for requests that carried `x-test-case: <id>`. */
export async function seen(id: string): Promise<UpstreamRequestRecord[]> {
  const res = await fetch(`${env.TEST_CONTROL_URL}/seen?case=${encodeURIComponent(id)}`);
  return (await res.json()) as UpstreamRequestRecord[];
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls until `probe` returns a value other than undefined/false, or fails at the deadline. */
export async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 10_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** A cluster document for an upstream: trust domain `<name>.example`, optional health path and bundle. */
export function clusterDoc(endpoint: string, trustDomain: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { endpoint, trustDomain, ...extra };
}
