// Node upstream client: undici.request on one keep-alive Agent (a pool per origin). Global fetch
// is 3-6x slower here (research/platform.md), and Readable.toWeb crashes on early client aborts,
// so response bodies go out through ReadableStream.from.
import { Readable } from "node:stream";
import { ReadableStream as NodeReadableStream } from "node:stream/web";
import { Agent, errors } from "undici";
import type { Dispatcher } from "undici";
import { UpstreamError, type UpstreamClient, type UpstreamFailure, type UpstreamRequest, type UpstreamResponse } from "../proxy/upstream.ts";

export interface NodeUpstreamOptions {
  /** Connections per upstream origin. */
  connectionsPerOrigin?: number;
  connectTimeoutMs?: number;
  /** Idle time between body chunks before the exchange is abandoned. */
  bodyIdleTimeoutMs?: number;
}

const NO_BODY_STATUS = new Set([204, 205, 304]);

export function createNodeUpstream(opts: NodeUpstreamOptions = {}): UpstreamClient {
  const agent = new Agent({
    connections: opts.connectionsPerOrigin ?? 256,
    keepAliveTimeout: 30_000,
    connect: { timeout: opts.connectTimeoutMs ?? 5_000 },
    // No redirect interceptor: redirects are the client's business, a gateway never follows them.
  });

  return {
    async send(req: UpstreamRequest): Promise<UpstreamResponse> {
      let res: Dispatcher.ResponseData;
      try {
        // origin + path, not a URL string: a URL would be re-parsed and re-encode the query.
        res = await agent.request({
          origin: req.origin,
          path: req.path,
          method: req.method as Dispatcher.HttpMethod,
          headers: flatPairs(req.headers),
          body: toNodeBody(req.body),
          signal: req.signal,
          headersTimeout: req.headersTimeoutMs,
          bodyTimeout: opts.bodyIdleTimeoutMs ?? 300_000,
        });
      } catch (err) {
        req.onSettled?.();
        throw classify(err, req.signal);
      }
      const body = res.body;
      if (req.onSettled) body.once("close", req.onSettled);
      // A body-read failure after headers (reset, idle timeout, abort) ends the client's stream; swallow the event here.
      body.on("error", () => undefined);
      const headers = flatten(res.headers);
      const connection = headerValue(res.headers.connection);
      if (req.method === "HEAD" || NO_BODY_STATUS.has(res.statusCode)) {
        body.destroy();
        return { status: res.statusCode, headers, connection, body: null };
      }
      return { status: res.statusCode, headers, connection, body: NodeReadableStream.from(relay(body, req)) as unknown as ReadableStream<Uint8Array> };
    },
    async close(): Promise<void> {
      await agent.close().catch(() => agent.destroy());
    },
  };
}

/**
 * Relays the upstream body. If it fails midway (reset, timeout), the client's response must be cut,
 * not ended cleanly; the error is re-thrown as a premature close, which the Node server treats as an
 * aborted exchange instead of printing a stack trace, and the cause goes to the gateway's own log.
 */
async function* relay(body: AsyncIterable<Uint8Array>, req: UpstreamRequest): AsyncGenerator<Uint8Array> {
  try {
    for await (const chunk of body) yield chunk;
  } catch (err) {
    const failure = classify(err, req.signal);
    req.onBodyError?.(failure);
    throw Object.assign(new Error(`upstream response body failed: ${failure.failure}`, { cause: failure }), { code: "ERR_STREAM_PREMATURE_CLOSE" });
  }
}

function toNodeBody(body: UpstreamRequest["body"]): Readable | Uint8Array | null {
  if (body === null || body instanceof Uint8Array) return body;
  if (body instanceof Readable) return body;
  if (body instanceof ReadableStream) return Readable.fromWeb(body as unknown as NodeReadableStream);
  return Readable.from(body, { objectMode: false });
}

/** undici takes a flat [name, value, name, value, ...] array; an array of pairs would be misread. */
function flatPairs(pairs: ReadonlyArray<[string, string]>): string[] {
  const out = new Array<string>(pairs.length * 2);
  for (let i = 0; i < pairs.length; i++) {
    const p = pairs[i] as [string, string];
    out[2 * i] = p[0];
    out[2 * i + 1] = p[1];
  }
  return out;
}

function flatten(headers: Record<string, string | string[] | undefined>): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) out.push([k, x]);
    else out.push([k, v]);
  }
  return out;
}

function headerValue(v: string | string[] | undefined): string | null {
  if (v === undefined) return null;
  return Array.isArray(v) ? v.join(", ") : v;
}

function classify(err: unknown, signal: AbortSignal): UpstreamError {
  if (signal.aborted && signal.reason instanceof UpstreamError) return signal.reason;
  const e = err as Error & { code?: string };
  let failure: UpstreamFailure = "connect";
  if (err instanceof errors.HeadersTimeoutError || err instanceof errors.ConnectTimeoutError || err instanceof errors.BodyTimeoutError) failure = "timeout";
  else if (err instanceof errors.RequestAbortedError || signal.aborted) failure = "aborted";
  else if (err instanceof errors.SocketError || e.code === "ECONNRESET" || e.code === "UND_ERR_SOCKET") failure = "reset";
  else if (err instanceof errors.HTTPParserError || err instanceof errors.InvalidArgumentError || err instanceof errors.NotSupportedError) failure = "protocol";
  return new UpstreamError(failure, e.message ?? String(err), { cause: err });
}
