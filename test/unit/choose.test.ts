import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { murmur3 } from "../../src/routing/hash.ts";
import { STICKY_BUCKETS, StickyChooser, bucketOf, pickSticky, pickWeighted, type Weighted } from "../../src/routing/choose.ts";

// Vectors checked against an independent MurmurHash3_x86_32 implementation (Python, over UTF-8 bytes);
// "" seed 1 / seed 0xffffffff, "a", "abc", "abcd" and the fox sentence are also SMHasher's published values.
describe("murmur3 (MurmurHash3_x86_32 over UTF-8)", () => {
  it.each([
    ["", 0, 0x00000000],
    ["", 1, 0x514e28b7],
    ["", 0xffffffff, 0x81f16f39],
    ["a", 0, 0x3c2569b2],
    ["ab", 0, 0x9bbfd75f],
    ["abc", 0, 0xb3dd93fa],
    ["abcd", 0, 0x43ed676a],
    ["hello", 0, 0x248bfa47],
    ["hello", 42, 0xe2dbd2e1],
    ["The quick brown fox jumps over the lazy dog", 0, 0x2e4ff723],
    ["日本語", 0, 0xa5a47297],
  ])("murmur3(%j, %d) = %d", (text, seed, want) => {
    expect(murmur3(text, seed)).toBe(want);
  });

  it("the ASCII path (no encoding) and the UTF-8 byte path agree with a reference over the UTF-8 bytes", () => {
    /** MurmurHash3_x86_32 written plainly over bytes, as the reference. */
    const reference = (bytes: Uint8Array, seed: number): number => {
      const mix = (k: number) => Math.imul(((Math.imul(k, 0xcc9e2d51) << 15) | (Math.imul(k, 0xcc9e2d51) >>> 17)), 0x1b873593);
      let h = seed >>> 0;
      const blocks = bytes.length & ~3;
      for (let i = 0; i < blocks; i += 4) {
        h ^= mix((bytes[i] ?? 0) | ((bytes[i + 1] ?? 0) << 8) | ((bytes[i + 2] ?? 0) << 16) | ((bytes[i + 3] ?? 0) << 24));
        h = (Math.imul((h << 13) | (h >>> 19), 5) + 0xe6546b64) | 0;
      }
      let k = 0;
      for (let i = bytes.length - 1; i >= blocks; i--) k = (k << 8) | (bytes[i] ?? 0);
      if (bytes.length & 3) h ^= mix(k);
      h ^= bytes.length;
      h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
      h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
      return (h ^ (h >>> 16)) >>> 0;
    };
    const utf8 = new TextEncoder();
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: "binary-ascii" }), fc.string({ unit: "grapheme" }), fc.string({ unit: "binary" })), fc.integer({ min: 0, max: 0xffffffff }), (s, seed) => {
        expect(murmur3(s, seed)).toBe(reference(utf8.encode(s), seed));
      }),
      { numRuns: 2000 },
    );
  });

  it("hashes a UTF-8 key deterministically, as an unsigned 32-bit integer", () => {
    const h = murmur3("日本語");
    expect(murmur3("日本語")).toBe(h);
    expect(murmur3("日本語", 0)).toBe(h);
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), fc.integer({ min: 0, max: 0xffffffff }), (s, seed) => {
        const v = murmur3(s, seed);
        expect(Number.isInteger(v) && v >= 0 && v <= 0xffffffff).toBe(true);
        expect(murmur3(s, seed)).toBe(v);
      }),
    );
  });
});

// ------------------------------------------------------------------ pickWeighted

const backendsOf = (weights: readonly number[]): Weighted[] => weights.map((weight, i) => ({ id: `c${i % 3}/svc-${i}.shop:${8080 + i}`, weight }));
const weightsArb = fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 1, maxLength: 16 });
const unitArb = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });

describe("pickWeighted", () => {
  it("returns -1 iff every weight is 0, and otherwise an index with positive weight", () => {
    fc.assert(
      fc.property(weightsArb, unitArb, (weights, random) => {
        const i = pickWeighted(backendsOf(weights), random);
        if (weights.every((w) => w === 0)) expect(i).toBe(-1);
        else {
          expect(i).toBeGreaterThanOrEqual(0);
          expect(i).toBeLessThan(weights.length);
          expect(weights[i]).toBeGreaterThan(0);
        }
      }),
      { numRuns: 1_000 },
    );
  });

  it("never picks a weight-0 backend, even at the ends of [0, 1)", () => {
    fc.assert(
      fc.property(weightsArb, (weights) => {
        fc.pre(weights.some((w) => w > 0));
        for (const random of [0, Number.MIN_VALUE, 0.5, 1 - Number.EPSILON / 2]) {
          const i = pickWeighted(backendsOf(weights), random);
          expect(weights[i]).toBeGreaterThan(0);
        }
      }),
    );
  });

  it("returns -1 for no backends", () => {
    expect(pickWeighted([], 0.5)).toBe(-1);
  });

  it("matches the weights exactly over a deterministic grid of randoms", () => {
    // One random in the middle of each of `total` equal slices of [0, 1): each backend must get
    // exactly `weight` of them.
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 1, maxLength: 8 }), (weights) => {
        const total = weights.reduce((s, w) => s + w, 0);
        fc.pre(total > 0);
        const counts = weights.map(() => 0);
        for (let k = 0; k < total; k++) {
          const i = pickWeighted(backendsOf(weights), (k + 0.5) / total);
          counts[i] = (counts[i] ?? 0) + 1;
        }
        expect(counts).toEqual(weights);
      }),
      { numRuns: 200 },
    );
  });

  it("maps the concrete 90/10 split onto [0, 0.9) and [0.9, 1)", () => {
    const b = backendsOf([90, 10]);
    expect(pickWeighted(b, 0)).toBe(0);
    expect(pickWeighted(b, 0.899)).toBe(0);
    expect(pickWeighted(b, 0.9)).toBe(1);
    expect(pickWeighted(b, 0.999)).toBe(1);
  });
});

// ------------------------------------------------------------------ sticky choice

const BUCKETS = Array.from({ length: STICKY_BUCKETS }, (_, b) => b);
const assignment = (backends: readonly Weighted[]): number[] => BUCKETS.map((b) => pickSticky(backends, b));
/** 2..5 backends with distinct ids and weights 1..1000. */
const stickyWeightsArb = fc.array(fc.integer({ min: 1, max: 1000 }), { minLength: 2, maxLength: 5 });

describe("pickSticky", () => {
  it("is deterministic", () => {
    fc.assert(
      fc.property(weightsArb, fc.integer({ min: 0, max: STICKY_BUCKETS - 1 }), (weights, bucket) => {
        const b = backendsOf(weights);
        expect(pickSticky(b, bucket)).toBe(pickSticky(backendsOf(weights), bucket));
      }),
    );
  });

  it("never chooses a weight-0 backend, and returns -1 iff every weight is 0", () => {
    fc.assert(
      fc.property(weightsArb, fc.integer({ min: 0, max: STICKY_BUCKETS - 1 }), (weights, bucket) => {
        const i = pickSticky(backendsOf(weights), bucket);
        if (weights.every((w) => w === 0)) expect(i).toBe(-1);
        else expect(weights[i]).toBeGreaterThan(0);
      }),
      { numRuns: 2_000 },
    );
    expect(pickSticky([], 0)).toBe(-1);
  });

  it("splits the 10,000 buckets in proportion to the weights, within ±2 percentage points", () => {
    fc.assert(
      fc.property(stickyWeightsArb, (weights) => {
        const total = weights.reduce((s, w) => s + w, 0);
        const counts = weights.map(() => 0);
        for (const i of assignment(backendsOf(weights))) counts[i] = (counts[i] ?? 0) + 1;
        weights.forEach((w, i) => {
          const share = (counts[i] as number) / STICKY_BUCKETS;
          expect(Math.abs(share - w / total), `backend ${i} of ${JSON.stringify(weights)}`).toBeLessThanOrEqual(0.02);
        });
      }),
      { numRuns: 60 },
    );
  });

  it("is monotone: raising one weight only moves buckets onto that backend", () => {
    fc.assert(
      fc.property(stickyWeightsArb, fc.nat(), fc.integer({ min: 1, max: 999 }), (weights, at, raise) => {
        const j = at % weights.length;
        const before = assignment(backendsOf(weights));
        const raised = [...weights];
        raised[j] = Math.min(1000, (weights[j] as number) + raise);
        const after = assignment(backendsOf(raised));
        const wrong = BUCKETS.filter((b) => after[b] !== before[b] && (before[b] === j || after[b] !== j));
        expect(wrong, `buckets that left backend ${j} or moved between others`).toEqual([]);
        if (raised[j] !== weights[j]) expect(after.filter((i) => i === j).length).toBeGreaterThanOrEqual(before.filter((i) => i === j).length);
      }),
      { numRuns: 25 },
    );
  });

  it("is monotone: lowering one weight only moves buckets off that backend", () => {
    fc.assert(
      fc.property(stickyWeightsArb, fc.nat(), fc.integer({ min: 1, max: 1000 }), (weights, at, lower) => {
        const j = at % weights.length;
        const before = assignment(backendsOf(weights));
        const lowered = [...weights];
        lowered[j] = Math.max(0, (weights[j] as number) - lower);
        const after = assignment(backendsOf(lowered));
        const wrong = BUCKETS.filter((b) => after[b] !== before[b] && (before[b] !== j || after[b] === j));
        expect(wrong, `buckets that moved although they were not on backend ${j}`).toEqual([]);
        if (lowered[j] === 0) expect(after).not.toContain(j);
      }),
      { numRuns: 25 },
    );
  });

  it("keeps every canary bucket on the canary when its weight goes from 10 to 30 (and adds some)", () => {
    const ids = ["east/checkout.shop.svc.cluster.local:8080", "west/checkout-v2.shop.svc.cluster.local:8080"];
    const split = (stable: number, canary: number): Weighted[] => [
      { id: ids[0] as string, weight: stable },
      { id: ids[1] as string, weight: canary },
    ];
    const at10 = assignment(split(90, 10));
    const at30 = assignment(split(70, 30));
    let kept = 0;
    let added = 0;
    for (let b = 0; b < STICKY_BUCKETS; b++) {
      if (at10[b] === 1) {
        expect(at30[b], `canary bucket ${b} went back to stable`).toBe(1);
        kept++;
      } else if (at30[b] === 1) added++;
    }
    expect(kept / STICKY_BUCKETS).toBeCloseTo(0.1, 1);
    expect((kept + added) / STICKY_BUCKETS).toBeCloseTo(0.3, 1);
    expect(added).toBeGreaterThan(0);
  });

  it("does not change when every weight is scaled by the same constant", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 100 }), { minLength: 2, maxLength: 5 }), fc.integer({ min: 2, max: 10 }), (weights, k) => {
        expect(assignment(backendsOf(weights.map((w) => w * k)))).toEqual(assignment(backendsOf(weights)));
      }),
      { numRuns: 15 },
    );
  });

  it("depends on the backend ids, not on their order in the list", () => {
    fc.assert(
      fc.property(stickyWeightsArb, (weights) => {
        const b = backendsOf(weights);
        const reversed = [...b].reverse();
        const forward = assignment(b).map((i) => b[i]?.id);
        const backward = assignment(reversed).map((i) => reversed[i]?.id);
        expect(backward).toEqual(forward);
      }),
      { numRuns: 10 },
    );
  });
});

describe("bucketOf and StickyChooser", () => {
  it("bucketOf is murmur3 modulo STICKY_BUCKETS", () => {
    expect(STICKY_BUCKETS).toBe(10_000);
    expect(bucketOf("hello")).toBe(0x248bfa47 % 10_000);
    expect(bucketOf("")).toBe(0);
    fc.assert(
      fc.property(fc.string(), (key) => {
        const b = bucketOf(key);
        expect(b).toBe(murmur3(key) % STICKY_BUCKETS);
        expect(Number.isInteger(b) && b >= 0 && b < STICKY_BUCKETS).toBe(true);
      }),
    );
  });

  it("StickyChooser.pick(key) equals pickSticky(backends, bucketOf(key)), also when asked again (memoised)", () => {
    fc.assert(
      fc.property(weightsArb, fc.array(fc.string({ unit: "grapheme" }), { minLength: 1, maxLength: 50 }), (weights, keys) => {
        const backends = backendsOf(weights);
        const chooser = new StickyChooser(backends);
        for (const key of [...keys, ...keys]) expect(chooser.pick(key)).toBe(pickSticky(backends, bucketOf(key)));
      }),
      { numRuns: 300 },
    );
  });

  it("StickyChooser returns -1 when every weight is 0, every time", () => {
    const chooser = new StickyChooser(backendsOf([0, 0]));
    expect(chooser.pick("user-1")).toBe(-1);
    expect(chooser.pick("user-1")).toBe(-1);
  });

  it("two choosers over equal backends agree (same key, same backend on every instance)", () => {
    const a = new StickyChooser(backendsOf([90, 10]));
    const b = new StickyChooser(backendsOf([90, 10]));
    for (let u = 0; u < 1_000; u++) expect(a.pick(`user-${u}`)).toBe(b.pick(`user-${u}`));
  });
});
