// vitest globalSetup: one Redis for the whole run. ISTHMUS_TEST_REDIS_URL points the tests at an
// existing server instead; otherwise a throwaway redis-server is started on a free port and
// stopped in teardown. Tests read the URL with `inject("redisUrl")` and isolate themselves with
// `uniquePrefix()` (test/helpers/redis-server.ts).
import type { TestProject } from "vitest/node";
import { startRedis } from "./redis-server.ts";

declare module "vitest" {
  export interface ProvidedContext {
    redisUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const external = process.env.ISTHMUS_TEST_REDIS_URL;
  if (external) {
    project.provide("redisUrl", external);
    return undefined;
  }
  const redis = await startRedis();
  project.provide("redisUrl", redis.url);
  return async () => {
    await redis.stop();
  };
}
