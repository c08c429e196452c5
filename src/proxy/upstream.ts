// The upstream-client port: each runtime fills it in (undici on Node and Lambda, fetch on Workers).
import type { HeaderPairs } from "./headers.ts";

export type BodySource = ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>;

export interface UpstreamRequest {
  /** Scheme, host and port of the cluster endpoint. */
  origin: string;
  /** The endpoint's base path, the request's path and its query exactly as received. */
  path: string;
  method: string;
  headers: HeaderPairs;
  /** Streamed, or held in full (a body that may be sent again by a retry). */
  body: BodySource | Uint8Array | null;
  /** Aborts the exchange: request timeout, or the client went away. */
  signal: AbortSignal;
  /** Per-try limit for the response headers to arrive. */
  headersTimeoutMs: number;
  /** Called once when the exchange is over: body fully read, failed or abandoned. Lets the caller clear its timers. */
  onSettled?: () => void;
  /** Called when the response body fails after the headers were passed on (the client's response is cut). */
  onBodyError?: (err: UpstreamError) => void;
}

export interface UpstreamResponse {
  status: number;
  headers: Iterable<[string, string]>;
  connection: string | null;
  body: ReadableStream<Uint8Array> | null;
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
