// The Worker's tests, run inside workerd by @cloudflare/vitest-plugin (`npm run test:workers`).
// test/workers/global-setup.ts starts a real redis-server and real upstreams in Node first; their
// URLs become the Worker's bindings here.
import { builtinModules } from "node:module";
import { defineConfig } from "vitest/config";
import { makeTestCertificates } from "./test/workers/tls-certs.ts";

// A CA for the TLS-only Redis of test/workers/redis-tls.test.ts. It must exist before miniflare
// is loaded, which reads NODE_EXTRA_CA_CERTS once at load time: hence the dynamic import below.
const certs = makeTestCertificates();
process.env.NODE_EXTRA_CA_CERTS = certs.caFile;
process.env.ISTHMUS_TEST_TLS_DIR = certs.dir;
const { cloudflareTest } = await import("@cloudflare/vitest-plugin");

export const WORKERS_TEST_ADMIN_TOKEN = "workers-test-admin-token";

export default defineConfig({
  plugins: [
    cloudflareTest(({ inject }) => ({
      wrangler: { configPath: "./wrangler.toml" },
      miniflare: {
        bindings: {
          ISTHMUS_REDIS_URL: inject("redisUrl"),
          ISTHMUS_REDIS_PREFIX: `isthmus-workers-test:${process.pid}-${Date.now()}`,
          ISTHMUS_ADMIN_TOKEN: WORKERS_TEST_ADMIN_TOKEN,
          ISTHMUS_SIGNING_KEY: inject("signingKeyJwk"),
          ISTHMUS_LOG_LEVEL: "error",
          TEST_UPSTREAMS: JSON.stringify(inject("upstreams")),
          TEST_CONTROL_URL: inject("controlUrl"),
          TEST_TLS_REDIS_URL: inject("tlsRedisUrl"),
        },
      },
    })),
  ],
  test: {
    include: ["test/workers/**/*.test.ts"],
    globalSetup: ["test/workers/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    deps: {
      optimizer: {
        // Work-around (research/platform.md section 3): the pool's module fallback resolves
        // ioredis' `require("debug")` to its own built/utils/debug.js and recurses forever.
        // Pre-bundling ioredis, with Node builtins left to nodejs_compat, avoids it.
        ssr: { enabled: true, include: ["ioredis"], rolldownOptions: { external: [/^node:/, ...builtinModules] } },
      },
    },
  },
});
