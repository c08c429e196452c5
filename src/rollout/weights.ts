// Writes a rollout's weight into its route: the rule's stable and canary backends share 100.
import type { Route } from "../config/schemas.ts";
import type { RolloutSpec } from "./schema.ts";

const same = (a: { cluster: string; service: string; port?: number | undefined }, b: { cluster: string; service: string; port?: number | undefined }) =>
  a.cluster === b.cluster && a.service === b.service && a.port === b.port;

export function ruleIndex(route: Route, ruleName: string): number {
  return route.rules.findIndex((r, i) => (r.name ?? `rule-${i}`) === ruleName);
}

/** The route with the rule's canary at `canaryWeight` and stable at the rest (the canary added if absent). */
export function withCanaryWeight(route: Route, spec: RolloutSpec, canaryWeight: number): Route {
  const next: Route = structuredClone(route);
  const i = ruleIndex(next, spec.rule);
  const rule = next.rules[i];
  if (!rule) throw new Error(`rule ${spec.rule} is not in route ${spec.route}`);
  let canary = rule.backendRefs.find((b) => same(b, spec.canary));
  if (!canary) {
    canary = { ...spec.canary, weight: 0 };
    rule.backendRefs.push(canary);
  }
  const stable = rule.backendRefs.find((b) => same(b, spec.stable));
  if (!stable) throw new Error(`the stable backend is no longer in rule ${spec.rule}`);
  canary.weight = canaryWeight;
  stable.weight = 100 - canaryWeight;
  return next;
}

/** The canary's weight as a share of 100 in the route now (0 when it is not there). */
export function currentCanaryWeight(route: Route, spec: RolloutSpec): number {
  const rule = route.rules[ruleIndex(route, spec.rule)];
  if (!rule) return 0;
  const total = rule.backendRefs.reduce((a, b) => a + b.weight, 0);
  const canary = rule.backendRefs.find((b) => same(b, spec.canary));
  return canary && total > 0 ? Math.round((canary.weight / total) * 100) : 0;
}

/** Problems with starting `spec` on `route`, as field errors. */
export function rolloutFitErrors(route: Route, spec: RolloutSpec): Array<{ path: string; message: string }> {
  const i = ruleIndex(route, spec.rule);
  if (i < 0) return [{ path: "rule", message: `route ${spec.route} has no rule named "${spec.rule}"` }];
  const rule = route.rules[i] as Route["rules"][number];
  const errors: Array<{ path: string; message: string }> = [];
  if (!rule.backendRefs.some((b) => same(b, spec.stable))) errors.push({ path: "stable", message: `is not a backend of rule ${spec.rule}` });
  const others = rule.backendRefs.filter((b) => !same(b, spec.stable) && !same(b, spec.canary) && b.weight > 0);
  if (others.length > 0) errors.push({ path: "rule", message: `rule ${spec.rule} has other backends with weight (${others.map((b) => b.cluster + "/" + b.service).join(", ")}); a rollout shifts traffic between stable and canary only` });
  return errors;
}
