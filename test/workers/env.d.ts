// The bindings the Worker gets in the workerd tests (vitest.workers.config.ts): the Worker's own,
// plus where the Node-side servers of global-setup.ts listen.
import type * as WorkerModule from "../../src/runtime/worker.ts";
import type { WorkerEnv } from "../../src/runtime/worker.ts";

declare global {
  namespace Cloudflare {
    interface GlobalProps {
      mainModule: typeof WorkerModule;
      durableNamespaces: "StoreHolder";
    }
    interface Env extends WorkerEnv {
      /** JSON: upstream name -> http://127.0.0.1:<port> (plus "refused", where nothing listens). */
      TEST_UPSTREAMS: string;
      /** The control server: GET /seen?case=<id>. */
      TEST_CONTROL_URL: string;
      /** rediss:// URL of a TLS-only redis-server (its CA trusted through NODE_EXTRA_CA_CERTS). */
      TEST_TLS_REDIS_URL: string;
    }
  }
}
