// The Hono app behind the Node runtime's HTTP/1.1 server: a web Request built from the parsed
// request, and the app's web Response written back. Off the hot path (the admin API, health, the UI,
// /.well-known, and data-plane requests the fast path leaves to the app), so it favours plainness.
import type { Readable } from "node:stream";
import type { ConnectionFacts } from "../app.ts";
import type { Logger } from "../util/log.ts";
import { errorMessage } from "../util/log.ts";
import { clientAddressOf, drained, type Http1Request, type Http1Response } from "./http1-server.ts";

/** What the app's handlers find in `c.env` on Node. */
export interface NodeBindings {
  facts: ConnectionFacts;
}

export type AppFetch = (request: Request, env: NodeBindings) => Response | Promise<Response>;

export function createAppBridge(fetch: AppFetch, log: Logger): (req: Http1Request, res: Http1Response) => void {
  return (req, res) => {
    let request: Request;
    try {
      request = webRequest(req, res);
    } catch (err) {
      res.writeHead(400, ["content-type", "text/plain; charset=utf-8"], Buffer.from(`Bad request: ${errorMessage(err)}\n`));
      return;
    }
    const env: NodeBindings = {
      facts: { clientAddress: clientAddressOf(req.socket), proto: "http", body: req.body, rawQuery: rawQueryOf(req.url) },
    };
    void Promise.resolve()
      .then(() => fetch(request, env))
      .then((r) => writeWebResponse(r, res))
      .catch((err: unknown) => {
        log.error("unexpected error serving a request", { error: errorMessage(err), stack: (err as Error)?.stack });
        if (res.headersSent || res.destroyed) res.destroy();
        else res.writeHead(500, ["content-type", "text/plain; charset=utf-8"], Buffer.from("Internal Server Error\n"));
      });
  };
}

/** The request as a web Request; throws on a target or Host that make no URL (answered 400). */
function webRequest(req: Http1Request, res: Http1Response): Request {
  const headers = new Headers();
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i] as string, raw[i + 1] as string);
  const controller = new AbortController();
  res.onAbort(() => controller.abort());
  const body = req.body;
  const hasBody = body !== null && req.method !== "GET" && req.method !== "HEAD";
  return new Request(webUrl(req.url, req.header("host")), {
    method: req.method,
    headers,
    signal: controller.signal,
    ...(hasBody ? { body: lazyWebBody(body), duplex: "half" } : {}),
  } as RequestInit);
}

/**
 * The request body as a web stream that reads the Node stream only when the app reads it: the
 * data-plane handler streams `facts.body` itself, which a web stream pulling eagerly would drain.
 */
function lazyWebBody(body: Readable): ReadableStream<Uint8Array> {
  let it: AsyncIterator<Buffer> | null = null;
  return new ReadableStream<Uint8Array>(
    {
      async pull(ctl) {
        it ??= body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
        const r = await it.next();
        if (r.done) ctl.close();
        else ctl.enqueue(new Uint8Array(r.value.buffer, r.value.byteOffset, r.value.byteLength));
      },
      cancel() {
        body.destroy();
      },
    },
    { highWaterMark: 0 },
  );
}

/** As @hono/node-server builds it: origin-form against Host, or absolute-form; never a backslash in the path. */
export function webUrl(target: string, host: string | null): string {
  if (target[0] !== "/") {
    if (/^https?:\/\//i.test(target)) {
      noBackslash(target);
      return new URL(target).href;
    }
    throw new Error("invalid request target");
  }
  if (!host) throw new Error("missing Host header");
  noBackslash(target);
  const url = new URL(`http://${host}${target}`);
  const bare = (host.startsWith("[") ? host.replace(/:\d+$/, "") : host.replace(/:\d*$/, "")).toLowerCase();
  if (url.hostname !== bare) throw new Error("invalid Host header");
  return url.href;
}

function noBackslash(target: string): void {
  const b = target.indexOf("\\");
  if (b === -1) return;
  const q = target.indexOf("?");
  if (q === -1 || b < q) throw new Error("backslash in request path");
}

function rawQueryOf(target: string): string {
  // A fragment is not part of the request (URL parsing drops it), nor is a "?" inside it.
  const hash = target.indexOf("#");
  const t = hash < 0 ? target : target.slice(0, hash);
  const q = t.indexOf("?");
  return q < 0 ? "" : t.slice(q);
}

const NO_MORE = Symbol("no-more");
const EMPTY = new Uint8Array(0);

/**
 * Writes a web Response. A body that ends with its first chunk (problems, admin JSON, the UI's files)
 * leaves with its headers in one write; a longer one streams, framed by its Content-Length or chunked.
 */
export async function writeWebResponse(r: Response, res: Http1Response): Promise<void> {
  if (res.destroyed) {
    await r.body?.cancel().catch(() => undefined);
    return;
  }
  const flat: string[] = [];
  r.headers.forEach((v, k) => flat.push(k, v));
  if (r.body === null) {
    res.writeHead(r.status, flat, null);
    return;
  }
  const reader = r.body.getReader();
  res.onAbort(() => void reader.cancel().catch(() => undefined));
  try {
    const first = await reader.read();
    if (first.done) {
      res.writeHead(r.status, flat, EMPTY);
      return;
    }
    const pending = reader.read();
    // Awaited below unless writing the head fails first; then its rejection must not go unhandled.
    pending.catch(() => undefined);
    // A stream made from a string or bytes ends within the same turn; one that waits on I/O does not.
    const next = await Promise.race([pending, new Promise<typeof NO_MORE>((resolve) => setImmediate(() => resolve(NO_MORE)))]);
    if (next !== NO_MORE && next.done) {
      res.writeHead(r.status, flat, first.value);
      return;
    }
    res.writeHead(r.status, flat);
    let more = res.write(first.value);
    let cur = next === NO_MORE ? await pending : next;
    while (!cur.done) {
      if (res.destroyed) return;
      if (!more) await drained(res);
      more = res.write(cur.value);
      cur = await reader.read();
    }
    res.end();
  } catch (err) {
    void reader.cancel().catch(() => undefined);
    if (res.headersSent) res.destroy();
    else throw err;
  }
}
