import { configDefaults, defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The workerd tests have their own config: vitest.workers.config.ts (npm run test:workers).
    exclude: [...configDefaults.exclude, "test/workers/**"],
    // Starts one redis-server on a free port for the whole run (or uses ISTHMUS_TEST_REDIS_URL).
    globalSetup: ["test/helpers/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: "forks",
    env: { AWS_EC2_METADATA_DISABLED: "true" },
  },
});
