import { describe, expect, it } from "vitest";
import { summarizeSameTime, type SameTimeRep } from "../../bench/same-time.ts";
import type { LoadResult } from "../../bench/wrk.ts";

const load = (requests: number, cpuUsPerRequest: number, errors = 0): LoadResult => ({ rps: requests / 4, p50us: 0, p99us: 0, maxUs: 0, errors, requests, cpuUsPerRequest });
const rep = (a: LoadResult, b: LoadResult): SameTimeRep => ({ a, b });

describe("same-time pairs: the summary", () => {
  it("reads the CPU ratio as the second's cost over the first's, and the requests ratio as first over second", () => {
    const s = summarizeSameTime([rep(load(12_000, 80), load(10_000, 100))]);
    expect(s.cpuRatio).toBeCloseTo(1.25, 10);
    expect(s.requestRatio).toBeCloseTo(1.2, 10);
  });

  it("takes medians over the repetitions (the middle pair of an even count averaged)", () => {
    const s = summarizeSameTime([
      rep(load(100, 50), load(100, 100)), // 2.0
      rep(load(100, 100), load(100, 100)), // 1.0
      rep(load(100, 100), load(100, 120)), // 1.2
      rep(load(100, 100), load(100, 130)), // 1.3
    ]);
    expect(s.cpuRatios.map((x) => Number(x.toFixed(2)))).toEqual([2, 1, 1.2, 1.3]);
    expect(s.cpuRatio).toBeCloseTo(1.25, 10);
  });

  it("says n/a (NaN), not a number, when a repetition served nothing or has no CPU figure", () => {
    expect(summarizeSameTime([rep(load(100, 80), load(0, NaN)), rep(load(100, 80), load(100, 90))]).cpuRatio).toBeNaN();
    expect(summarizeSameTime([rep(load(100, 80), load(0, NaN))]).requestRatio).toBeNaN();
    expect(summarizeSameTime([]).cpuRatio).toBeNaN();
  });

  it("adds up both targets' errors", () => {
    expect(summarizeSameTime([rep(load(100, 1, 2), load(100, 1, 3)), rep(load(100, 1, 1), load(100, 1, 0))]).errors).toBe(6);
  });
});
