// Node upstream client: undici's dispatch API on one keep-alive Agent (a pool per origin). Global
// fetch is 3-6x slower here (research/platform.md) and `request()` adds a stream object per body;
// dispatch hands us the parser's callbacks, so a response body goes to the client's socket with no
// stream in between (RelayBody), and a small answer is written in one piece with its headers.
import type { Http1Response } from "./http1-server.ts";
import { Readable } from "node:stream";
import { ReadableStream as NodeReadableStream } from "node:stream/web";
import { Agent, errors } from "undici";
import type { Dispatcher } from "undici";
import { UpstreamError, type TryAbort, type UpstreamBody, type UpstreamClient, type UpstreamFailure, type UpstreamRequest, type UpstreamResponse } from "../proxy/upstream.ts";

export interface NodeUpstreamOptions {
  /** Connections per upstream origin. */
  connectionsPerOrigin?: number;
  connectTimeoutMs?: number;
  /** Idle time between body chunks before the exchange is abandoned. */
  bodyIdleTimeoutMs?: number;
}

const NO_BODY_STATUS = new Set([204, 205, 304]);
/** Body bytes buffered before anyone reads them; beyond it the upstream socket is paused. */
const BUFFER_LIMIT = 64 * 1024;
/** A discarded body (a retried answer) is read off the connection up to this, so it can be reused. */
const DISCARD_LIMIT = 128 * 1024;

export function createNodeUpstream(opts: NodeUpstreamOptions = {}): UpstreamClient {
  const agent = new Agent({
    connections: opts.connectionsPerOrigin ?? 256,
    keepAliveTimeout: 30_000,
    connect: { timeout: opts.connectTimeoutMs ?? 5_000 },
    // No redirect interceptor: redirects are the client's business, a gateway never follows them.
  });
  const bodyTimeout = opts.bodyIdleTimeoutMs ?? 300_000;

  return {
    send(req: UpstreamRequest): Promise<UpstreamResponse> {
      return new Promise<UpstreamResponse>((resolve, reject) => {
        if (req.signal.aborted) {
          req.events?.settled();
          reject(req.signal.reason ?? new UpstreamError("aborted", "the exchange was aborted"));
          return;
        }
        const handler = new Exchange(req, resolve, reject);
        try {
          agent.dispatch(
            {
              // origin + path, not a URL string: a URL would be re-parsed and re-encode the query.
              origin: req.origin,
              path: req.path,
              method: req.method as Dispatcher.HttpMethod,
              headers: req.headers,
              body: toNodeBody(req.body),
              headersTimeout: req.headersTimeoutMs,
              bodyTimeout,
            },
            handler,
          );
        } catch (err) {
          handler.onResponseError(null, err as Error);
        }
      });
    },
    async close(): Promise<void> {
      await agent.close().catch(() => agent.destroy());
    },
  };
}

/** One upstream exchange as undici's dispatch handler: a class, so a request allocates one object, not a set of closures. */
class Exchange implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null;
  private body: RelayBody | null = null;
  private settled = false;

  constructor(
    private readonly req: UpstreamRequest,
    private readonly resolve: (res: UpstreamResponse) => void,
    private readonly reject: (err: UpstreamError) => void,
  ) {
    req.signal.onAbort((reason) => this.controller?.abort(reason));
  }

  onRequestStart(ctl: Dispatcher.DispatchController): void {
    this.controller = ctl;
    if (this.req.signal.aborted) ctl.abort(this.req.signal.reason as UpstreamError);
  }

  onResponseStart(ctl: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    // An interim answer (100, 103 Early Hints): the final one follows on the same exchange.
    if (statusCode < 200) return;
    const list = flatten(headers);
    const connection = headerValue(headers.connection);
    if (this.req.method === "HEAD" || NO_BODY_STATUS.has(statusCode)) {
      this.resolve({ status: statusCode, headers: list, connection, body: null });
      return;
    }
    this.body = new RelayBody(ctl, this);
    this.resolve({ status: statusCode, headers: list, connection, body: this.body });
  }

  onResponseData(_ctl: Dispatcher.DispatchController, chunk: Buffer): void {
    this.body?.data(chunk);
  }

  onResponseEnd(): void {
    this.body?.end();
    this.settle();
  }

  onResponseError(_ctl: Dispatcher.DispatchController | null, err: Error): void {
    if (this.body) this.body.fail(err);
    else this.reject(classify(err, this.req.signal));
    this.settle();
  }

  /** A body failure after the headers went on: classified, and told to the exchange. */
  bodyFailure(err: Error): UpstreamError {
    const failure = classify(err, this.req.signal);
    this.req.events?.bodyError(failure);
    return failure;
  }

  private settle(): void {
    if (this.settled) return;
    this.settled = true;
    this.req.signal.onAbort(null);
    this.req.events?.settled();
  }
}

/** Where a relayed body goes: the Node response, or a web stream's controller. */
interface Sink {
  /** False when the sink wants no more for now; `drained` is called when it does. */
  write(chunk: Buffer): boolean;
  end(): void;
  /** The upstream body failed midway: the client's response must be cut, not ended cleanly. */
  cut(err: Error): void;
}

/**
 * An upstream response body between undici's parser and its reader. Chunks that arrive before a
 * reader attaches are held (the common case: a small body arrives with its headers), so the Node
 * path can write status, headers and body in one go; a reader that falls behind pauses the socket.
 */
export class RelayBody implements UpstreamBody {
  private held: Buffer[] = [];
  private heldBytes = 0;
  private state: "open" | "ended" | "failed" | "discarded" = "open";
  private failure: Error | null = null;
  private sink: Sink | null = null;
  private discarded = 0;

  constructor(
    private readonly ctl: Dispatcher.DispatchController,
    private readonly exchange: { bodyFailure(err: Error): Error },
  ) {}

  data(chunk: Buffer): void {
    // undici hands over empty chunks after a pause; relayed, each would pause and resume again in
    // microtasks without end, and the event loop would never get control back.
    if (chunk.length === 0) return;
    if (this.state === "discarded") {
      this.discarded += chunk.length;
      if (this.discarded > DISCARD_LIMIT) this.ctl.abort(new UpstreamError("aborted", "discarded response body too large to drain"));
      return;
    }
    if (this.sink) {
      if (!this.sink.write(chunk)) this.ctl.pause();
      return;
    }
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    if (this.heldBytes > BUFFER_LIMIT) this.ctl.pause();
  }

  end(): void {
    if (this.state !== "open") return;
    this.state = "ended";
    this.sink?.end();
  }

  fail(err: Error): void {
    if (this.state === "discarded") return;
    this.state = "failed";
    this.failure = this.exchange.bodyFailure(err);
    this.sink?.cut(this.failure);
  }

  discard(): void {
    if (this.state !== "open") return;
    this.state = "discarded";
    this.held = [];
    this.ctl.resume();
  }

  /** The whole body when it has already arrived (one write for headers and body), else null. */
  takeComplete(): Buffer | null {
    if (this.state !== "ended" || this.sink) return null;
    const out = this.held.length === 1 ? (this.held[0] as Buffer) : Buffer.concat(this.held);
    this.held = [];
    return out;
  }

  /** Relays the rest of the body to an answer whose head is already written. */
  pipeTo(res: Http1Response): void {
    this.attach({
      write: (chunk) => (res.destroyed ? true : res.write(chunk)),
      end: () => res.end(),
      cut: () => res.destroy(),
    });
    res.onDrain(() => this.ctl.resume());
    res.onAbort(() => {
      if (this.state === "open") this.ctl.abort(new UpstreamError("aborted", "the client went away"));
    });
  }

  toWeb(): ReadableStream<Uint8Array> {
    let resume = () => undefined as void;
    const stream = new NodeReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.attach({
            write: (chunk) => {
              controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
              return (controller.desiredSize ?? 0) > 0;
            },
            end: () => controller.close(),
            // A premature-close error: the Node server treats it as an aborted exchange instead of printing a stack trace.
            cut: (err) => controller.error(Object.assign(new Error(`upstream response body failed: ${(err as UpstreamError).failure ?? "error"}`, { cause: err }), { code: "ERR_STREAM_PREMATURE_CLOSE" })),
          });
          resume = () => this.ctl.resume();
        },
        pull: () => resume(),
        cancel: () => {
          if (this.state === "open") this.ctl.abort(new UpstreamError("aborted", "the client went away"));
        },
      },
      { highWaterMark: 1 },
    );
    return stream as unknown as ReadableStream<Uint8Array>;
  }

  private attach(sink: Sink): void {
    this.sink = sink;
    const held = this.held;
    this.held = [];
    let more = true;
    for (const chunk of held) more = sink.write(chunk);
    if (this.state === "ended") sink.end();
    else if (this.state === "failed") sink.cut(this.failure as Error);
    else if (more) this.ctl.resume();
  }
}

function toNodeBody(body: UpstreamRequest["body"]): Readable | Uint8Array | null {
  if (body === null || body instanceof Uint8Array) return body;
  if (body instanceof Readable) return body;
  if (body instanceof ReadableStream) return Readable.fromWeb(body as unknown as NodeReadableStream);
  return Readable.from(body, { objectMode: false });
}

function flatten(headers: Record<string, string | string[] | undefined>): string[] {
  const out: string[] = [];
  for (const k in headers) {
    const v = headers[k];
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) out.push(k, x);
    else out.push(k, v);
  }
  return out;
}

function headerValue(v: string | string[] | undefined): string | null {
  if (v === undefined) return null;
  return Array.isArray(v) ? v.join(", ") : v;
}

/** Errors of a connection that was never made. */
const CONNECT_CODES = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "EADDRNOTAVAIL", "UND_ERR_CONNECT_TIMEOUT"]);

function classify(err: unknown, signal: TryAbort): UpstreamError {
  if (signal.aborted && signal.reason) return signal.reason;
  if (err instanceof UpstreamError) return err;
  const e = err as Error & { code?: string };
  // Only a failure known to come before anything was sent is "connect" (any method may be retried
  // then); anything else may have reached the upstream.
  let failure: UpstreamFailure = "reset";
  if (err instanceof errors.HeadersTimeoutError || err instanceof errors.ConnectTimeoutError || err instanceof errors.BodyTimeoutError) failure = "timeout";
  else if (err instanceof errors.RequestAbortedError || signal.aborted) failure = "aborted";
  else if (e.code !== undefined && CONNECT_CODES.has(e.code)) failure = "connect";
  else if (err instanceof errors.SocketError || e.code === "ECONNRESET" || e.code === "UND_ERR_SOCKET") failure = "reset";
  else if (
    err instanceof errors.HTTPParserError ||
    err instanceof errors.InvalidArgumentError ||
    err instanceof errors.NotSupportedError ||
    err instanceof errors.ResponseContentLengthMismatchError
  )
    failure = "protocol";
  return new UpstreamError(failure, e.message ?? String(err), { cause: err });
}
