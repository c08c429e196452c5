import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { formatDuration, parseDuration } from "../../src/config/duration.ts";

describe("parseDuration", () => {
  it.each([
    ["800ms", 800],
    ["2s", 2_000],
    ["1m30s", 90_000],
    ["1h", 3_600_000],
    ["0s", 0],
    ["0ms", 0],
    ["1h2m3s4ms", 3_600_000 + 2 * 60_000 + 3_000 + 4],
    ["1m", 60_000],
    ["1ms", 1],
    ["99999s", 99_999_000],
    ["00002s", 2_000],
  ])("parses %j as %d ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each([
    ["", "empty"],
    ["2", "no unit"],
    ["2x", "unknown unit"],
    ["2S", "units are lower case"],
    ["s", "unit without a number"],
    ["-1s", "negative"],
    ["+1s", "explicit sign"],
    ["1.5s", "fraction"],
    ["1s1s", "repeated unit"],
    ["1ms1s1ms", "repeated unit ms"],
    ["99999999s", "more than five digits"],
    ["123456ms", "six digits"],
    ["1h2m3s4ms1h", "five parts"],
    [" 2s", "leading space"],
    ["2s ", "trailing space"],
    ["2 s", "space before the unit"],
    ["1d", "days are not a unit"],
    ["1us", "microseconds are not a unit"],
    ["0x10s", "hex"],
    ["1".repeat(40) + "s", "far too long"],
  ])("rejects %j (%s)", (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });

  it("is not confused by a previous call (the sticky regex state is reset)", () => {
    expect(parseDuration("2x")).toBeUndefined();
    expect(parseDuration("1m30s")).toBe(90_000);
    expect(parseDuration("1m3")).toBeUndefined();
    expect(parseDuration("5s")).toBe(5_000);
  });
});

describe("formatDuration", () => {
  it.each([
    [0, "0s"],
    [1, "1ms"],
    [800, "800ms"],
    [1_000, "1s"],
    [1_500, "1s500ms"],
    [60_000, "1m"],
    [90_000, "1m30s"],
    [3_600_000, "1h"],
    [3_723_004, "1h2m3s4ms"],
    [3_599_999, "59m59s999ms"],
  ])("formats %d ms as %j", (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it("round-trips through parseDuration for every value from 0 to one hour", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 3_600_000 }), (n) => {
        expect(parseDuration(formatDuration(n))).toBe(n);
      }),
      { numRuns: 2_000 },
    );
  });

  it("round-trips at the edges of every unit", () => {
    for (const n of [0, 1, 999, 1_000, 1_001, 59_999, 60_000, 60_001, 3_599_999, 3_600_000]) {
      expect(parseDuration(formatDuration(n))).toBe(n);
    }
  });
});
