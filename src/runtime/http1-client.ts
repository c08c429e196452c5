// The Node runtime's upstream client for http: origins: `net` sockets and Node's own llhttp parser
// (the one node:http and isthmus's server use), keep-alive pools per origin, and the parser reading
// each socket's handle itself. It replaces undici on the hot path: undici's request objects, its
// WebAssembly parser's callbacks and a Buffer per socket read were about a quarter of what a
// proxied request allocated (bench/RESULTS.md); here a small exchange is one string written, one
// parser callback for the head and one for the body.
//
// What it keeps of a careful HTTP/1.1 client: a pool per origin (LIFO, so spare connections age out),
// a cap on connections with a FIFO queue behind it, idle connections closed after the keep-alive
// timeout (or sooner when the upstream's Keep-Alive header says so), a connection dropped as soon as
// the upstream closes it while idle, connect, response-header and body-idle timeouts, request
// bodies streamed with backpressure (Content-Length when known, else chunked), response bodies
// paused while the client is slow, 1xx answers skipped, and an idempotent request with a body it
// can send again retried once on a new connection when a reused one turns out closed before any
// answer (the keep-alive race every pooled client meets; Go's and nginx's clients do the same).
import { connect as netConnect, type Socket } from "node:net";
import { Readable } from "node:stream";
import { HTTPParser, _checkInvalidHeaderChar, _checkIsHttpToken } from "_http_common";
import { joinedHeader } from "./http1-server.ts";
import { closeParser, kOnBody, kOnHeaders, kOnHeadersComplete, kOnMessageBegin, kOnMessageComplete, ParserInput, type ExecuteResult } from "./llhttp-socket.ts";
import { UpstreamError, type UpstreamClient, type UpstreamFailure, type UpstreamRequest, type UpstreamResponse } from "../proxy/upstream.ts";
import { RelayBody, type FlowControl } from "./relay-body.ts";
import { cappedSource } from "../proxy/request-body.ts";

export interface Http1ClientOptions {
  /** Connections per upstream origin; requests beyond them wait in a queue. */
  connectionsPerOrigin?: number;
  connectTimeoutMs?: number;
  /** Idle time between response body chunks before the exchange is abandoned. */
  bodyIdleTimeoutMs?: number;
  /** How long an idle connection is kept for reuse. */
  keepAliveTimeoutMs?: number;
  /** Largest response header block, bytes. */
  maxHeaderBytes?: number;
}

interface Settings {
  maxConnections: number;
  connectTimeoutMs: number;
  bodyIdleTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxHeaderBytes: number;
}

/** Methods whose request may be sent twice (RFC 9110 9.2.2): only these are resent after a stale connection. */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);
/** Methods whose requests carry content: without a body they say so with Content-Length: 0. */
const EXPECTS_PAYLOAD = new Set(["POST", "PUT", "PATCH"]);
/** Statuses whose answers have no body whatever their headers say (llhttp knows 204 and 304 itself). */
const NO_BODY_STATUS = new Set([204, 205, 304]);
/** A request target as it may go on the request line: visible ASCII and obs-text, no spaces or controls. */
const TARGET = /^[\x21-\x7e\x80-\xff]+$/;
/** Bodies up to this size leave in one buffer with their request head. */
const ONE_WRITE_LIMIT = 16 * 1024;
/** How often deadlines are checked: connect, response headers, body idle, keep-alive idle. */
const SWEEP_MS = 250;
/** How long close() lets busy connections finish before destroying them. */
const CLOSE_GRACE_MS = 2_000;

export function createHttp1Client(opts: Http1ClientOptions = {}): UpstreamClient {
  const s: Settings = {
    maxConnections: opts.connectionsPerOrigin ?? 256,
    connectTimeoutMs: opts.connectTimeoutMs ?? 5_000,
    bodyIdleTimeoutMs: opts.bodyIdleTimeoutMs ?? 300_000,
    keepAliveTimeoutMs: opts.keepAliveTimeoutMs ?? 30_000,
    maxHeaderBytes: opts.maxHeaderBytes ?? 16_384,
  };
  // Origins come from the configuration's cluster endpoints: a bounded set.
  const pools = new Map<string, Pool>();
  let closed = false;
  let closing: Promise<void> | null = null;
  // One timer for every connection's deadlines: no timer per request.
  const sweep = setInterval(() => {
    const now = performance.now();
    for (const p of pools.values()) p.sweep(now);
  }, SWEEP_MS);
  sweep.unref();

  return {
    send(req: UpstreamRequest): Promise<UpstreamResponse> {
      return new Promise<UpstreamResponse>((resolve, reject) => {
        const ex = new ClientExchange(req, resolve, reject);
        if (req.signal.aborted) {
          ex.fail(req.signal.reason ?? new UpstreamError("aborted", "the exchange was aborted"));
          return;
        }
        if (closed) {
          ex.fail(new UpstreamError("aborted", "the upstream client is closed"));
          return;
        }
        // Checked before any connection is asked for: a request that cannot be sent fails as what it is.
        const head = requestHead(req);
        if (typeof head !== "string") {
          ex.fail(head);
          return;
        }
        ex.head = head;
        let pool = pools.get(req.origin);
        if (!pool) {
          const target = poolTarget(req.origin);
          if (typeof target === "string") {
            ex.fail(new UpstreamError("protocol", target));
            return;
          }
          pool = new Pool(target.host, target.port, s);
          pools.set(req.origin, pool);
        }
        pool.enqueue(ex);
      });
    },
    close(): Promise<void> {
      closed = true;
      closing ??= Promise.all([...pools.values()].map((p) => p.close())).then(() => clearInterval(sweep));
      return closing;
    },
  };
}

function poolTarget(origin: string): { host: string; port: number } | string {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return `invalid upstream origin ${JSON.stringify(origin)}`;
  }
  if (url.protocol !== "http:") return `the http/1.1 client takes http: origins, not ${url.protocol}`;
  // [::1] in a URL; net.connect wants the bare address.
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  return { host, port: url.port === "" ? 80 : Number(url.port) };
}

/** One origin's connections: idle ones (most recently used last), a cap, and a queue behind it. */
class Pool {
  private readonly idle: Connection[] = [];
  private readonly all = new Set<Connection>();
  private readonly queue: ClientExchange[] = [];
  private closing: (() => void) | null = null;

  constructor(
    readonly host: string,
    readonly port: number,
    readonly s: Settings,
  ) {}

  enqueue(ex: ClientExchange): void {
    ex.pool = this;
    let conn = this.idle.pop();
    if (conn) {
      // A connection idle past its limit is not trusted, even if the sweep has not run yet (a Lambda
      // environment thawed after a freeze: its timers ran late, the upstream closed its side long ago).
      const now = performance.now();
      while (conn && !conn.reusableAt(now)) {
        conn.destroy();
        conn = this.idle.pop();
      }
    }
    if (conn) conn.start(ex);
    else if (this.all.size < this.s.maxConnections) this.open(ex);
    else this.queue.push(ex);
  }

  /** A new connection for this exchange (already enqueued here once). */
  private open(ex: ClientExchange): void {
    const conn = new Connection(this);
    this.all.add(conn);
    conn.start(ex);
  }

  /** Waiting requests that were aborted leave the queue at once (their promise is already settled). */
  dequeue(ex: ClientExchange): void {
    const i = this.queue.indexOf(ex);
    if (i >= 0) this.queue.splice(i, 1);
  }

  /** A connection finished an exchange and may be reused. */
  release(conn: Connection): void {
    const next = this.queue.shift();
    if (next) {
      conn.start(next);
      return;
    }
    if (this.closing) {
      conn.destroy();
      return;
    }
    conn.idleSince = performance.now();
    this.idle.push(conn);
  }

  /** A connection is gone (closed, failed or destroyed); `resend` takes its slot first (the keep-alive race). */
  removed(conn: Connection, resend: ClientExchange | null): void {
    this.all.delete(conn);
    const i = this.idle.indexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
    const next = resend ?? this.queue.shift();
    if (next) this.open(next);
    if (this.closing && this.all.size === 0) this.closing();
  }

  sweep(now: number): void {
    for (const c of this.all) c.checkDeadline(now);
  }

  close(): Promise<void> {
    for (const ex of this.queue.splice(0)) ex.fail(new UpstreamError("aborted", "the upstream client is closed"));
    for (const c of this.idle.splice(0)) c.destroy();
    if (this.all.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        for (const c of this.all) c.destroy();
      }, CLOSE_GRACE_MS);
      force.unref();
      this.closing = () => {
        clearTimeout(force);
        resolve();
      };
    });
  }
}

/**
 * One request and its answer: settles the caller's promise once (the response head, or an error),
 * tells the caller's events once, and holds the body while it is relayed.
 */
class ClientExchange {
  pool: Pool | null = null;
  conn: Connection | null = null;
  body: RelayBody | null = null;
  /** The response head was handed over (resolve called). */
  answered = false;
  /** Sent again once already, after a stale keep-alive connection. */
  resent = false;
  /** The request line and headers, checked before the exchange is queued. */
  head = "";
  private done = false;

  constructor(
    readonly req: UpstreamRequest,
    private readonly resolve: (res: UpstreamResponse) => void,
    private readonly reject: (err: UpstreamError) => void,
  ) {
    req.signal.onAbort((reason) => this.abort(reason));
  }

  respond(res: UpstreamResponse): void {
    this.answered = true;
    this.resolve(res);
    if (res.body === null) this.settle();
  }

  /** The body arrived in full. */
  complete(): void {
    this.body?.end();
    this.settle();
  }

  /** Before the head: the promise is rejected; after it: the body fails (the client's answer is cut). */
  fail(err: UpstreamError): void {
    if (this.done) return;
    if (!this.answered) {
      this.answered = true;
      this.reject(err);
    } else this.body?.fail(err);
    this.settle();
  }

  /** A body failure after the head went on: told to the caller (RelayBody asks). */
  bodyFailure(err: Error): UpstreamError {
    const failure = err instanceof UpstreamError ? err : new UpstreamError("reset", err.message, { cause: err });
    this.req.events?.bodyError(failure);
    return failure;
  }

  /** The try was aborted (timeout, client gone) or the reader gave up on the body. */
  abort(reason: Error): void {
    if (this.done) return;
    const err = reason instanceof UpstreamError ? reason : new UpstreamError("aborted", reason.message, { cause: reason });
    const conn = this.conn;
    if (conn) conn.drop(this, err);
    else {
      this.pool?.dequeue(this);
      this.fail(err);
    }
  }

  get settled(): boolean {
    return this.done;
  }

  private settle(): void {
    if (this.done) return;
    this.done = true;
    this.conn = null;
    this.req.signal.onAbort(null);
    this.req.events?.settled();
  }
}

const CONNECTING = 0;
const READY = 1;
const GONE = 2;

/** One keep-alive connection to an origin, serving one exchange at a time (no pipelining). */
class Connection implements FlowControl {
  private readonly socket: Socket;
  private readonly parser = new HTTPParser();
  /** Set once connected. */
  private input: ParserInput | null = null;
  private state = CONNECTING;
  private ex: ClientExchange | null = null;
  /** Exchanges served to the end on this connection (a reused one may meet the keep-alive race). */
  private served = 0;
  idleSince = 0;
  /** Idle limit from the upstream's Keep-Alive header, when shorter than ours. */
  private idleLimit: number;
  /** Deadline of whatever is awaited now: connect or the response head (0: none). */
  private deadline = 0;
  /** Last body activity while the response body streams (0: not streaming). */
  private bodyActive = 0;
  private paused = false;
  /** The current response: any byte of it seen, interim (1xx), and reusable after. */
  private begun = false;
  private interim = false;
  private keepAlive = false;
  /** The whole request was written. */
  private requestDone = false;
  /** The exchange finished inside a parser callback: released once the read is parsed. */
  private releaseAfterRead = false;
  private partialHeaders: string[] = [];
  /** The response head, parsed and not yet handed over (see handOver). */
  private pending: UpstreamResponse | null = null;
  /** A streamed request body being sent (a Node stream, or a web stream's reader): stopped when the exchange is abandoned. */
  private pumping: Readable | ReadableStreamDefaultReader<Uint8Array> | null = null;
  private failure: Error | null = null;

  constructor(private readonly pool: Pool) {
    this.idleLimit = pool.s.keepAliveTimeoutMs;
    const socket = netConnect({ host: pool.host, port: pool.port, noDelay: true });
    this.socket = socket;
    this.deadline = performance.now() + pool.s.connectTimeoutMs;
    const p = this.parser;
    p.initialize(HTTPParser.RESPONSE, {}, pool.s.maxHeaderBytes, HTTPParser.kLenientNone);
    p[kOnMessageBegin] = () => this.messageBegin();
    p[kOnHeaders] = (headers: string[]) => {
      for (const h of headers) this.partialHeaders.push(h);
    };
    p[kOnHeadersComplete] = (_maj: number, _min: number, headers: string[] | undefined, _m: number, _u: string, status: number, _sm: string, upgrade: boolean, keepAlive: boolean) =>
      this.headersComplete(headers, status, upgrade, keepAlive);
    p[kOnBody] = (chunk: Buffer) => this.bodyChunk(chunk);
    p[kOnMessageComplete] = () => this.messageComplete();
    socket.once("connect", () => this.connected());
    socket.on("error", (err) => {
      this.failure ??= err;
    });
    socket.once("end", () => this.ended());
    socket.once("close", () => this.closed());
  }

  /** Takes an exchange: sent now when connected, else once connected. */
  start(ex: ClientExchange): void {
    this.ex = ex;
    ex.conn = this;
    this.begun = false;
    this.interim = false;
    this.keepAlive = false;
    this.requestDone = false;
    this.bodyActive = 0;
    this.pending = null;
    if (this.state === READY) this.send();
  }

  // FlowControl, for the relayed body.
  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.input?.stop();
  }

  resume(): void {
    if (!this.paused || this.state === GONE) return;
    this.paused = false;
    // Time spent paused by a slow client is not the upstream's idleness.
    if (this.bodyActive > 0) this.bodyActive = performance.now();
    this.input?.start();
  }

  abort(reason: Error): void {
    this.ex?.abort(reason);
  }

  /** Ends the exchange with `err` and the connection with it: what is half-sent or half-read cannot be reused. */
  drop(ex: ClientExchange, err: UpstreamError): void {
    ex.fail(err);
    if (this.ex !== ex) return;
    this.ex = null;
    // Nothing was sent yet: the connect goes on, and the connection serves the next exchange.
    if (this.state === CONNECTING) return;
    this.stopPump();
    this.destroy();
  }

  /**
   * The request body will not be sent on: a Node stream is destroyed now, rather than when its next
   * chunk comes (the pump notices then; a stalled client would hold it until the server's own timeouts).
   */
  private stopPump(): void {
    const body = this.pumping;
    this.pumping = null;
    if (body instanceof Readable) {
      if (!body.destroyed) body.destroy();
    } else body?.cancel().catch(() => undefined);
  }

  destroy(): void {
    if (this.state === GONE) return;
    this.socket.destroy();
  }

  checkDeadline(now: number): void {
    if (this.state === GONE) return;
    const ex = this.ex;
    if (this.state === CONNECTING) {
      if (now <= this.deadline) return;
      this.ex = null;
      ex?.fail(new UpstreamError("timeout", `no connection within ${this.pool.s.connectTimeoutMs}ms`));
      this.destroy();
      return;
    }
    if (!ex) {
      if (this.state === READY && now - this.idleSince > this.idleLimit) this.destroy();
      return;
    }
    if (this.deadline > 0 && now > this.deadline) {
      this.drop(ex, new UpstreamError("timeout", `no response headers within ${ex.req.headersTimeoutMs}ms`));
    } else if (this.bodyActive > 0 && !this.paused && now - this.bodyActive > this.pool.s.bodyIdleTimeoutMs) {
      this.drop(ex, new UpstreamError("timeout", `no response body data for ${this.pool.s.bodyIdleTimeoutMs}ms`));
    }
  }

  private connected(): void {
    if (this.state === GONE) return;
    this.state = READY;
    this.deadline = 0;
    // A peer that vanished during a long quiet stream (SSE, long poll) is found within minutes, not at the body-idle limit.
    this.socket.setKeepAlive(true, 60_000);
    this.input = new ParserInput(this.socket, this.parser, (r) => this.executed(r));
    if (this.ex) this.send();
    else {
      // Its exchange was aborted while connecting: kept for the next one.
      this.pool.release(this);
    }
  }

  private send(): void {
    const ex = this.ex as ClientExchange;
    const req = ex.req;
    const head = ex.head;
    this.deadline = performance.now() + req.headersTimeoutMs;
    const body = req.body;
    const socket = this.socket;
    if (body === null) {
      socket.write(head, "latin1");
      this.requestDone = true;
    } else if (body instanceof Uint8Array) {
      const n = head.length;
      if (n + body.length <= ONE_WRITE_LIMIT) {
        // One buffer (from Node's shared pool) and one write: no writev, no second chunk.
        const buf = Buffer.allocUnsafe(n + body.length);
        buf.write(head, 0, "latin1");
        buf.set(body, n);
        socket.write(buf);
      } else {
        socket.cork();
        socket.write(head, "latin1");
        socket.write(body);
        socket.uncork();
      }
      this.requestDone = true;
    } else {
      socket.write(head, "latin1");
      let chunks: AsyncIterable<Uint8Array>;
      if (body instanceof ReadableStream) {
        // Through a reader, so that abandoning it can cancel a pending read (an iterator's return() waits behind it).
        const reader = (body as ReadableStream<Uint8Array>).getReader();
        this.pumping = reader;
        chunks = readerChunks(reader);
      } else {
        // A capped body (the size limit) reads from the client's own stream: that is what stopping it stops.
        const source = cappedSource(body) ?? body;
        if (source instanceof Readable) this.pumping = source;
        chunks = body as AsyncIterable<Uint8Array>;
      }
      void this.pump(ex, chunks, declaredLength(req.headers));
    }
  }

  /** Streams a request body: chunked, or checked against the Content-Length the client declared. */
  private async pump(ex: ClientExchange, body: AsyncIterable<Uint8Array>, declared: number | null): Promise<void> {
    const socket = this.socket;
    let sent = 0;
    try {
      for await (const chunk of body) {
        if (this.ex !== ex) return;
        if (chunk.byteLength === 0) continue;
        sent += chunk.byteLength;
        if (declared !== null && sent > declared) throw new UpstreamError("protocol", `the request body is longer than its content-length ${declared}`);
        let more: boolean;
        if (declared === null) {
          socket.cork();
          socket.write(`${chunk.byteLength.toString(16)}\r\n`, "latin1");
          socket.write(chunk);
          more = socket.write("\r\n", "latin1");
          socket.uncork();
        } else more = socket.write(chunk);
        if (!more) await writable(socket);
      }
      if (this.ex !== ex) return;
      if (declared !== null && sent !== declared) throw new UpstreamError("protocol", `the request body ended at ${sent} of its content-length ${declared} bytes`);
      if (declared === null) socket.write("0\r\n\r\n", "latin1");
      this.pumping = null;
      this.requestDone = true;
      // The answer came before the body was sent in full: the connection is free now.
    } catch (err) {
      // The client's body failed (it went away, or passed the size limit): this request cannot be completed.
      if (this.ex === ex) this.drop(ex, err instanceof UpstreamError ? err : new UpstreamError("aborted", `the request body failed: ${(err as Error)?.message ?? String(err)}`, { cause: err }));
    }
  }

  private messageBegin(): void {
    this.begun = true;
    this.partialHeaders = [];
    if (!this.ex) {
      // Bytes nobody asked for (on an idle connection, or after the answer): the connection is unusable.
      this.destroy();
    }
  }

  private headersComplete(headers: string[] | undefined, status: number, upgrade: boolean, keepAlive: boolean): number {
    let raw = headers ?? [];
    if (this.partialHeaders.length > 0) {
      raw = this.partialHeaders.concat(raw);
      this.partialHeaders = [];
    }
    const ex = this.ex;
    if (!ex || this.state === GONE) return 1;
    if (status < 200) {
      // 100 Continue, 103 Early Hints: the final answer follows. A 101 was not asked for (no Upgrade is sent).
      if (status === 101 || upgrade) {
        this.drop(ex, new UpstreamError("protocol", "the upstream switched protocols unasked"));
        return 1;
      }
      this.interim = true;
      return 1;
    }
    this.deadline = 0;
    this.keepAlive = keepAlive;
    if (keepAlive) this.readKeepAlive(raw);
    const connection = joinedHeader(raw, "connection");
    const method = ex.req.method;
    if (method === "HEAD" || NO_BODY_STATUS.has(status)) {
      // No body is read (a HEAD answer's Content-Length describes a GET's). As undici, a connection
      // is not trusted after a HEAD, nor after an answer that announces the body it must not have
      // (misbehaving upstreams send one, and it would be read as the next exchange's answer); a 304
      // may carry the Content-Length a 200 would have (RFC 9110 8.6), so only its Transfer-Encoding counts.
      if (method === "HEAD" || announcesBody(raw, status === 304)) this.keepAlive = false;
      this.pending = { status, headers: raw, connection, body: null };
      return 1;
    }
    const body = new RelayBody(this, ex);
    ex.body = body;
    this.bodyActive = performance.now();
    this.pending = { status, headers: raw, connection, body };
    return 0;
  }

  private bodyChunk(chunk: Buffer): void {
    const ex = this.ex;
    if (!ex || chunk.length === 0) return;
    this.bodyActive = performance.now();
    ex.body?.data(chunk);
  }

  private messageComplete(): void {
    // Trailer fields of a chunked answer come through kOnHeaders: they are dropped, never taken as the next answer's headers.
    this.partialHeaders = [];
    if (this.interim) {
      this.interim = false;
      return;
    }
    const ex = this.ex;
    if (!ex) return;
    this.bodyActive = 0;
    this.handOver();
    // The answer is whole, even when it came before the whole request was sent (a 413, say).
    ex.complete();
    if (this.requestDone) this.finished(true);
    else {
      // The upstream answered without waiting for the rest of the request: it is not sent, and the
      // connection cannot be reused (undici does the same).
      this.ex = null;
      this.stopPump();
      this.destroy();
    }
  }

  /**
   * Hands the response head to the caller. Not from within kOnHeadersComplete: the native parser runs
   * the microtask queue after each callback, and the caller would take the answer before the rest of
   * the same read (often its whole body) was parsed. So at the end of the message or of the read,
   * whichever comes first: a small answer is then complete when taken, and leaves in one write.
   */
  private handOver(): void {
    const res = this.pending;
    if (!res) return;
    this.pending = null;
    this.ex?.respond(res);
  }

  /** Request written and answer read: the connection is reused if both sides allow it. */
  private finished(inParser: boolean): void {
    this.ex = null;
    this.served++;
    if (!this.keepAlive || this.state === GONE) {
      this.destroy();
      return;
    }
    // Inside the parser's callback more of this read may follow: released once it is parsed.
    if (inParser) this.releaseAfterRead = true;
    else this.reuse();
  }

  private reuse(): void {
    if (this.state === GONE || this.socket.destroyed) return;
    if (this.paused) this.resume();
    this.pool.release(this);
  }

  /** Whether an idle connection can take an exchange (its close may not have been told yet, nor its idle limit checked). */
  reusableAt(now: number): boolean {
    return this.state !== GONE && !this.socket.destroyed && now - this.idleSince <= this.idleLimit;
  }

  private executed(r: ExecuteResult): void {
    if (typeof r === "number") this.handOver();
    else {
      const ex = this.ex;
      const why = `malformed response from the upstream (${r.code ?? "parse error"}${r.reason ? `: ${r.reason}` : ""})`;
      this.releaseAfterRead = false;
      this.pending = null;
      if (ex) this.drop(ex, new UpstreamError("protocol", why));
      else this.destroy();
      return;
    }
    if (this.releaseAfterRead) {
      this.releaseAfterRead = false;
      this.reuse();
    }
  }

  /** The upstream's FIN: a body delimited by the connection's end completes; anything else pending fails. */
  private ended(): void {
    // Before any byte of an answer there is nothing to finish: the close is told as such (closed()).
    if (this.ex && this.begun && this.state !== GONE) {
      const r = this.parser.finish();
      if (r instanceof Error && this.ex) {
        this.drop(this.ex, new UpstreamError("reset", "the upstream closed the connection mid-answer"));
        return;
      }
    }
    this.socket.destroy();
  }

  private closed(): void {
    const wasReady = this.state === READY;
    this.state = GONE;
    this.deadline = 0;
    // Never connected: the parser never read anything, and is let go all the same.
    if (this.input) this.input.release();
    else closeParser(this.parser);
    const ex = this.ex;
    this.ex = null;
    this.pending = null;
    this.stopPump();
    if (!ex || ex.settled) {
      this.pool.removed(this, null);
      return;
    }
    ex.conn = null;
    const err = this.failure as (Error & { code?: string }) | null;
    // The keep-alive race: a reused connection the upstream had closed, before any byte of an answer.
    // Sent again first, ahead of the queue, on the connection slot this one leaves.
    if (wasReady && this.served > 0 && !this.begun && !ex.resent && IDEMPOTENT.has(ex.req.method) && (ex.req.body === null || ex.req.body instanceof Uint8Array)) {
      ex.resent = true;
      this.pool.removed(this, ex);
      return;
    }
    this.pool.removed(this, null);
    if (!wasReady) {
      ex.fail(new UpstreamError(err?.code === "ETIMEDOUT" ? "timeout" : "connect", `cannot connect to ${this.pool.host}:${this.pool.port}: ${err?.message ?? "closed"}`, { cause: err }));
      return;
    }
    const failure: UpstreamFailure = "reset";
    ex.fail(new UpstreamError(failure, ex.answered ? "the upstream connection closed mid-body" : `the upstream closed the connection${err ? `: ${err.message}` : " before answering"}`, { cause: err ?? undefined }));
  }

  /** `Keep-Alive: timeout=N`: the upstream closes idle connections after N s; we stop reusing one 2 s before (as undici). */
  private readKeepAlive(raw: string[]): void {
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const k = raw[i] as string;
      if (k.length !== 10 || k.toLowerCase() !== "keep-alive") continue;
      const m = /(?:^|[,\s])timeout=(\d+)/i.exec(raw[i + 1] as string);
      if (m) this.idleLimit = Math.min(this.pool.s.keepAliveTimeoutMs, Math.max(0, Number(m[1]) * 1000 - 2000));
    }
  }
}

/** The request line and headers, or the reason they cannot be sent. Content-Length and framing are the client's to decide. */
function requestHead(req: UpstreamRequest): string | UpstreamError {
  if (!TARGET.test(req.path) || !_checkIsHttpToken(req.method)) return new UpstreamError("protocol", "invalid request line for the upstream");
  let head = `${req.method} ${req.path} HTTP/1.1\r\n`;
  const h = req.headers;
  let host = false;
  let length: string | null = null;
  for (let i = 0; i + 1 < h.length; i += 2) {
    const name = h[i] as string;
    const value = h[i + 1] as string;
    if (!_checkIsHttpToken(name) || _checkInvalidHeaderChar(value)) return new UpstreamError("protocol", `invalid request header ${JSON.stringify(name)}`);
    const n = name.length;
    if (n === 14 && name.toLowerCase() === "content-length") {
      length ??= value;
      continue;
    }
    if ((n === 17 && name.toLowerCase() === "transfer-encoding") || (n === 10 && name.toLowerCase() === "connection")) continue;
    if (n === 4 && !host && name.toLowerCase() === "host") host = true;
    head += `${name}: ${value}\r\n`;
  }
  if (!host) return new UpstreamError("protocol", "the upstream request has no host header");
  // Redundant for HTTP/1.1 upstreams; an HTTP/1.0 one keeps the connection only when asked.
  head += "connection: keep-alive\r\n";
  const body = req.body;
  if (body === null) {
    if (EXPECTS_PAYLOAD.has(req.method)) head += "content-length: 0\r\n";
  } else if (body instanceof Uint8Array) head += `content-length: ${body.length}\r\n`;
  else if (length !== null) {
    if (!/^\d{1,15}$/.test(length)) return new UpstreamError("protocol", `invalid content-length ${JSON.stringify(length)}`);
    head += `content-length: ${length}\r\n`;
  } else head += "transfer-encoding: chunked\r\n";
  return `${head}\r\n`;
}

function declaredLength(headers: string[]): number | null {
  for (let i = 0; i + 1 < headers.length; i += 2) {
    const name = headers[i] as string;
    if (name.length === 14 && name.toLowerCase() === "content-length") return Number(headers[i + 1]);
  }
  return null;
}

/** Whether a head announces content: a Transfer-Encoding, or (unless `lengthAllowed`) a Content-Length above 0. */
function announcesBody(raw: string[], lengthAllowed: boolean): boolean {
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = (raw[i] as string).toLowerCase();
    if (k === "transfer-encoding" || (!lengthAllowed && k === "content-length" && (raw[i + 1] as string).trim() !== "0")) return true;
  }
  return false;
}

async function* readerChunks(reader: ReadableStreamDefaultReader<Uint8Array>): AsyncGenerator<Uint8Array> {
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    yield value;
  }
}

/** Resolves when the socket takes more, or when it closes. */
function writable(socket: Socket): Promise<void> {
  if (socket.destroyed) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      socket.off("drain", done);
      socket.off("close", done);
      resolve();
    };
    socket.on("drain", done);
    socket.on("close", done);
  });
}
