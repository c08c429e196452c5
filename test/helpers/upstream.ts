// Real HTTP upstreams for integration tests: each one stands for a cluster's ingress on
// 127.0.0.1 (port 0 = a free port) and answers with JSON describing what it received, so tests
// can see which cluster served a request and exactly which headers and body crossed the gateway.
// Behaviour is switchable at run time (status, delays, streaming, stalls, echo, fixed bodies),
// and every exchange is recorded as events a test can await instead of sleeping.
import { createHash } from "node:crypto";
import { EventEmitter } from "node:events";
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import net, { type AddressInfo } from "node:net";

export interface StreamBehaviour {
  /** Number of chunks written after the headers. */
  chunks: number;
  /** Pause between chunks (not before the first one). */
  gapMs?: number;
  /** Bytes per chunk; default 16. Chunk i is filled with the character `String.fromCharCode(97 + (i % 26))`. */
  chunkBytes?: number;
  /**
   * When given, the server writes the first chunk, then waits for this promise before writing
   * the rest and ending: lets a test prove the first chunk reached the client before the upstream finished.
   */
  holdAfterFirst?: Promise<unknown>;
}

export interface UpstreamBehaviour {
  /** Response status; default 200. */
  status?: number;
  /** Extra response headers (arrays give repeated headers, e.g. several Set-Cookie). */
  headers?: Record<string, string | string[]>;
  /** Wait this long before sending the response headers. */
  delayMs?: number;
  /** Send the headers (and `stallChunk`, if any) and then never finish the response. */
  stallAfterHeaders?: boolean;
  /** Written right after the headers when stalling. */
  stallChunk?: string;
  /** Stream the response as chunks instead of the JSON description. */
  stream?: StreamBehaviour;
  /** Answer with the request body itself (streamed back as it arrives). */
  echoBody?: boolean;
  /** Answer with these exact bytes. */
  body?: Buffer;
}

/** What the upstream saw of one request. */
export interface UpstreamRequestRecord {
  cluster: string;
  method: string;
  /** The request target exactly as received (path and query). */
  path: string;
  headers: IncomingHttpHeaders;
  /** Raw header pairs as received, in order and with their original case. */
  rawHeaders: string[];
  bodyBytes: number;
  bodySha256: string;
}

export interface UpstreamEvents {
  /** The request headers arrived (the body may still be streaming). */
  request: [IncomingMessage];
  /** The request body was fully read. */
  received: [UpstreamRequestRecord];
  /** The response was fully written. */
  finished: [IncomingMessage];
  /** The connection went away before the response was complete (client or gateway gave up). */
  aborted: [IncomingMessage];
}

export interface Upstream {
  readonly name: string;
  readonly url: string;
  readonly port: number;
  /** Requests received (headers arrived), `/ready` probes excluded. */
  readonly requests: number;
  /** Responses that were cut off before they were complete. */
  readonly aborted: number;
  /** Completed request records, oldest first (bounded to the last 1,000). */
  readonly received: readonly UpstreamRequestRecord[];
  readonly events: EventEmitter<UpstreamEvents>;
  setBehaviour(b: UpstreamBehaviour): void;
  /** Resets the counters and records (not the behaviour). */
  resetStats(): void;
  /** Resolves with the next request record (body fully read). */
  nextReceived(): Promise<UpstreamRequestRecord>;
  close(): Promise<void>;
}

const MAX_RECORDS = 1_000;

export async function startUpstream(name: string, opts: UpstreamBehaviour = {}): Promise<Upstream> {
  let behaviour: UpstreamBehaviour = { ...opts };
  let requests = 0;
  let aborted = 0;
  const received: UpstreamRequestRecord[] = [];
  const events = new EventEmitter<UpstreamEvents>();
  events.setMaxListeners(0);
  const pending = new Set<() => void>();

  const server: Server = createServer((req, res) => {
    if (req.url === "/ready") {
      req.resume();
      res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
      return;
    }
    requests++;
    const b = behaviour;
    events.emit("request", req);
    res.on("close", () => {
      if (res.writableFinished) events.emit("finished", req);
      else {
        aborted++;
        events.emit("aborted", req);
      }
    });
    void respond(name, req, res, b, pending, (rec) => {
      received.push(rec);
      if (received.length > MAX_RECORDS) received.shift();
      events.emit("received", rec);
    }).catch(() => res.destroy());
  });
  // The client side of these connections is the gateway: keep them alive like a real ingress would.
  server.keepAliveTimeout = 30_000;

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | null = null;

  return {
    name,
    url: `http://127.0.0.1:${port}`,
    port,
    get requests() {
      return requests;
    },
    get aborted() {
      return aborted;
    },
    received,
    events,
    setBehaviour(b) {
      behaviour = { ...b };
    },
    resetStats() {
      requests = 0;
      aborted = 0;
      received.length = 0;
    },
    nextReceived() {
      return new Promise((resolve) => events.once("received", resolve));
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const release of pending) release();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

async function respond(
  cluster: string,
  req: IncomingMessage,
  res: ServerResponse,
  b: UpstreamBehaviour,
  pending: Set<() => void>,
  record: (r: UpstreamRequestRecord) => void,
): Promise<void> {
  const hash = createHash("sha256");
  let bodyBytes = 0;
  const recordOf = (): UpstreamRequestRecord => ({
    cluster,
    method: req.method ?? "",
    path: req.url ?? "",
    headers: req.headers,
    rawHeaders: req.rawHeaders,
    bodyBytes,
    bodySha256: hash.digest("hex"),
  });

  // A sleep that close() can cut short, so a stalled server never holds a test open.
  const wait = (ms: number) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        pending.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      pending.add(done);
    });

  if (b.echoBody) {
    if (b.delayMs) await wait(b.delayMs);
    res.writeHead(b.status ?? 200, { "content-type": req.headers["content-type"] ?? "application/octet-stream", ...b.headers });
    req.on("data", (c: Buffer) => {
      bodyBytes += c.length;
      hash.update(c);
    });
    req.pipe(res);
    req.on("end", () => record(recordOf()));
    return;
  }

  for await (const chunk of req as AsyncIterable<Buffer>) {
    bodyBytes += chunk.length;
    hash.update(chunk);
  }
  const rec = recordOf();
  record(rec);

  if (b.delayMs) await wait(b.delayMs);
  if (res.destroyed) return;
  const status = b.status ?? 200;

  if (b.stallAfterHeaders) {
    res.writeHead(status, { "content-type": "text/plain", ...b.headers });
    res.flushHeaders();
    if (b.stallChunk) res.write(b.stallChunk);
    return; // never ends: the connection is cut by the peer or by close()
  }

  if (b.stream) {
    const s = b.stream;
    const size = s.chunkBytes ?? 16;
    res.writeHead(status, { "content-type": "application/octet-stream", ...b.headers });
    for (let i = 0; i < s.chunks; i++) {
      if (res.destroyed) return;
      if (i > 0 && s.gapMs) await wait(s.gapMs);
      if (i === 1 && s.holdAfterFirst) await s.holdAfterFirst;
      if (res.destroyed) return;
      res.write(Buffer.alloc(size, String.fromCharCode(97 + (i % 26))));
    }
    if (s.chunks === 1 && s.holdAfterFirst) await s.holdAfterFirst;
    res.end();
    return;
  }

  if (b.body) {
    res.writeHead(status, { "content-type": "application/octet-stream", "content-length": String(b.body.length), ...b.headers });
    res.end(b.body);
    return;
  }

  const json = JSON.stringify({ cluster, method: rec.method, path: rec.path, headers: rec.headers, bodyBytes: rec.bodyBytes, bodySha256: rec.bodySha256 });
  res.writeHead(status, { "content-type": "application/json", "x-served-by": cluster, ...b.headers });
  res.end(json);
}

/** The JSON an upstream answers with by default. */
export interface UpstreamEcho {
  cluster: string;
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  bodyBytes: number;
  bodySha256: string;
}

/** A loopback port nothing listens on: bound, then released (connections to it are refused). */
export async function refusedPort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}
