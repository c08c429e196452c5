import type { AdminPrincipal } from "./auth.ts";
import type { RoutingState } from "../routing/routing-state.ts";
import type { Store } from "../store/types.ts";
import type { Logger } from "../util/log.ts";

/** What the admin API needs from the rest of the gateway. */
export interface AdminDeps {
  store: Store;
  routing: RoutingState;
  log: Logger;
}

/** Hono environment of the admin sub-app: the authenticated principal is set by the auth middleware. */
export type AdminEnv = { Variables: { principal: AdminPrincipal } };
