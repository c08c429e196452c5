import type { RoutingState } from "../routing/routing-state.ts";
import type { Store } from "../store/types.ts";
import type { Logger } from "../util/log.ts";

/** What the admin API needs from the rest of the gateway. */
export interface AdminDeps {
  store: Store;
  routing: RoutingState;
  log: Logger;
}
