// The Node runtime's data plane, below the web Request/Response layer: node:http's request goes
// straight to the shared data-plane logic (forward.ts, exchange.ts) and the upstream's answer
// straight back to the socket. The Hono app still serves everything else: the admin API, health,
// the UI, /.well-known, and any data-plane request this fast path does not take (see `takes`).
import type { IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import { handleDataPlane, type ClientSignal, type DataPlaneAnswer, type DataPlaneDeps, type IncomingRequest } from "../proxy/forward.ts";
import { problem, problemType } from "../http/problem.ts";
import type { Logger } from "../util/log.ts";
import { errorMessage } from "../util/log.ts";
import { RelayBody } from "./node-upstream.ts";

/**
 * Same tests as @hono/node-server's fast URL path: a plain lower-case host, and a request target
 * with nothing to normalise; except that a "#" is not plain either (URL parsing drops a fragment).
 */
const PLAIN_HOST = /^[a-z0-9._-]+(?::(?:[1-5]\d{3,4}|[6-9]\d{3}))?$/;
const PLAIN_TARGET = /^\/[!$&-;=?-[\]_a-z~]*$/;
const DOT_SEGMENT = /\/\.\.?(?:[/?#]|$)/;

/**
 * Whether this request takes the fast path. Everything else (gateway endpoints, targets that need
 * URL normalisation, unusual hosts) goes through the Hono app, which gives the same answers.
 */
export function takes(req: IncomingMessage): boolean {
  const url = req.url ?? "";
  const host = req.headers.host;
  return (
    host !== undefined &&
    PLAIN_HOST.test(host) &&
    PLAIN_TARGET.test(url) &&
    !DOT_SEGMENT.test(url) &&
    !url.startsWith("/_isthmus") &&
    !url.startsWith("/.well-known")
  );
}

export function createNodeDataPlane(deps: DataPlaneDeps, log: Logger): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    let answer: Promise<DataPlaneAnswer>;
    try {
      answer = handleDataPlane(deps, incomingOf(req, res));
    } catch (err) {
      answer = Promise.reject(err);
    }
    // Writing can fail too (a header node:http refuses): caught here, never an unhandled rejection.
    answer
      .then((a) => write(a, res))
      .catch((err: unknown) => {
        log.error("unexpected error on the data plane", { error: errorMessage(err), stack: (err as Error)?.stack });
        if (res.headersSent || res.destroyed) {
          res.destroy();
          return;
        }
        writeResponse(problem({ type: problemType("internal"), title: "Internal error", status: 500 }), res).catch(() => res.destroy());
      });
  };
}

/** The request view of the fast path (exported for bench/hot-path.ts). */
export function incomingOf(req: IncomingMessage, res: ServerResponse): IncomingRequest {
  return new NodeIncoming(req, res);
}

/**
 * The client's request read straight off node:http. A class, not an object of closures: one
 * allocation per request, and nothing is parsed that the route does not ask for.
 */
class NodeIncoming implements IncomingRequest, ClientSignal {
  readonly method: string;
  readonly host: string;
  readonly path: string;
  readonly search: string;
  readonly clientAddress: string;
  readonly proto: "http" | "https";
  readonly body: IncomingMessage | null;
  readonly signal: ClientSignal = this;
  claims?: Readonly<Record<string, unknown>>;
  aborted = false;
  private params: URLSearchParams | null = null;
  private abortListeners: Array<{ clientGone(): void }> | null = null;

  constructor(
    private readonly req: IncomingMessage,
    res: ServerResponse,
  ) {
    const url = req.url as string;
    const q = url.indexOf("?");
    const socket = req.socket as TLSSocket;
    this.method = req.method ?? "GET";
    this.host = joined(req.rawHeaders, "host") ?? "";
    this.path = q < 0 ? url : url.slice(0, q);
    this.search = q < 0 ? "" : url.slice(q);
    this.clientAddress = clientAddressOf(socket);
    this.proto = socket.encrypted ? "https" : "http";
    this.body = requestBody(req);
    res.once("close", onResponseClose);
    (res as ResponseWithIncoming)[INCOMING] = this;
  }

  header(name: string): string | null {
    // node:http keeps only the first of some repeated fields; these must be read whole (two
    // Authorization headers are an invalid token, not the first one).
    if (SINGLE_VALUED.has(name)) return joined(this.req.rawHeaders, name);
    const v = this.req.headers[name];
    return v === undefined ? null : Array.isArray(v) ? v.join(", ") : v;
  }

  headerList(): string[] {
    return this.req.rawHeaders;
  }

  query(name: string): string | undefined {
    this.params ??= new URLSearchParams(this.search.slice(1));
    return this.params.get(name) ?? undefined;
  }

  onAbort(target: { clientGone(): void }): void {
    (this.abortListeners ??= []).push(target);
  }

  /** The response closed before it was finished: the client went away. */
  gone(): void {
    this.aborted = true;
    const listeners = this.abortListeners;
    this.abortListeners = null;
    if (listeners) for (const t of listeners) t.clientGone();
  }
}

/** Fields of which node:http keeps only the first occurrence, that the data plane reads. */
const SINGLE_VALUED = new Set(["authorization", "content-length", "content-type", "host", "user-agent", "referer"]);

/** Every value of a field joined with ", " (as web Headers do), or null when absent. */
function joined(raw: string[], name: string): string | null {
  let out: string | null = null;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = raw[i] as string;
    if (k.length === name.length && k.toLowerCase() === name) out = out === null ? (raw[i + 1] as string) : `${out}, ${raw[i + 1] as string}`;
  }
  return out;
}

const INCOMING = Symbol("isthmus.incoming");
type ResponseWithIncoming = ServerResponse & { [INCOMING]?: NodeIncoming };

// One module-level listener for every response (a closure per request would cost more).
function onResponseClose(this: ServerResponse): void {
  if (!this.writableFinished) (this as ResponseWithIncoming)[INCOMING]?.gone();
}

function hasName(list: string[], name: string): boolean {
  for (let i = 0; i < list.length; i += 2) if (list[i] === name) return true;
  return false;
}

/** The peer's address; dual-stack sockets report IPv4 peers as ::ffff:a.b.c.d, forwarded as plain IPv4. */
export function clientAddressOf(socket: { remoteAddress?: string }): string {
  const addr = socket.remoteAddress ?? "";
  return addr.startsWith("::ffff:") && /^::ffff:\d+\.\d+\.\d+\.\d+$/.test(addr) ? addr.slice(7) : addr;
}

/** The request itself as the body to stream upstream, or null when it announces none. */
export function requestBody(req: IncomingMessage): IncomingMessage | null {
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0") ? req : null;
}

/**
 * Writes the answer. Synchronous for the upstream's answers, the hot path (no promise per request);
 * the gateway's own answers (web Responses) and web-stream bodies return a promise.
 */
function write(a: DataPlaneAnswer, res: ServerResponse): void | Promise<void> {
  if (res.destroyed) {
    if (!(a instanceof Response)) a.body?.discard();
    return;
  }
  if (a instanceof Response) return writeResponse(a, res);
  const body = a.body;
  // Already complete (a small answer): status line, headers and body leave in one write.
  const whole = body instanceof RelayBody ? body.takeComplete() : null;
  const flat = a.headers;
  if (whole && !hasName(flat, "content-length")) flat.push("content-length", String(whole.length));
  try {
    res.writeHead(a.status, flat);
  } catch (err) {
    // A header node:http will not send (undici's parser is not as strict): the upstream's answer cannot be relayed.
    if (body) body.discard();
    return write(problem({ type: problemType("upstream-unavailable"), title: "Upstream unavailable", status: 502, detail: `the upstream's response cannot be relayed: ${errorMessage(err)}` }), res);
  }
  if (body === null) {
    res.end();
    return;
  }
  if (whole) {
    res.end(whole);
    return;
  }
  if (body instanceof RelayBody) {
    body.pipeToNode(res);
    return;
  }
  // Another client's body (not the case on Node): relay its web stream.
  return relayWeb(body, res);
}

/** The gateway's own answers (problems): small, and off the hot path. */
async function writeResponse(a: Response, res: ServerResponse): Promise<void> {
  const text = Buffer.from(await a.text());
  const flat: string[] = [];
  a.headers.forEach((v, k) => flat.push(k, v));
  flat.push("content-length", String(text.length));
  res.writeHead(a.status, flat);
  res.end(text);
}

async function relayWeb(body: NonNullable<Exclude<DataPlaneAnswer, Response>["body"]>, res: ServerResponse): Promise<void> {
  const reader = body.toWeb().getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!res.write(value)) await new Promise((r) => res.once("drain", r));
    }
    res.end();
  } catch {
    res.destroy();
  }
}
