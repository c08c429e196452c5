// One rollout per route rule, taken atomically in the store. A finished rollout's claim is replaced
// by compare-and-set, so of two rollouts starting at once on one rule, exactly one gets it.
import type { Store } from "../store/types.ts";

export class RuleBusyError extends Error {
  constructor(readonly owner: string) {
    super(`rollout "${owner}" is already running on this rule`);
    this.name = "RuleBusyError";
  }
}

const FINISHED = new Set(["Succeeded", "Failed", "Aborted"]);

export async function claimRule(store: Store, route: string, rule: string, name: string): Promise<void> {
  let owner = await store.claimRolloutRule(route, rule, name);
  for (let i = 0; i < 3 && owner !== name; i++) {
    const holder = await store.getRollout(owner);
    // A claim left by a rollout that finished (or no longer exists) may be taken over.
    if (holder && !FINISHED.has(holder.status.phase)) throw new RuleBusyError(owner);
    owner = await store.claimRolloutRule(route, rule, name, owner);
  }
  if (owner !== name) throw new RuleBusyError(owner);
}
