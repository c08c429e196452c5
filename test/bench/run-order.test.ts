import { describe, expect, it } from "vitest";
import { roundOrder, saturationCycle } from "../../bench/run-order.ts";

const names = ["direct", "nginx", "fastify-proxy", "node-floor", "isthmus-plain", "isthmus-plain-samereq", "isthmus-full"];
const targets = names.map((name) => ({ name }));
const cycle = saturationCycle(targets, "isthmus-full", ["isthmus-plain-samereq", "fastify-proxy"]);

describe("saturation run order", () => {
  it("keeps every target once", () => {
    expect(cycle.map((t) => t.name).sort()).toEqual([...names].sort());
  });

  it("runs isthmus-full next to each target of its goal ratios in every round but at most one", () => {
    for (const other of ["fastify-proxy", "isthmus-plain-samereq"]) {
      let apart = 0;
      for (let round = 0; round < names.length; round++) {
        const order = roundOrder(cycle, round).map((t) => t.name);
        if (Math.abs(order.indexOf("isthmus-full") - order.indexOf(other)) !== 1) apart++;
      }
      expect(apart, other).toBeLessThanOrEqual(1);
    }
  });

  it("starts each round one place further round the cycle, so every target runs first once in a full turn", () => {
    const firsts = names.map((_, round) => roundOrder(cycle, round)[0]?.name);
    expect(new Set(firsts).size).toBe(names.length);
  });

  it("leaves the order alone when a target of the pairs is missing (BENCH_TARGETS chose fewer)", () => {
    const few = targets.filter((t) => t.name !== "fastify-proxy");
    expect(saturationCycle(few, "isthmus-full", ["isthmus-plain-samereq", "fastify-proxy"])).toEqual(few);
  });
});
