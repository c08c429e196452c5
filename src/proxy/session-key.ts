// Session keys for sticky choice: the first of the rule's keys present on the request.
import type { CompiledRule } from "../routing/table.ts";

export function stickyKey(rule: CompiledRule, req: { header(name: string): string | null }, claims?: Readonly<Record<string, unknown>>): string | undefined {
  for (const k of rule.sessionKeys) {
    let v: string | undefined;
    if ("header" in k) v = req.header(k.header) ?? undefined;
    else if ("cookie" in k) v = cookieValue(req.header("cookie"), k.cookie);
    else {
      const c = claims?.[k.jwtClaim];
      v = typeof c === "string" || typeof c === "number" ? String(c) : undefined;
    }
    if (v !== undefined && v !== "") return v;
  }
  return undefined;
}

function cookieValue(header: string | null, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim().replace(/^"(.*)"$/, "$1");
  }
  return undefined;
}
