// Header hygiene between client and upstream: hop-by-hop headers never cross the gateway,
// client-supplied forwarding headers are replaced, never trusted.

/** RFC 9110 section 7.6.1 connection-specific headers, plus the de-facto ones proxies also drop. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "http2-settings",
  // The server already answered the client's "100 Continue"; the upstream exchange is ours.
  "expect",
]);

/** Set by the gateway itself; a client must not be able to forge them. */
const SPOOFABLE = new Set(["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "forwarded", "host"]);

/**
 * A header list as node:http and undici hold it: [name, value, name, value, ...]. The data plane
 * passes headers in this form end to end, so no pair arrays are built per request.
 */
export type HeaderList = string[];

/** Tells which route revision answered (every data-plane answer carries it). */
export const ROUTE_REVISION_HEADER = "x-isthmus-route-revision";

/** The route-revision header of the gateway's own answers (problems); built only when one is sent. */
export function revisionHeaderOf(rule: { readonly revision: number }): Record<string, string> {
  return { [ROUTE_REVISION_HEADER]: String(rule.revision) };
}

export interface ForwardingFacts {
  clientAddress: string;
  proto: "http" | "https";
  /** The Host the client asked for. */
  host: string;
  /** Host header for the upstream: the backend's service[:port]. */
  authority: string;
  /** When set, replaces the client's Authorization (the caller's token never crosses the gateway). */
  authorization?: string;
}

const JUST_CLOSE: ReadonlySet<string> = new Set(["close"]);

/** Names listed in a Connection header, which are hop-by-hop for this exchange too; null when it lists none beyond HOP_BY_HOP. */
function connectionTokens(value: string | undefined | null): ReadonlySet<string> | null {
  if (!value) return null;
  // Nearly every answer says just one of these: no set to build per request.
  if (value.length <= 10) {
    const v = value.toLowerCase();
    if (v === "keep-alive") return null;
    if (v === "close") return JUST_CLOSE;
  }
  const out = new Set<string>();
  for (const t of value.split(",")) {
    const n = t.trim().toLowerCase();
    if (n) out.add(n);
  }
  return out;
}

/** Builds the upstream request headers from the client's (lower-case names). */
export function upstreamRequestHeaders(incoming: HeaderList, connection: string | null | undefined, f: ForwardingFacts): HeaderList {
  const extra = connectionTokens(connection);
  const out: HeaderList = [];
  for (let i = 0; i + 1 < incoming.length; i += 2) {
    const name = (incoming[i] as string).toLowerCase();
    if (HOP_BY_HOP.has(name) || SPOOFABLE.has(name) || extra?.has(name) || name.startsWith("x-isthmus-")) continue;
    if (f.authorization !== undefined && name === "authorization") continue;
    out.push(name, incoming[i + 1] as string);
  }
  if (f.authorization !== undefined) out.push("authorization", f.authorization);
  out.push(
    "host",
    f.authority,
    "x-forwarded-for",
    f.clientAddress,
    "x-forwarded-proto",
    f.proto,
    "x-forwarded-host",
    f.host,
    "forwarded",
    `for=${forwardedNode(f.clientAddress)};host=${quoteIfNeeded(f.host)};proto=${f.proto}`,
  );
  return out;
}

/** Copies upstream response headers for the client, minus hop-by-hop ones. */
export function clientResponseHeaders(upstream: HeaderList, connection: string | null | undefined): HeaderList {
  const extra = connectionTokens(connection);
  const out: HeaderList = [];
  for (let i = 0; i + 1 < upstream.length; i += 2) {
    const name = (upstream[i] as string).toLowerCase();
    // The gateway sets the route revision itself.
    if (HOP_BY_HOP.has(name) || extra?.has(name) || name === ROUTE_REVISION_HEADER) continue;
    out.push(name, upstream[i + 1] as string);
  }
  return out;
}

/** A header list from web Headers. */
export function headerListOf(headers: Headers): HeaderList {
  const out: HeaderList = [];
  headers.forEach((v, k) => void out.push(k, v));
  return out;
}

/** RFC 7239 node: IPv6 addresses are bracketed and quoted; unknown stays "unknown". */
function forwardedNode(addr: string): string {
  if (!addr) return "unknown";
  if (addr.includes(":")) return `"[${addr}]"`;
  return addr;
}

function quoteIfNeeded(v: string): string {
  return /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(v) ? v : `"${v.replace(/["\\]/g, "\\$&")}"`;
}
