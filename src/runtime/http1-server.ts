// The Node runtime's HTTP/1.1 server: `net` sockets and Node's own llhttp parser (the one node:http
// uses, same strictness: no lenient flags), without node:http's IncomingMessage, ServerResponse and
// their streams and events. A proxy pays those layers twice per request; on this path a request is
// one parser callback and one write (bench/RESULTS.md, "Below node:http").
//
// What it keeps of node:http's behaviour: keep-alive, pipelined requests answered in order, request
// bodies streamed with backpressure (Content-Length or chunked), `Expect: 100-continue`, a 16 KiB
// header limit (431), 400 on a malformed request or a missing Host, a headers timeout against slow
// clients (408), an idle keep-alive timeout, a Date header, chunked or close-delimited framing for
// bodies of unknown length, HTTP/1.0 clients, and a graceful close.
import { createServer as createNetServer, type Server, type Socket } from "node:net";
import { STATUS_CODES } from "node:http";
import { Readable } from "node:stream";
import { HTTPParser, methods, _checkInvalidHeaderChar, _checkIsHttpToken } from "_http_common";
import { kOnBody, kOnHeaders, kOnHeadersComplete, kOnMessageBegin, kOnMessageComplete, ParserInput, type ExecuteResult } from "./llhttp-socket.ts";

export interface Http1ServerOptions {
  /** Largest request header block, bytes (431 beyond it). */
  maxHeaderBytes?: number;
  /** From a request's first byte to the end of its headers (408 beyond it): slow clients are cut. */
  headersTimeoutMs?: number;
  /** How long an idle keep-alive connection stays open. */
  keepAliveTimeoutMs?: number;
  /** Pipelined requests held per connection before the socket stops being read. */
  maxPipelined?: number;
  /** Called with errors the server itself hit (never a client's malformed request). */
  onError?: (err: unknown) => void;
}

export type Http1Handler = (req: Http1Request, res: Http1Response) => void;

export interface Http1Server {
  readonly net: Server;
  listen(port: number, hostname?: string): Promise<void>;
  /** Stops accepting; idle connections close now, busy ones after their answer, every one within `graceMs`. */
  close(graceMs?: number): Promise<void>;
}

export function createHttp1Server(handler: Http1Handler, opts: Http1ServerOptions = {}): Http1Server {
  const settings: Settings = {
    // Observers of 'request' on the net server (tests) see each request; one cheap check when there are none.
    handler: (req, res) => {
      if (server.listenerCount("request") > 0) server.emit("request", req, res);
      handler(req, res);
    },
    maxHeaderBytes: opts.maxHeaderBytes ?? 16_384,
    headersTimeoutMs: opts.headersTimeoutMs ?? 10_000,
    keepAliveTimeoutMs: opts.keepAliveTimeoutMs ?? 65_000,
    maxPipelined: opts.maxPipelined ?? 16,
    onError: opts.onError ?? (() => undefined),
  };
  const connections = new Set<Connection>();
  let closing = false;
  // Half-open, as node:http: the server decides when its side closes (a client's FIN is handled below).
  const server = createNetServer({ noDelay: true, allowHalfOpen: true }, (socket) => {
    if (closing) {
      socket.destroy();
      return;
    }
    const conn = new Connection(socket, settings);
    connections.add(conn);
    socket.once("close", () => connections.delete(conn));
  });
  // One timer for every connection's deadlines (as node:http's connectionsCheckingInterval).
  const sweep = setInterval(() => {
    const now = performance.now();
    for (const c of connections) c.checkDeadline(now);
  }, 1_000);
  sweep.unref();
  server.once("close", () => clearInterval(sweep));

  return {
    net: server,
    listen(port, hostname) {
      return new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, hostname, () => {
          server.off("error", reject);
          resolve();
        });
      });
    },
    close(graceMs = 2_000) {
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const c of connections) c.closeWhenIdle();
      const force = setTimeout(() => {
        for (const c of connections) c.socket.destroy();
      }, graceMs);
      force.unref();
      return closed.finally(() => clearTimeout(force));
    },
  };
}

interface Settings {
  maxHeaderBytes: number;
  headersTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxPipelined: number;
  handler: Http1Handler;
  onError: (err: unknown) => void;
}

/** A request as parsed: what node:http's IncomingMessage holds, and nothing it builds lazily. */
export class Http1Request {
  /** The body as a stream, or null when the request announces none. */
  readonly body: RequestBody | null;
  /** Whether the request (body included) has been read off the socket in full. */
  complete = false;

  constructor(
    readonly method: string,
    /** The request target as sent. */
    readonly url: string,
    /** [name, value, name, value, ...] as received. */
    readonly rawHeaders: string[],
    readonly httpMinor: number,
    readonly socket: Socket,
    hasBody: boolean,
    conn: Connection,
  ) {
    this.body = hasBody ? new RequestBody(conn) : null;
    // Without a body the message ends with its headers (the parser says so just after the handler ran).
    this.complete = !hasBody;
  }

  /** Every value of a field joined with ", " (as web Headers do), or null when absent. `name` is lower case. */
  header(name: string): string | null {
    return joinedHeader(this.rawHeaders, name);
  }
}

export function joinedHeader(raw: string[], name: string): string | null {
  let out: string | null = null;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = raw[i] as string;
    if (k.length === name.length && k.toLowerCase() === name) out = out === null ? (raw[i + 1] as string) : `${out}, ${raw[i + 1] as string}`;
  }
  return out;
}

/** A request body: bytes as the parser hands them, the socket paused while the reader is behind. */
export class RequestBody extends Readable {
  constructor(private readonly conn: Connection) {
    super({ highWaterMark: 64 * 1024 });
  }
  override _read(): void {
    this.conn.resumeReading(this);
  }
  /** As node:http's request: a client gone mid-body is an error only to a reader listening for one. */
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    cb(err && this.listenerCount("error") > 0 ? err : null);
  }
}

/** A header the server will not send (a name that is not a token, a value with CR, LF or NUL). */
export class InvalidHeaderError extends Error {}

const NO_BODY = 0;
const LENGTH = 1;
const CHUNKED = 2;
const UNTIL_CLOSE = 3;

/** The answer to one request, written straight to the socket. */
export class Http1Response {
  headersSent = false;
  finished = false;
  /** The connection closed before this answer was finished. */
  aborted = false;
  private framing = NO_BODY;
  /** Bytes a streamed body framed by Content-Length still owes. */
  private remaining = 0;
  private closeAfter: boolean;
  private drainListener: (() => void) | null = null;
  private abortListeners: Array<() => void> | null = null;
  /** Told first when the connection closes before the answer is finished (no closure per request). */
  owner: { gone(): void } | null = null;

  constructor(
    private readonly conn: Connection,
    readonly req: Http1Request,
    keepAlive: boolean,
  ) {
    this.closeAfter = !keepAlive;
  }

  get destroyed(): boolean {
    return this.aborted || this.conn.socket.destroyed;
  }

  /**
   * Writes the status line and headers, with `body` after them in the same write when given (then the
   * answer is complete). `headers` is [name, value, ...]; Content-Length, when among them, frames a
   * streamed body; without it a streamed body is chunked (HTTP/1.0: delimited by closing).
   */
  writeHead(status: number, headers: string[], body?: Uint8Array | null): void {
    if (this.headersSent) throw new Error("headers already sent");
    const head = this.headBlock(status, headers, body);
    this.headersSent = true;
    const socket = this.conn.socket;
    if (body !== undefined) {
      if (body !== null && body.length > 0 && this.framing !== NO_BODY) {
        socket.cork();
        socket.write(head, "latin1");
        socket.write(body);
        socket.uncork();
      } else socket.write(head, "latin1");
      this.finish();
      return;
    }
    socket.write(head, "latin1");
  }

  /** A chunk of a streamed body; false when the socket's buffer is full (wait for `onDrain`). */
  write(chunk: Uint8Array): boolean {
    if (this.finished || this.destroyed || chunk.length === 0) return true;
    const socket = this.conn.socket;
    if (this.framing === NO_BODY) return true;
    if (this.framing === CHUNKED) {
      socket.cork();
      socket.write(`${chunk.length.toString(16)}\r\n`, "latin1");
      socket.write(chunk);
      const ok = socket.write("\r\n", "latin1");
      socket.uncork();
      return ok;
    }
    if (this.framing === LENGTH) {
      // More than the Content-Length said would run into the next answer on this connection.
      if (chunk.length > this.remaining) {
        this.destroy();
        return true;
      }
      this.remaining -= chunk.length;
    }
    return socket.write(chunk);
  }

  /** The streamed body is complete. */
  end(): void {
    if (this.finished || this.destroyed) return;
    if (this.framing === CHUNKED) this.conn.socket.write("0\r\n\r\n", "latin1");
    else if (this.framing === LENGTH && this.remaining > 0) {
      // Fewer bytes than announced: the client must see the answer cut, not wait for the rest.
      this.destroy();
      return;
    }
    this.finish();
  }

  /** Cuts the answer short: the client sees the connection close mid-answer, never a clean end. */
  destroy(): void {
    if (this.finished) return;
    this.finished = true;
    this.conn.socket.destroy();
  }

  onDrain(listener: () => void): void {
    this.drainListener = listener;
    this.conn.drainWaiter = this;
  }

  /** Told once when the connection closes before the answer is finished (the client went away). */
  onAbort(listener: () => void): void {
    (this.abortListeners ??= []).push(listener);
  }

  /** @internal */
  drained(): void {
    this.drainListener?.();
  }

  /** @internal */
  abort(): void {
    if (this.finished || this.aborted) return;
    this.aborted = true;
    const drain = this.drainListener;
    this.drainListener = null;
    drain?.();
    this.owner?.gone();
    const listeners = this.abortListeners;
    this.abortListeners = null;
    if (listeners) for (const l of listeners) l();
  }

  private finish(): void {
    this.finished = true;
    this.drainListener = null;
    this.abortListeners = null;
    this.conn.answered(this, this.closeAfter);
  }

  private headBlock(status: number, headers: string[], body: Uint8Array | null | undefined): string {
    // Interim answers (1xx) are not written through here: a 1xx with a body would end this answer early.
    if (!(status >= 200 && status <= 999 && Number.isInteger(status))) throw new InvalidHeaderError(`invalid status ${status}`);
    const req = this.req;
    let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "unknown"}\r\n`;
    let length: string | null = null;
    let date = false;
    for (let i = 0; i + 1 < headers.length; i += 2) {
      const name = headers[i] as string;
      const value = headers[i + 1] as string;
      if (!_checkIsHttpToken(name) || _checkInvalidHeaderChar(value)) throw new InvalidHeaderError(`invalid header ${JSON.stringify(name)}`);
      const n = name.length;
      // Framing and the connection are this server's to decide.
      if (n === 10 && name.toLowerCase() === "connection") {
        if (/(?:^|,)\s*close\s*(?:,|$)/i.test(value)) this.closeAfter = true;
        continue;
      }
      if ((n === 17 && name.toLowerCase() === "transfer-encoding") || (n === 10 && name.toLowerCase() === "keep-alive")) continue;
      if (n === 14 && name.toLowerCase() === "content-length") {
        if (length !== null) continue;
        length = value;
      } else if (n === 4 && !date && name.toLowerCase() === "date") date = true;
      head += `${name}: ${value}\r\n`;
    }
    const bodyless = req.method === "HEAD" || status < 200 || status === 204 || status === 304;
    if (bodyless) {
      this.framing = NO_BODY;
      // A HEAD answer says the length a GET's body would have; 204 and 304 say none.
      if (length !== null && (status === 204 || status < 200)) head = stripLength(head);
    } else if (body !== undefined) {
      this.framing = LENGTH;
      const n = body === null ? 0 : body.length;
      if (length === null) head += `content-length: ${n}\r\n`;
      else if (Number(length) !== n) throw new InvalidHeaderError(`content-length ${length} does not match a body of ${n} bytes`);
    } else if (length !== null) {
      if (!/^\d{1,15}$/.test(length)) throw new InvalidHeaderError(`invalid content-length ${JSON.stringify(length)}`);
      this.framing = LENGTH;
      this.remaining = Number(length);
    }
    else if (req.httpMinor >= 1) {
      this.framing = CHUNKED;
      head += "transfer-encoding: chunked\r\n";
    } else {
      this.framing = UNTIL_CLOSE;
      this.closeAfter = true;
    }
    // A body the client is still sending and nobody read: the connection cannot be reused.
    if (!req.complete && !this.closeAfter) this.closeAfter = true;
    if (this.conn.closing) this.closeAfter = true;
    if (!date) head += `date: ${httpDate()}\r\n`;
    if (this.closeAfter) head += "connection: close\r\n";
    else if (req.httpMinor === 0) head += "connection: keep-alive\r\n";
    return `${head}\r\n`;
  }
}

function stripLength(head: string): string {
  return head.replace(/\r\ncontent-length: [^\r]*/i, "");
}

let dateCache = "";
let dateSecond = -1;
/** The Date header's value, formatted once a second. */
function httpDate(): string {
  const now = Date.now();
  const s = Math.floor(now / 1000);
  if (s !== dateSecond) {
    dateSecond = s;
    dateCache = new Date(now).toUTCString();
  }
  return dateCache;
}

/** How long a closing connection's further input is read and dropped before the socket is destroyed. */
const LINGER_MS = 5_000;

/** One client connection: its parser, the requests read and not yet answered, and its deadline. */
class Connection {
  private readonly parser = new HTTPParser();
  /** Requests read and not yet answered, oldest first; the first is the one being answered. */
  private readonly queue: Http1Response[] = [];
  /** The request whose body the parser is reading. */
  private reading: Http1Request | null = null;
  private partialHeaders: string[] = [];
  private partialUrl = "";
  /** When the current deadline passes (ms, performance.now()); 0 when none (a request is being answered). */
  private deadline: number;
  private deadlineIsHeaders = false;
  /** When the request being read began, while its headers are incomplete; else 0. */
  private headersSince = 0;
  private paused: RequestBody | null = null;
  private pausedForQueue = false;
  /** A malformed request was read: answer it once the requests before it are answered, then close. */
  private broken: { status: number } | null = null;
  private readonly input: ParserInput;
  /** The connection is closing: nothing more is parsed or answered. */
  private done = false;
  /** An answer is complete but the socket's buffer is full: the next waits for 'drain'. */
  private held = false;
  closing = false;
  drainWaiter: Http1Response | null = null;

  constructor(
    readonly socket: Socket,
    private readonly s: Settings,
  ) {
    const p = this.parser;
    p.initialize(HTTPParser.REQUEST, {}, s.maxHeaderBytes, HTTPParser.kLenientNone);
    p[kOnMessageBegin] = () => this.messageBegin();
    p[kOnHeaders] = (headers: string[], url: string) => {
      for (const h of headers) this.partialHeaders.push(h);
      this.partialUrl += url;
    };
    p[kOnHeadersComplete] = (_maj: number, minor: number, headers: string[] | undefined, method: number, url: string | undefined, _sc: number, _sm: string, upgrade: boolean, keepAlive: boolean) =>
      this.headersComplete(minor, headers, method, url, upgrade, keepAlive);
    p[kOnBody] = (chunk: Buffer) => this.body(chunk);
    p[kOnMessageComplete] = () => this.messageComplete();
    this.deadline = performance.now() + s.keepAliveTimeoutMs;
    this.input = new ParserInput(socket, p, (r) => {
      if (!this.broken && !this.done) this.executed(r);
    });
    socket.on("drain", () => {
      if (this.held) {
        this.held = false;
        if (!this.paused && !this.pausedForQueue) this.startInput();
        this.next();
      } else this.drainWaiter?.drained();
    });
    socket.on("error", () => undefined);
    socket.once("close", () => this.closed());
    // The peer finished sending. As node:http (httpAllowHalfOpen off): a client that half-closes
    // has gone away; what it asked and was not yet answered is abandoned, upstream exchanges too.
    socket.once("end", () => {
      if (this.queue.length === 0 || this.done) socket.end();
      else socket.destroy();
    });
  }

  checkDeadline(now: number): void {
    if (this.deadline === 0 || now < this.deadline) return;
    if (this.deadlineIsHeaders && this.queue.length === 0 && !this.done) this.finishConnection(rawAnswer(408));
    else this.socket.destroy();
  }

  closeWhenIdle(): void {
    this.closing = true;
    if (this.queue.length === 0) this.finishConnection();
  }

  /**
   * No more requests are read; the last answer (or `last`) is sent and the socket closed once it is
   * written, as node:http does. With `linger`, when the client may still be sending a body nobody
   * read, its input is read and dropped for a while instead (nginx's lingering close): destroying a
   * socket with unread bytes sends a reset, which can wipe the answer before the client reads it.
   */
  private finishConnection(last?: string, linger = false): void {
    this.done = true;
    this.queue.length = 0;
    // Nothing read from here on reaches a handler: not the rest of a body, not a request after it.
    const body = this.reading?.body;
    this.reading = null;
    if (body && !body.destroyed) body.destroy();
    this.held = false;
    if (last !== undefined) this.socket.write(last, "latin1");
    if (!linger) {
      this.socket.destroySoon();
      return;
    }
    this.paused = null;
    this.pausedForQueue = false;
    this.startInput();
    this.socket.end();
    this.deadlineIsHeaders = false;
    this.deadline = performance.now() + LINGER_MS;
  }

  resumeReading(body: RequestBody): void {
    if (this.paused === body) {
      this.paused = null;
      if (!this.pausedForQueue) this.startInput();
    }
  }

  /** The answer at the head of the queue is complete. */
  answered(res: Http1Response, closeAfter: boolean): void {
    if (this.queue[0] !== res) return;
    this.queue.shift();
    if (this.drainWaiter === res) this.drainWaiter = null;
    if (closeAfter || this.closing) {
      this.finishConnection(undefined, !res.req.complete);
      return;
    }
    // A client that does not read its answers: nothing more is read or answered until it does (else
    // pipelined requests would pile their answers up in memory), and the idle clock waits too.
    if (this.socket.writableNeedDrain) {
      this.held = true;
      this.deadline = 0;
      this.stopInput();
      return;
    }
    this.next();
  }

  /** After an answer: the next pipelined request, a pending refusal, or the idle or headers clock. */
  private next(): void {
    if (this.pausedForQueue && this.queue.length < this.s.maxPipelined) {
      this.pausedForQueue = false;
      if (!this.paused) this.startInput();
    }
    const next = this.queue[0];
    if (next) this.dispatch(next);
    else if (this.broken) this.refuse(this.broken.status);
    else if (this.headersSince > 0) {
      // A request's headers are arriving: the headers timeout, counted from its first byte.
      this.deadlineIsHeaders = true;
      this.deadline = this.headersSince + this.s.headersTimeoutMs;
    } else {
      this.deadlineIsHeaders = false;
      this.deadline = performance.now() + this.s.keepAliveTimeoutMs;
    }
  }

  private executed(r: ExecuteResult): void {
    if (typeof r !== "number") this.malformed(r.code === "HPE_HEADER_OVERFLOW" ? 431 : 400);
  }

  private stopInput(): void {
    this.input.stop();
  }

  private startInput(): void {
    this.input.start();
  }

  private messageBegin(): void {
    // Trailer fields of a chunked request come through kOnHeaders: never the next request's headers.
    this.partialHeaders = [];
    this.partialUrl = "";
    if (this.broken || this.done) return;
    this.headersSince = performance.now();
    if (this.queue.length === 0) {
      this.deadlineIsHeaders = true;
      this.deadline = this.headersSince + this.s.headersTimeoutMs;
    }
  }

  private headersComplete(minor: number, headers: string[] | undefined, method: number, url: string | undefined, upgrade: boolean, keepAlive: boolean): number {
    // After a refusal or once closing, llhttp may still parse what followed in the same read (the
    // "body" of a request refused for a missing Host, say): none of it is a request to serve.
    if (this.broken || this.done) {
      this.partialHeaders = [];
      this.partialUrl = "";
      return 1;
    }
    this.headersSince = 0;
    let raw = headers;
    let target = url;
    if (raw === undefined) {
      raw = this.partialHeaders;
      this.partialHeaders = [];
    } else if (this.partialHeaders.length > 0) {
      raw = this.partialHeaders.concat(raw);
      this.partialHeaders = [];
    }
    if (target === undefined || target === "") {
      target = this.partialUrl;
      this.partialUrl = "";
    }
    const name = methods[method] ?? "GET";
    if (name === "CONNECT" || (minor >= 1 && joinedHeader(raw, "host") === null)) {
      // Not a forward proxy; and HTTP/1.1 requires Host (node:http answers 400 too).
      this.malformed(name === "CONNECT" ? 405 : 400);
      return 1;
    }
    const hasBody = joinedHeader(raw, "transfer-encoding") !== null || (joinedHeader(raw, "content-length") ?? "0") !== "0";
    // llhttp delivers an Upgrade request's body before it stops (`curl --http2 -d` sends one).
    const req = new Http1Request(name, target, raw, minor, this.socket, hasBody, this);
    // An Upgrade (h2c, websocket) is not taken: the request is answered as HTTP/1.1, and the
    // connection closes after it, since what follows its headers is not HTTP/1.1.
    const res = new Http1Response(this, req, keepAlive && !upgrade);
    this.reading = req;
    this.queue.push(res);
    if (this.queue.length === 1 && !this.held) this.dispatch(res);
    else if (this.queue.length >= this.s.maxPipelined && !this.pausedForQueue) {
      this.pausedForQueue = true;
      this.stopInput();
    }
    return 0;
  }

  private body(chunk: Buffer): void {
    if (this.broken || this.done) return;
    const body = this.reading?.body;
    if (!body || body.destroyed) return;
    if (!body.push(chunk) && !this.paused) {
      this.paused = body;
      this.stopInput();
    }
  }

  private messageComplete(): void {
    this.partialHeaders = [];
    this.partialUrl = "";
    if (this.broken || this.done) return;
    const req = this.reading;
    if (!req) return;
    this.reading = null;
    req.complete = true;
    if (req.body && !req.body.destroyed) req.body.push(null);
  }

  private dispatch(res: Http1Response): void {
    this.deadline = 0;
    const req = res.req;
    const expect = req.httpMinor >= 1 ? req.header("expect") : null;
    if (expect !== null) {
      if (expect.toLowerCase() !== "100-continue") {
        res.writeHead(417, ["content-length", "0"], null);
        return;
      }
      if (!req.complete) this.socket.write("HTTP/1.1 100 Continue\r\n\r\n", "latin1");
    }
    try {
      this.s.handler(req, res);
    } catch (err) {
      this.s.onError(err);
      if (!res.headersSent) res.writeHead(500, ["content-length", "0"], null);
      else res.destroy();
    }
  }

  private malformed(status: number): void {
    this.broken = { status };
    this.stopInput();
    // A body that turned out malformed (a bad chunk): its reader learns it, and its answer closes the connection.
    const req = this.reading;
    this.reading = null;
    if (req?.body && !req.body.destroyed) req.body.destroy(new Error("malformed request body"));
    if (this.queue.length === 0) this.refuse(status);
  }

  private refuse(status: number): void {
    this.finishConnection(rawAnswer(status));
  }

  private closed(): void {
    this.input.release();
    this.deadline = 0;
    this.held = false;
    const body = this.reading?.body;
    if (body && !body.destroyed && !this.reading?.complete) body.destroy(new Error("the client closed the connection mid-body"));
    this.reading = null;
    for (const res of this.queue) res.abort();
    this.queue.length = 0;
  }
}

function rawAnswer(status: number): string {
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "unknown"}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`;
}

/** The peer's address; dual-stack sockets report IPv4 peers as ::ffff:a.b.c.d, given as plain IPv4. */
export function clientAddressOf(socket: { remoteAddress?: string }): string {
  const addr = socket.remoteAddress ?? "";
  return addr.startsWith("::ffff:") && /^::ffff:\d+\.\d+\.\d+\.\d+$/.test(addr) ? addr.slice(7) : addr;
}

/** Resolves when the socket takes more, or when the connection is gone. */
export function drained(res: Http1Response): Promise<void> {
  if (res.destroyed || !res.req.socket.writableNeedDrain) return Promise.resolve();
  // One slot, replaced each time: the answer's abort also calls it (no listener piles up).
  return new Promise<void>((resolve) => res.onDrain(resolve));
}
