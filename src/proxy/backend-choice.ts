// Backend choice with availability: a backend whose cluster fails its health probe or whose
// breaker is open gives its share to the other backends of the rule in proportion, or to the
// clusters its `failover` names, and gets it back when it recovers. Never every backend: when none
// is available the configured weights stand (a guess beats a certain failure).
import { bucketOf, pickSticky, pickWeighted } from "../routing/choose.ts";
import type { CompiledBackend, CompiledRule, RoutingTable } from "../routing/table.ts";

export type Usable = (b: CompiledBackend) => boolean;

export interface Choice {
  backend: CompiledBackend;
  /** True when the choice differs from what the weights alone would give (failover in effect). */
  degraded: boolean;
}

/** Whether a backend can take traffic now: its cluster is registered, it is usable, and not excluded. */
function canTake(b: CompiledBackend, usable: Usable, exclude: ReadonlySet<string> | undefined): boolean {
  return b.target !== null && usable(b) && !exclude?.has(b.id);
}

/**
 * The backends and weights in effect now. Returns null when every backend is usable (the common
 * case: the caller uses the compiled rule as is).
 */
export function effectiveBackends(rule: CompiledRule, table: RoutingTable, usable: Usable, exclude?: ReadonlySet<string>): CompiledBackend[] | null {
  // The common case, checked without a closure: every backend with weight can take traffic.
  let allOk = true;
  for (const b of rule.backends) {
    if (b.weight !== 0 && !canTake(b, usable, exclude)) {
      allOk = false;
      break;
    }
  }
  if (allOk) return null;
  const ok = (b: CompiledBackend) => canTake(b, usable, exclude);
  const out: CompiledBackend[] = rule.backends.map((b) => ({ ...b, weight: b.weight > 0 && ok(b) ? b.weight : 0 }));
  for (const b of rule.backends) {
    if (b.weight === 0 || ok(b) || b.failover.length === 0) continue;
    for (const cluster of b.failover) {
      const sibling = out.find((o) => o.cluster === cluster && o.service === b.service && o.port === b.port);
      if (sibling) {
        if (ok(sibling)) {
          sibling.weight += b.weight;
          break;
        }
        continue;
      }
      const target = table.clusters.get(cluster) ?? null;
      const stand: CompiledBackend = { ...b, id: `${cluster}/${b.service}:${b.port ?? ""}`, cluster, target, weight: b.weight, failover: [] };
      if (ok(stand)) {
        out.push(stand);
        break;
      }
    }
  }
  return out.some((b) => b.weight > 0) ? out : null;
}

/** Picks a backend: sticky when the rule has a session key and one is present, else weighted random. */
export function chooseAvailable(rule: CompiledRule, table: RoutingTable, usable: Usable, key: string | undefined, random: () => number, exclude?: ReadonlySet<string>): Choice | null {
  const effective = effectiveBackends(rule, table, usable, exclude);
  if (!effective) {
    const i = rule.sticky && key !== undefined ? rule.sticky.pick(key) : pickWeighted(rule.backends, random());
    const backend = i >= 0 ? rule.backends[i] : undefined;
    return backend ? { backend, degraded: false } : null;
  }
  // Rendezvous over the available set: keys of healthy backends stay where they were.
  const i = rule.sticky && key !== undefined ? pickSticky(effective, bucketOf(key)) : pickWeighted(effective, random());
  const backend = i >= 0 ? effective[i] : undefined;
  return backend ? { backend, degraded: true } : null;
}
