// Backend choice. Pure functions: the caller supplies randomness and keys.
import { murmur3 } from "./hash.ts";

export interface Weighted {
  /** Stable identity of the backend (cluster/service:port): sticky choice hashes it. */
  readonly id: string;
  readonly weight: number;
}

/** Number of sticky buckets: a key hashes to one of them, the same everywhere. */
export const STICKY_BUCKETS = 10_000;

/**
 * Weighted random choice: backend i is picked with probability weight_i / sum(weights).
 * `random` is in [0, 1). Returns -1 when every weight is 0.
 */
export function pickWeighted(backends: readonly Weighted[], random: number): number {
  let total = 0;
  for (const b of backends) total += b.weight;
  if (total <= 0) return -1;
  let x = Math.floor(random * total);
  for (let i = 0; i < backends.length; i++) {
    const w = (backends[i] as Weighted).weight;
    if (x < w) return i;
    x -= w;
  }
  return -1;
}

/** The sticky bucket of a session key. */
export function bucketOf(key: string): number {
  return murmur3(key) % STICKY_BUCKETS;
}

/**
 * Sticky choice for a bucket by weighted rendezvous hashing: each backend scores
 * weight / -ln(u), u uniform from hash(bucket, backend id); the highest score wins.
 * P(backend i) = weight_i / sum(weights), and the choice is monotone in the weights:
 * raising one backend's weight only moves buckets onto it, lowering it only moves buckets off it.
 * That generalises Flagger's "canary range anchored at zero" to any number of backends and needs
 * no notion of which backend is the canary. Returns -1 when every weight is 0.
 */
export function pickSticky(backends: readonly Weighted[], bucket: number): number {
  let best = -1;
  let bestScore = 0;
  for (let i = 0; i < backends.length; i++) {
    const b = backends[i] as Weighted;
    if (b.weight <= 0) continue;
    const u = (murmur3(`${bucket}|${b.id}`) + 0.5) / 4294967296;
    const score = b.weight / -Math.log(u);
    if (score > bestScore) {
      bestScore = score;
      best = i;
    }
  }
  return best;
}

/**
 * Memoised sticky choice for one compiled rule: at most STICKY_BUCKETS rendezvous computations
 * over the table's lifetime, then one hash and an array read per request.
 */
export class StickyChooser {
  private readonly memo = new Int8Array(STICKY_BUCKETS).fill(-2);
  constructor(private readonly backends: readonly Weighted[]) {}

  pick(key: string): number {
    const bucket = bucketOf(key);
    let i = this.memo[bucket] as number;
    if (i === -2) {
      i = pickSticky(this.backends, bucket);
      this.memo[bucket] = i;
    }
    return i;
  }
}
