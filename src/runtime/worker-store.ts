// Redis from a Worker. workerd ties every socket to the request that opened it, so an ioredis
// client shared by requests fails ("Cannot perform I/O on behalf of a different request"). One
// RedisStore therefore lives inside a Durable Object, StoreHolder, which keeps its connection across
// calls; the gateway core gets a Store that forwards each call to it over RPC. Typed errors do not
// survive RPC as classes, so they travel as data and are rebuilt on this side.
import { DurableObject } from "cloudflare:workers";
import { ValidationError, type FieldError } from "../config/errors.ts";
import { RedisStore } from "../store/redis.ts";
import {
  ClusterInUseError,
  IssuerConflictError,
  PreconditionFailedError,
  RolloutConflictError,
  RolloutExistsError,
  RuleClaimedError,
  StoreUnavailableError,
  TrustDomainConflictError,
  UnknownClusterError,
  type Store,
} from "../store/types.ts";
import { createLogger, errorMessage, type LogLevel } from "../util/log.ts";

/** The Store methods that cross to the Durable Object (subscribe and close stay local no-ops). */
type ForwardedMethod = Exclude<{ [K in keyof Store]: Store[K] extends (...args: never[]) => unknown ? K : never }[keyof Store], "subscribe" | "close">;

const METHODS = [
  "listClusters",
  "getCluster",
  "putCluster",
  "deleteCluster",
  "listRoutes",
  "getRoute",
  "putRoute",
  "deleteRoute",
  "listRevisions",
  "getRevision",
  "version",
  "snapshot",
  "createRollout",
  "getRollout",
  "listRollouts",
  "updateRollout",
  "listRolloutEvents",
  "claimRolloutRule",
  "applyMetricDeltas",
  "readMetrics",
  "tryLock",
  "ping",
] as const satisfies readonly ForwardedMethod[];
// Fails to compile when the Store interface gains a method that is not forwarded.
const everyMethodForwarded: [Exclude<ForwardedMethod, (typeof METHODS)[number]>] extends [never] ? true : never = true;
void everyMethodForwarded;
const FORWARDED = new Set<string>(METHODS);

/** An error as it crosses RPC: its class name, message and own fields (e.g. `current`, `routes`). */
export interface WireError {
  name: string;
  message: string;
  fields: Record<string, unknown>;
}

export type StoreReply = { ok: true; value: unknown } | { ok: false; error: WireError };

/** Which Redis, and which key prefix in it. */
export interface StoreTarget {
  url: string;
  prefix: string;
}

export interface StoreHolderEnv {
  ISTHMUS_LOG_LEVEL?: string;
}

/**
 * The Durable Object that owns the Redis connection. One instance per key prefix (its name), so
 * each prefix has one connection however many isolates serve traffic. The caller names the target
 * on every call; a different URL (a rotated ISTHMUS_REDIS_URL) replaces the connection.
 */
export class StoreHolder extends DurableObject<StoreHolderEnv> {
  private held: { key: string; store: RedisStore; ready: Promise<void> } | null = null;

  /** Runs one Store method; errors come back as data (see WireError). */
  async call(target: StoreTarget, method: string, args: unknown[]): Promise<StoreReply> {
    if (!FORWARDED.has(method)) return { ok: false, error: { name: "TypeError", message: `not a forwarded store method: ${method}`, fields: {} } };
    try {
      const store = await this.open(target);
      const fn = store[method as ForwardedMethod] as (...a: unknown[]) => Promise<unknown>;
      return { ok: true, value: await fn.apply(store, args) };
    } catch (err) {
      return { ok: false, error: toWire(err) };
    }
  }

  private async open(target: StoreTarget): Promise<RedisStore> {
    const key = `${target.prefix}\n${target.url}`;
    if (this.held?.key !== key) {
      const old = this.held?.store;
      const log = createLogger((this.env.ISTHMUS_LOG_LEVEL as LogLevel | undefined) ?? "info", (l) => console.log(l));
      let lastLogged = 0;
      const store = new RedisStore({
        url: target.url,
        prefix: target.prefix,
        onError: (err) => {
          // ioredis reports every failed reconnect; one line every 10 s is enough.
          if (Date.now() - lastLogged < 10_000) return;
          lastLogged = Date.now();
          log.warn("redis connection error", { error: err.message });
        },
      });
      // Only the first call waits for the connection; later ones fail fast while Redis is away.
      const ready = store.connect().catch((err: unknown) => log.warn("redis not reachable yet; will keep trying", { error: errorMessage(err) }));
      this.held = { key, store, ready };
      if (old) void old.close();
    }
    await this.held.ready;
    return this.held.store;
  }
}

/** What the forwarding store needs of a StoreHolder stub. */
export interface StoreHolderStub {
  call(target: StoreTarget, method: string, args: unknown[]): Promise<StoreReply>;
}

/**
 * A Store whose calls run in a StoreHolder. `stub()` is asked for a stub on every call, so each
 * call's stub belongs to the request or event that makes it.
 */
export function createDurableObjectStore(stub: () => StoreHolderStub, target: StoreTarget): Store {
  const call = async (method: ForwardedMethod, args: unknown[]): Promise<unknown> => {
    let reply: StoreReply;
    try {
      reply = await stub().call(target, method, args);
    } catch (err) {
      throw new StoreUnavailableError(`store holder: ${errorMessage(err)}`, { cause: err });
    }
    if (reply.ok) return reply.value;
    throw fromWire(reply.error);
  };
  const store: Record<string, unknown> = {
    kind: "redis",
    // No pub/sub across RPC: the Worker checks the version instead (RoutingState.checkNow).
    subscribe: async () => async () => undefined,
    close: async () => undefined,
  };
  for (const m of METHODS) store[m] = (...args: unknown[]) => call(m, args);
  return store as unknown as Store;
}

export function toWire(err: unknown): WireError {
  if (!(err instanceof Error)) return { name: "Error", message: String(err), fields: {} };
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(err)) if (k !== "cause" && k !== "stack") fields[k] = v;
  return { name: err.name, message: err.message, fields };
}

const str = (v: unknown): string => (typeof v === "string" ? v : "");
const strs = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : []);

/** Rebuilds the store's typed errors, which the admin API maps to status codes. */
export function fromWire(w: WireError): Error {
  const f = w.fields;
  switch (w.name) {
    case "PreconditionFailedError":
      return new PreconditionFailedError(Number(f.current ?? 0));
    case "UnknownClusterError":
      return new UnknownClusterError(strs(f.clusters));
    case "ClusterInUseError":
      return new ClusterInUseError(str(f.cluster), strs(f.routes));
    case "TrustDomainConflictError":
      return new TrustDomainConflictError(str(f.trustDomain), str(f.owner));
    case "IssuerConflictError":
      return new IssuerConflictError(str(f.issuer), str(f.owner));
    case "RolloutExistsError":
      return new RolloutExistsError(str(f.rollout));
    case "RuleClaimedError":
      return new RuleClaimedError(str(f.owner));
    case "RolloutConflictError":
      return new RolloutConflictError(str(f.rollout));
    case "ValidationError":
      return new ValidationError(Array.isArray(f.errors) ? (f.errors as FieldError[]) : [{ path: "body", message: w.message }]);
    case "StoreUnavailableError":
      return new StoreUnavailableError(w.message);
    default:
      return Object.assign(new Error(w.message), { name: w.name });
  }
}
