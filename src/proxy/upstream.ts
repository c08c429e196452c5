// The upstream-client port: each runtime fills it in (undici on Node and Lambda, fetch on Workers).
import type { HeaderList } from "./headers.ts";

export type BodySource = ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>;

export interface UpstreamRequest {
  /** Scheme, host and port of the cluster endpoint. */
  origin: string;
  /** The endpoint's base path, the request's path and its query exactly as received. */
  path: string;
  method: string;
  headers: HeaderList;
  /** Streamed, or held in full (a body that may be sent again by a retry). */
  body: BodySource | Uint8Array | null;
  /** Aborts the try: request or per-try timeout, or the client went away. */
  signal: TryAbort;
  /** Per-try limit for the response headers to arrive. */
  headersTimeoutMs: number;
  /** Told when the exchange is over, and when a body fails midway. */
  events?: UpstreamEvents;
}

export interface UpstreamEvents {
  /** Called once when the exchange is over: body fully read, failed or abandoned. Lets the caller clear its timers. */
  settled(): void;
  /** Called when the response body fails after the headers were passed on (the client's response is cut). */
  bodyError(err: UpstreamError): void;
}

/**
 * Aborts one try. A plain object rather than an AbortController: one is made per try on the hot
 * path, and it has exactly one listener (the upstream client).
 */
export class TryAbort {
  aborted = false;
  reason: UpstreamError | null = null;
  private listener: ((reason: UpstreamError) => void) | null = null;

  abort(reason: UpstreamError): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const l = this.listener;
    this.listener = null;
    l?.(reason);
  }

  /** Sets the one listener (replacing any before it); null removes it. */
  onAbort(listener: ((reason: UpstreamError) => void) | null): void {
    this.listener = listener;
  }

  /** A web AbortSignal that follows this one (for fetch). */
  toSignal(): AbortSignal {
    const ctl = new AbortController();
    if (this.aborted) ctl.abort(this.reason);
    else this.onAbort((r) => ctl.abort(r));
    return ctl.signal;
  }
}

/** A response body still to be relayed. Each runtime's client returns its own kind; every kind can become a web stream. */
export interface UpstreamBody {
  /** The body as a web stream (the web Response path). */
  toWeb(): ReadableStream<Uint8Array>;
  /** Drops the body unread (a retried attempt): the connection is released or closed. */
  discard(): void;
}

export interface UpstreamResponse {
  status: number;
  headers: HeaderList;
  connection: string | null;
  body: UpstreamBody | null;
}

export type UpstreamFailure = "timeout" | "connect" | "reset" | "aborted" | "protocol";

export class UpstreamError extends Error {
  constructor(
    readonly failure: UpstreamFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "UpstreamError";
  }
}

export interface UpstreamClient {
  send(req: UpstreamRequest): Promise<UpstreamResponse>;
  close(): Promise<void>;
}
