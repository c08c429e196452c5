// Upstream client on web `fetch`: the only outbound HTTP a Worker has, and usable wherever fetch
// streams request bodies. Redirects go back to the client (a gateway never follows them), request
// bodies stream (duplex "half"), and the response body is relayed through a stream that tells the
// caller when the exchange is over: read to the end, failed, or cancelled.
//
// fetch cannot set Host (a forbidden header name in the Fetch standard; workerd and Cloudflare
// take it from the URL), so the upstream sees the endpoint's own host there. The authority the
// gateway means (service[:port]) travels in `x-isthmus-authority` instead; clients cannot forge
// it, since every client-sent x-isthmus-* header is dropped (headers.ts).
import { headerListOf } from "./headers.ts";
import { UpstreamError, type UpstreamBody, type UpstreamClient, type UpstreamFailure, type UpstreamRequest, type UpstreamResponse } from "./upstream.ts";

export interface FetchUpstreamOptions {
  /** The fetch to use; default the global one. */
  fetch?: (input: string, init: RequestInit) => Promise<Response>;
}

const NO_BODY_STATUS = new Set([204, 205, 304]);

/** Carries the Host the gateway would have sent, which fetch cannot set. */
export const AUTHORITY_HEADER = "x-isthmus-authority";

export function createFetchUpstream(opts: FetchUpstreamOptions = {}): UpstreamClient {
  const doFetch = opts.fetch ?? ((input: string, init: RequestInit) => fetch(input, init));
  return {
    async send(req: UpstreamRequest): Promise<UpstreamResponse> {
      // fetch has no headers timeout of its own: a timer aborts the exchange if none arrive in time.
      const headersCtl = new AbortController();
      const headersTimer = setTimeout(() => headersCtl.abort(new UpstreamError("timeout", `no response headers within ${req.headersTimeoutMs}ms`)), req.headersTimeoutMs);
      const signal = AbortSignal.any([req.signal.toSignal(), headersCtl.signal]);
      const headers = new Headers();
      for (let i = 0; i + 1 < req.headers.length; i += 2) {
        const name = req.headers[i] as string;
        const value = req.headers[i + 1] as string;
        if (name === "host") headers.set(AUTHORITY_HEADER, value);
        else headers.append(name, value);
      }
      let res: Response;
      try {
        res = await doFetch(req.origin + req.path, {
          method: req.method,
          headers,
          body: toFetchBody(req.body),
          redirect: "manual",
          signal,
          // Streams the request body as it arrives (required for stream bodies by the fetch spec).
          duplex: "half",
        } as RequestInit);
      } catch (err) {
        req.events?.settled();
        throw classify(err, signal);
      } finally {
        clearTimeout(headersTimer);
      }
      const pairs = headerListOf(res.headers);
      const connection = res.headers.get("connection");
      if (res.body === null || req.method === "HEAD" || NO_BODY_STATUS.has(res.status)) {
        await res.body?.cancel().catch(() => undefined);
        req.events?.settled();
        return { status: res.status, headers: pairs, connection, body: null };
      }
      return {
        status: res.status,
        headers: pairs,
        connection,
        body: webBody(watchBody(res.body, {
          onEnd: () => req.events?.settled(),
          onError: (err) => {
            const failure = classify(err, signal);
            req.events?.bodyError(failure);
            return failure;
          },
        })),
      };
    },
    async close(): Promise<void> {},
  };
}

/** A web stream as an upstream body. */
export function webBody(stream: ReadableStream<Uint8Array>): UpstreamBody {
  return { toWeb: () => stream, discard: () => void stream.cancel().catch(() => undefined) };
}

/**
 * Relays a body chunk by chunk (pulled only as fast as the reader reads) and calls `onEnd` exactly
 * once when it is over: read to the end, failed, or cancelled by the reader. A failure reaches the
 * reader as the error `onError` returns, so a cut upstream body cuts the client's response too.
 */
export function watchBody(body: ReadableStream<Uint8Array>, hooks: { onEnd: () => void; onError?: (err: unknown) => unknown }): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    hooks.onEnd();
  };
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (err) {
          controller.error(hooks.onError ? hooks.onError(err) : err);
          end();
          return;
        }
        if (chunk.done) {
          controller.close();
          end();
        } else {
          controller.enqueue(chunk.value);
        }
      },
      async cancel(reason) {
        end();
        await reader.cancel(reason).catch(() => undefined);
      },
    },
    { highWaterMark: 0 },
  );
}

function toFetchBody(body: UpstreamRequest["body"]): BodyInit | null {
  if (body === null || body instanceof Uint8Array || body instanceof ReadableStream) return body as BodyInit | null;
  const it = body[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const r = await it.next();
        if (r.done) controller.close();
        else controller.enqueue(r.value);
      },
      async cancel(reason) {
        await it.return?.(reason);
      },
    },
    { highWaterMark: 0 },
  );
}

/**
 * Maps a fetch failure onto the upstream failure kinds. Only a failure known to have happened
 * before anything was sent counts as "connect" (which lets any method be retried); an unknown
 * network error counts as "reset", retried only for idempotent methods.
 */
export function classify(err: unknown, signal: AbortSignal): UpstreamError {
  if (err instanceof UpstreamError) return err;
  if (signal.aborted) {
    if (signal.reason instanceof UpstreamError) return signal.reason;
    return new UpstreamError("aborted", "the exchange was aborted", { cause: err });
  }
  const e = err as Error & { cause?: { code?: string; message?: string } };
  const text = `${e?.message ?? String(err)} ${e?.cause?.code ?? ""} ${e?.cause?.message ?? ""}`;
  // workerd reports a refused connection and a reset alike ("Network connection lost."): a reset.
  let failure: UpstreamFailure = "reset";
  if (/ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|connection refused|connect(ion)? (failed|error)|dns|could not resolve/i.test(text)) failure = "connect";
  else if (/timed? ?out|UND_ERR_(HEADERS|CONNECT)_TIMEOUT/i.test(text)) failure = "timeout";
  else if (/invalid|unsupported|parse|malformed|protocol/i.test(text) && !/connection lost|reset|closed/i.test(text)) failure = "protocol";
  return new UpstreamError(failure, e?.message ?? String(err), { cause: err });
}
