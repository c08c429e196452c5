// The Node runtime's data plane, below the web Request/Response layer: the HTTP/1.1 server's request
// (http1-server.ts) goes straight to the shared data-plane logic (forward.ts, exchange.ts) and the
// upstream's answer straight back to the socket. The Hono app still serves everything else (see
// node-app-bridge.ts): the admin API, health, the UI, /.well-known, and any data-plane request this
// fast path does not take (see `takes`).
import { handleDataPlane, type ClientSignal, type DataPlaneAnswer, type DataPlaneDeps, type IncomingRequest } from "../proxy/forward.ts";
import { problem, problemType } from "../http/problem.ts";
import type { Logger } from "../util/log.ts";
import { errorMessage } from "../util/log.ts";
import { clientAddressOf, drained, InvalidHeaderError, joinedHeader, type Http1Request, type Http1Response } from "./http1-server.ts";
import { writeWebResponse } from "./node-app-bridge.ts";
import { RelayBody } from "./relay-body.ts";

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
export function takes(req: Http1Request): boolean {
  const url = req.url;
  const host = req.header("host");
  return (
    host !== null &&
    PLAIN_HOST.test(host) &&
    PLAIN_TARGET.test(url) &&
    !DOT_SEGMENT.test(url) &&
    !url.startsWith("/_isthmus") &&
    !url.startsWith("/.well-known")
  );
}

export function createNodeDataPlane(deps: DataPlaneDeps, log: Logger): (req: Http1Request, res: Http1Response) => void {
  return (req, res) => {
    let answer: Promise<DataPlaneAnswer>;
    try {
      answer = handleDataPlane(deps, incomingOf(req, res));
    } catch (err) {
      answer = Promise.reject(err);
    }
    // Writing can fail too: caught here, never an unhandled rejection.
    answer
      .then((a) => write(a, res))
      .catch((err: unknown) => {
        log.error("unexpected error on the data plane", { error: errorMessage(err), stack: (err as Error)?.stack });
        if (res.headersSent || res.destroyed) {
          res.destroy();
          return;
        }
        writeWebResponse(problem({ type: problemType("internal"), title: "Internal error", status: 500 }), res).catch(() => res.destroy());
      });
  };
}

/** The request view of the fast path (exported for bench/hot-path.ts). */
export function incomingOf(req: Http1Request, res: Http1Response): IncomingRequest {
  return new NodeIncoming(req, res);
}

/**
 * The client's request read straight off the parser. A class, not an object of closures: one
 * allocation per request, and nothing is parsed that the route does not ask for.
 */
class NodeIncoming implements IncomingRequest, ClientSignal {
  readonly method: string;
  readonly host: string;
  readonly path: string;
  readonly search: string;
  readonly clientAddress: string;
  readonly proto = "http" as const;
  readonly body: Http1Request["body"];
  readonly signal: ClientSignal = this;
  claims?: Readonly<Record<string, unknown>>;
  aborted = false;
  private params: URLSearchParams | null = null;
  private abortListeners: Array<{ clientGone(): void }> | null = null;

  constructor(
    private readonly req: Http1Request,
    res: Http1Response,
  ) {
    const url = req.url;
    const q = url.indexOf("?");
    this.method = req.method;
    this.host = req.header("host") ?? "";
    this.path = q < 0 ? url : url.slice(0, q);
    this.search = q < 0 ? "" : url.slice(q);
    this.clientAddress = clientAddressOf(req.socket);
    this.body = req.body;
    res.owner = this;
  }

  /** Every value of a field joined with ", " (two Authorization headers are an invalid token, not the first one). */
  header(name: string): string | null {
    return joinedHeader(this.req.rawHeaders, name);
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

  /** The answer was not finished when the connection closed: the client went away. */
  gone(): void {
    this.aborted = true;
    const listeners = this.abortListeners;
    this.abortListeners = null;
    if (listeners) for (const t of listeners) t.clientGone();
  }
}

/**
 * Writes the answer. Synchronous for the upstream's answers, the hot path (no promise per request);
 * the gateway's own answers (web Responses) and web-stream bodies return a promise.
 */
function write(a: DataPlaneAnswer, res: Http1Response): void | Promise<void> {
  if (res.destroyed) {
    if (!(a instanceof Response)) a.body?.discard();
    return;
  }
  if (a instanceof Response) return writeWebResponse(a, res);
  const body = a.body;
  // Already complete (a small answer): status line, headers and body leave in one write.
  const whole = body instanceof RelayBody ? body.takeComplete() : null;
  try {
    if (body === null) res.writeHead(a.status, a.headers, null);
    else if (whole) res.writeHead(a.status, a.headers, whole);
    else res.writeHead(a.status, a.headers);
  } catch (err) {
    if (!(err instanceof InvalidHeaderError)) throw err;
    // A header this server will not send (undici's parser is not as strict): the answer cannot be relayed.
    if (body) body.discard();
    return writeWebResponse(problem({ type: problemType("upstream-unavailable"), title: "Upstream unavailable", status: 502, detail: `the upstream's response cannot be relayed: ${err.message}` }), res);
  }
  if (body === null || whole) return;
  if (body instanceof RelayBody) {
    body.pipeTo(res);
    return;
  }
  // Another client's body (not the case on Node): relay its web stream.
  return relayWeb(body, res);
}

async function relayWeb(body: NonNullable<Exclude<DataPlaneAnswer, Response>["body"]>, res: Http1Response): Promise<void> {
  const reader = body.toWeb().getReader();
  res.onAbort(() => void reader.cancel().catch(() => undefined));
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!res.write(value)) await drained(res);
    }
    res.end();
  } catch {
    res.destroy();
  }
}
