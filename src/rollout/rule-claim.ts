// One rollout per route rule, taken atomically in the store. A finished rollout's claim is replaced
// by compare-and-set; a claim whose owner is no rollout at all (its creation failed) the store lets
// go itself. A rollout being created holds its claim: the store records its name only while the claim
// is still its own, so of rollouts starting at once on one rule, exactly one is created.
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
    // Only a finished rollout's claim is taken over here. No record means a rollout being created
    // (the store would have let go of a claim whose owner has no name recorded): busy.
    if (!holder || !FINISHED.has(holder.status.phase)) throw new RuleBusyError(owner);
    owner = await store.claimRolloutRule(route, rule, name, owner);
  }
  if (owner !== name) throw new RuleBusyError(owner);
}
