import type { AdminPrincipal } from "./auth.ts";
import type { ProbeState } from "../telemetry/health-probes.ts";
import type { MetricBatch } from "../telemetry/metric-batch.ts";
import type { RoutingState } from "../routing/routing-state.ts";
import type { Store } from "../store/types.ts";
import type { Logger } from "../util/log.ts";

/** Metrics and health as the admin API sees them. */
export interface TelemetryView {
  /** Pushes this instance's recorded deltas to the store. */
  flush(): Promise<boolean>;
  /** Instance-local series (health probes). */
  localMetrics(): MetricBatch;
  probe(cluster: string): ProbeState | null;
}

/** What the admin API needs from the rest of the gateway. */
export interface AdminDeps {
  store: Store;
  routing: RoutingState;
  log: Logger;
  telemetry?: TelemetryView;
  /** Outbound fetch for rollout webhooks. */
  fetch?: (input: string, init: RequestInit) => Promise<Response>;
}

/** Hono environment of the admin sub-app: the authenticated principal is set by the auth middleware. */
export type AdminEnv = { Variables: { principal: AdminPrincipal } };
