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

export type HeaderPairs = Array<[string, string]>;

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

/** Names listed in a Connection header, which are hop-by-hop for this exchange too. */
function connectionTokens(value: string | undefined | null): Set<string> {
  const out = new Set<string>();
  if (!value) return out;
  for (const t of value.split(",")) {
    const n = t.trim().toLowerCase();
    if (n) out.add(n);
  }
  return out;
}

/** Builds the upstream request headers from the client's, as name/value pairs (lower-case names). */
export function upstreamRequestHeaders(incoming: Iterable<[string, string]>, connection: string | null | undefined, f: ForwardingFacts): HeaderPairs {
  const extra = connectionTokens(connection);
  const out: HeaderPairs = [];
  for (const [rawName, value] of incoming) {
    const name = rawName.toLowerCase();
    if (HOP_BY_HOP.has(name) || SPOOFABLE.has(name) || extra.has(name) || name.startsWith("x-isthmus-")) continue;
    if (f.authorization !== undefined && name === "authorization") continue;
    out.push([name, value]);
  }
  if (f.authorization !== undefined) out.push(["authorization", f.authorization]);
  out.push(["host", f.authority]);
  out.push(["x-forwarded-for", f.clientAddress]);
  out.push(["x-forwarded-proto", f.proto]);
  out.push(["x-forwarded-host", f.host]);
  out.push(["forwarded", `for=${forwardedNode(f.clientAddress)};host=${quoteIfNeeded(f.host)};proto=${f.proto}`]);
  return out;
}

/** Copies upstream response headers for the client, minus hop-by-hop ones. */
export function clientResponseHeaders(upstream: Iterable<[string, string]>, connection: string | null | undefined): Headers {
  const extra = connectionTokens(connection);
  const out = new Headers();
  for (const [rawName, value] of upstream) {
    const name = rawName.toLowerCase();
    if (HOP_BY_HOP.has(name) || extra.has(name)) continue;
    out.append(name, value);
  }
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
