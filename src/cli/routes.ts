// isthmus routes; isthmus route get NAME (rules with their backends' weights as bars).
import type { Command, Ctx, RouteRule, RouteView } from "./context.ts";
import { ruleName } from "./context.ts";
import { bar, pad, percent, visibleLength } from "./output.ts";

async function listRoutes(ctx: Ctx): Promise<number> {
  const { items } = await ctx.client.admin<{ items: RouteView[] }>("GET", "/routes");
  if (ctx.out.json) {
    ctx.out.emit({ items });
    return 0;
  }
  if (items.length === 0) {
    ctx.out.line("No routes. Write one with: isthmus apply -f FILE");
    return 0;
  }
  ctx.out.table(
    ["NAME", "HOSTS", "RULES", "REVISION"],
    items.map((r) => [r.name, r.hostnames.length > 0 ? r.hostnames.join(",") : "*", String(r.rules.length), String(r.revision)]),
  );
  return 0;
}

export function describeAuthorization(a: RouteView["authorization"]): string {
  if (!a) return "any authenticated caller";
  if (a.unauthenticated) return "anyone (unauthenticated)";
  return (a.identities ?? []).join(", ");
}

function describeMatch(m: RouteRule["matches"][number]): string {
  const parts: string[] = [];
  if (m.method) parts.push(m.method);
  parts.push(m.path ? `${m.path.type === "Exact" ? "=" : ""}${m.path.value}${m.path.type === "PathPrefix" && !m.path.value.endsWith("*") ? "*" : ""}` : "/*");
  for (const h of m.headers ?? []) parts.push(`${h.name}: ${h.value}`);
  for (const q of m.queryParams ?? []) parts.push(`?${q.name}=${q.value}`);
  return parts.join(" ");
}

/** Lines of one rule: matches, policies, then each backend as `east  ██████████████████░░ 90%`. */
export function ruleLines(ctx: Ctx, rule: RouteRule, index: number): string[] {
  const o = ctx.out;
  const lines = [o.bold(`rule ${ruleName(rule, index)}`)];
  lines.push(`  matches:   ${rule.matches.map(describeMatch).join(" | ")}`);
  if (rule.timeouts) lines.push(`  timeouts:  ${Object.entries(rule.timeouts).map(([k, v]) => `${k} ${v}`).join(", ")}`);
  if (rule.retry) lines.push(`  retry:     ${rule.retry.attempts ?? 1} attempt(s) on ${(rule.retry.codes ?? [502, 503, 504]).join(",")}, backoff ${rule.retry.backoff ?? "25ms"}`);
  if (rule.sessionPersistence) lines.push(`  sticky on: ${rule.sessionPersistence.key.map((k) => Object.entries(k).map(([t, v]) => `${t} ${v}`).join("")).join(", then ")}`);
  const total = rule.backendRefs.reduce((a, b) => a + b.weight, 0);
  const width = Math.max(...rule.backendRefs.map((b) => visibleLength(b.cluster)));
  const svcWidth = Math.max(...rule.backendRefs.map((b) => visibleLength(`${b.service}${b.port ? `:${b.port}` : ""}`)));
  for (const b of rule.backendRefs) {
    const share = total > 0 ? b.weight / total : 0;
    const filled = b.weight > 0 ? o.green(bar(share)) : o.dim(bar(share));
    const target = pad(`${b.service}${b.port ? `:${b.port}` : ""}`, svcWidth);
    const failover = b.failover?.length ? `  failover: ${b.failover.join(" > ")}` : "";
    lines.push(`  ${pad(b.cluster, width)}  ${filled} ${pad(percent(share), 4)}  ${target}  weight ${b.weight}${failover}`);
  }
  return lines;
}

async function getRoute(ctx: Ctx): Promise<number> {
  const name = ctx.args[0] as string;
  const r = await ctx.client.admin<RouteView>("GET", `/routes/${encodeURIComponent(name)}`);
  if (ctx.out.json) {
    ctx.out.emit(r);
    return 0;
  }
  const o = ctx.out;
  o.line(`${o.bold(`route/${r.name}`)}  revision ${r.revision}  updated ${r.updatedAt}`);
  o.line(`hosts:         ${r.hostnames.length > 0 ? r.hostnames.join(", ") : "* (every host)"}`);
  o.line(`authorization: ${describeAuthorization(r.authorization)}`);
  r.rules.forEach((rule, i) => {
    o.line();
    for (const l of ruleLines(ctx, rule, i)) o.line(l);
  });
  return 0;
}

export const routeCommands: Command[] = [
  { path: ["routes"], args: [], flags: [], summary: "list routes (hosts, rules, revision)", run: listRoutes },
  { path: ["route", "get"], args: ["NAME"], flags: [], summary: "show a route's rules with their backends' weights", run: getRoute },
];
