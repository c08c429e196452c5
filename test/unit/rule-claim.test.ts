// The rule-claim decision (src/rollout/rule-claim.ts) against a store whose answers the test sets:
// the windows it must handle (a claim whose owner is being created) cannot be held open on a real one.
import { describe, expect, it } from "vitest";
import { claimRule, RuleBusyError } from "../../src/rollout/rule-claim.ts";
import type { RolloutRecord } from "../../src/rollout/schema.ts";
import type { Store } from "../../src/store/types.ts";

function storeWith(owner: string, holder: { phase: string } | null) {
  const claims: Array<[string, string | undefined]> = [];
  const store = {
    async claimRolloutRule(_route: string, _rule: string, name: string, replace?: string) {
      claims.push([name, replace]);
      return replace === owner ? name : owner;
    },
    async getRollout() {
      return holder ? ({ status: { phase: holder.phase } } as unknown as RolloutRecord) : null;
    },
  } as unknown as Store;
  return { store, claims };
}

describe("claimRule", () => {
  it("is busy when the owner has no record yet (a rollout being created): it does not take the claim over", async () => {
    const { store, claims } = storeWith("first", null);
    await expect(claimRule(store, "web", "main", "second")).rejects.toBeInstanceOf(RuleBusyError);
    expect(claims).toEqual([["second", undefined]]);
  });

  it("is busy while the owner runs, and takes over the claim of a finished owner by compare-and-set", async () => {
    await expect(claimRule(storeWith("first", { phase: "Progressing" }).store, "web", "main", "second")).rejects.toBeInstanceOf(RuleBusyError);
    await expect(claimRule(storeWith("first", { phase: "Paused" }).store, "web", "main", "second")).rejects.toBeInstanceOf(RuleBusyError);
    for (const phase of ["Succeeded", "Failed", "Aborted"]) {
      const { store, claims } = storeWith("first", { phase });
      await claimRule(store, "web", "main", "second");
      expect(claims).toEqual([
        ["second", undefined],
        ["second", "first"],
      ]);
    }
  });
});
