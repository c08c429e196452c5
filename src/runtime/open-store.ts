// The store a Node-process runtime (Node, Lambda) uses: Redis when a URL is given, else the
// embedded store. A Redis that does not answer yet is not fatal: ioredis keeps trying.
import { MemoryStore } from "../store/memory.ts";
import { RedisStore } from "../store/redis.ts";
import type { Store } from "../store/types.ts";
import { errorMessage, type Logger } from "../util/log.ts";

export async function openStore(redisUrl: string | undefined, prefix: string | undefined, log: Logger, memoryNote: { level: "info" | "warn"; msg: string }): Promise<Store> {
  if (!redisUrl) {
    log[memoryNote.level](memoryNote.msg);
    return new MemoryStore();
  }
  const redis = new RedisStore({ url: redisUrl, prefix, onError: () => undefined });
  await redis.connect().catch((err: unknown) => log.warn("redis not reachable at start; will keep trying", { error: errorMessage(err) }));
  return redis;
}
