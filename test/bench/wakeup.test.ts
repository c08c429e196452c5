// bench/wakeup.c, the machine's cross-core wake-up cost printed beside the one-connection figures:
// built with the machine's compiler, run for real on CPU 0.
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { buildC } from "../../bench/native.ts";

describe("bench/wakeup.c", () => {
  const binary = buildC("wakeup");

  it("times real round trips and reports their quantiles in order", () => {
    const r = spawnSync(binary, ["0", "0", "300"], { encoding: "utf8", timeout: 30_000 });
    expect(r.status).toBe(0);
    const m = /round trip p50 ([\d.]+) us, p90 ([\d.]+) us, p99 ([\d.]+) us \(300 round trips\)/.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    const [p50, p90, p99] = (m as RegExpExecArray).slice(1).map(Number) as [number, number, number];
    expect(p50).toBeGreaterThan(0);
    expect(p90).toBeGreaterThanOrEqual(p50);
    expect(p99).toBeGreaterThanOrEqual(p90);
  });

  it("refuses a call without its three arguments", () => {
    const r = spawnSync(binary, ["0"], { encoding: "utf8" });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/usage/);
  });

  it("fails clearly on a CPU the machine does not have", () => {
    const r = spawnSync(binary, ["0", "4095", "100"], { encoding: "utf8", timeout: 30_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/sched_setaffinity/);
  });
});
