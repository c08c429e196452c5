// Request matching against the compiled table: host entry first, then the first fitting match.
import type { CompiledMatch, HostEntry, RoutingTable } from "./table.ts";

export interface RequestFacts {
  /** Lower-case host without port or trailing dot. */
  host: string;
  /** Normalised path (dot segments resolved), without the query. */
  path: string;
  method: string;
  header(name: string): string | undefined;
  query(name: string): string | undefined;
}

/** Normalises a Host header value: lower case, port and trailing dot removed. */
export function normalizeHost(host: string | null | undefined): string {
  if (!host) return "";
  let h = host.trim().toLowerCase();
  if (h.startsWith("[")) {
    const end = h.indexOf("]");
    return end > 0 ? h.slice(0, end + 1) : h;
  }
  const colon = h.indexOf(":");
  if (colon >= 0) h = h.slice(0, colon);
  return h.endsWith(".") ? h.slice(0, -1) : h;
}

/** The most specific host entry: exact name, then the longest wildcard suffix, then routes without hostnames. */
export function findHostEntry(table: RoutingTable, host: string): HostEntry | null {
  const exact = table.exact.get(host);
  if (exact) return exact;
  if (table.wildcard.size > 0) {
    for (let dot = host.indexOf("."); dot >= 0; dot = host.indexOf(".", dot + 1)) {
      const entry = table.wildcard.get(host.slice(dot));
      // "*.example.com" matches "a.example.com" but not "example.com" itself: the label before the dot must be non-empty.
      if (entry && dot > 0) return entry;
    }
  }
  return table.catchAll;
}

/** Why a match does not fit the request, or null when it fits. */
export function mismatch(m: CompiledMatch, req: RequestFacts): string | null {
  if (m.pathType === "Exact") {
    if (req.path !== m.pathValue) return `path is not exactly ${m.pathValue}`;
  } else if (!prefixMatches(m.pathValue, req.path)) return `path has no prefix ${m.pathValue}`;
  if (m.method !== undefined && req.method !== m.method) return `method is not ${m.method}`;
  for (const [name, value] of m.headers) if (req.header(name) !== value) return `header ${name} is not "${value}"`;
  for (const [name, value] of m.query) if (req.query(name) !== value) return `query parameter ${name} is not "${value}"`;
  return null;
}

/** Gateway API PathPrefix matches whole path elements: "/foo" matches "/foo" and "/foo/bar", not "/foobar". */
export function prefixMatches(prefix: string, path: string): boolean {
  if (prefix === "/") return true;
  const p = prefix.endsWith("/") ? prefix.slice(0, -1) : prefix;
  return path === p || (path.startsWith(p) && path.charCodeAt(p.length) === 47 /* "/" */);
}

export function matchRequest(table: RoutingTable, req: RequestFacts): CompiledMatch | null {
  const entry = findHostEntry(table, req.host);
  if (!entry) return null;
  for (const m of entry.matches) if (mismatch(m, req) === null) return m;
  return null;
}
