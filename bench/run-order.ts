// The order in which the saturation rounds run the targets. Each goal ratio compares isthmus-full
// with one other target; on a shared VM whose speed drifts by 2x within minutes, two runs taken
// back to back see more nearly the same machine than two runs half a round apart. So the cycle puts
// isthmus-full between the two targets of the must and of the features' cost (fastify-proxy and
// isthmus-plain-samereq), and each round starts one place further round the cycle, as before.

/** The cycle: `pairs` (the targets compared with `pivot`) placed on either side of it, the rest in their given order. */
export function saturationCycle<T extends { name: string }>(targets: readonly T[], pivot: string, pairs: readonly [string, string]): T[] {
  const byName = (n: string) => targets.find((t) => t.name === n);
  const p = byName(pivot);
  const [left, right] = pairs.map(byName);
  if (!p || !left || !right) return [...targets];
  const rest = targets.filter((t) => t !== p && t !== left && t !== right);
  return [...rest, left, p, right];
}

/** Round `round`'s order: the cycle started `round` places in. */
export function roundOrder<T>(cycle: readonly T[], round: number): T[] {
  const n = cycle.length;
  return cycle.map((_, i) => cycle[(i + round) % n] as T);
}
