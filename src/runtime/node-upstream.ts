// Node upstream client: http: origins go to isthmus's own HTTP/1.1 client (http1-client.ts: `net`
// and Node's llhttp, the hot path), https: origins to undici's dispatch API on one keep-alive Agent
// (TLS, certificate checks and ALPN are undici's and Node's business). Global fetch is 3-6x slower
// here (research/platform.md); dispatch hands us the parser's callbacks, so a response body goes to
// the client's socket with no stream in between (RelayBody).
import { Readable } from "node:stream";
import type { ReadableStream as NodeReadableStream } from "node:stream/web";
import { Agent, errors } from "undici";
import type { Dispatcher } from "undici";
import { cappedSource } from "../proxy/request-body.ts";
import { UpstreamError, type TryAbort, type UpstreamClient, type UpstreamFailure, type UpstreamRequest, type UpstreamResponse } from "../proxy/upstream.ts";
import { createHttp1Client } from "./http1-client.ts";
import { RelayBody } from "./relay-body.ts";

export interface NodeUpstreamOptions {
  /** Connections per upstream origin. */
  connectionsPerOrigin?: number;
  connectTimeoutMs?: number;
  /** Idle time between body chunks before the exchange is abandoned. */
  bodyIdleTimeoutMs?: number;
}

const NO_BODY_STATUS = new Set([204, 205, 304]);

export function createNodeUpstream(opts: NodeUpstreamOptions = {}): UpstreamClient {
  const plain = createHttp1Client({
    ...(opts.connectionsPerOrigin !== undefined ? { connectionsPerOrigin: opts.connectionsPerOrigin } : {}),
    ...(opts.connectTimeoutMs !== undefined ? { connectTimeoutMs: opts.connectTimeoutMs } : {}),
    ...(opts.bodyIdleTimeoutMs !== undefined ? { bodyIdleTimeoutMs: opts.bodyIdleTimeoutMs } : {}),
  });
  const tls = createUndiciUpstream(opts);
  return {
    send: (req) => (req.origin.startsWith("http:") ? plain.send(req) : tls.send(req)),
    async close() {
      await Promise.all([plain.close(), tls.close()]);
    },
  };
}

/** https: upstreams (and any origin the HTTP/1.1 client does not take): undici. */
function createUndiciUpstream(opts: NodeUpstreamOptions = {}): UpstreamClient {
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

/** The request body as undici takes it. Exported for its test. */
export function toNodeBody(body: UpstreamRequest["body"]): Readable | Uint8Array | null {
  if (body === null || body instanceof Uint8Array) return body;
  if (body instanceof Readable) return body;
  if (body instanceof ReadableStream) return Readable.fromWeb(body as unknown as NodeReadableStream);
  const wrapper = Readable.from(body, { objectMode: false });
  // A size-capped body: destroying the wrapper only asks its generator to return, which waits behind
  // the source's next chunk (and the wrapper's 'close' with it); its source is stopped first, at once,
  // as the http: client does.
  const source = cappedSource(body);
  if (source instanceof Readable) {
    const destroyGenerator = wrapper._destroy.bind(wrapper);
    wrapper._destroy = (err, cb) => {
      if (!source.readableEnded) source.destroy();
      destroyGenerator(err, cb);
    };
  }
  return wrapper;
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
