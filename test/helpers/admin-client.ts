// A tiny client for the admin API (/_isthmus/v1) over real HTTP (undici's fetch): every call
// returns the status, the headers and the parsed JSON body (or null), and never throws on an
// HTTP error status.
import { fetch, type Dispatcher, type RequestInit } from "undici";

export interface FieldErrorBody {
  path: string;
  message: string;
}

/** RFC 9457 problem details as the gateway writes them. */
export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail?: string;
  errors?: FieldErrorBody[];
  [extra: string]: unknown;
}

export interface AdminResponse<T = unknown> {
  status: number;
  headers: { get(name: string): string | null };
  /** Parsed JSON body; null when there is none (e.g. 204). */
  body: T;
  /** The raw text of the body. */
  text: string;
}

export interface RequestOptions {
  /** A JS value is sent as JSON; a string or bytes (or a stream) is sent as is. */
  body?: unknown;
  headers?: Record<string, string>;
  /** Override the admin token for this call; null sends no Authorization header at all. */
  token?: string | null;
  /** Send through this dispatcher (e.g. a fresh undici Agent, for a connection of its own). */
  dispatcher?: Dispatcher;
}

const ADMIN_BASE = "/_isthmus/v1";

export class AdminClient {
  constructor(
    readonly baseUrl: string,
    readonly token: string | null,
  ) {}

  /** A request to any gateway path (not only the admin API), e.g. `/_isthmus/healthz`. */
  async raw<T = unknown>(method: string, path: string, opts: RequestOptions = {}): Promise<AdminResponse<T>> {
    const headers: Record<string, string> = {};
    const token = opts.token === undefined ? this.token : opts.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let body: RequestInit["body"];
    let duplex: "half" | undefined;
    if (opts.body === undefined) body = undefined;
    else if (typeof opts.body === "string" || opts.body instanceof Uint8Array) body = opts.body;
    else if (opts.body instanceof ReadableStream) {
      body = opts.body;
      duplex = "half";
    } else {
      body = JSON.stringify(opts.body);
      headers["content-type"] = "application/json";
    }
    Object.assign(headers, opts.headers ?? {});
    // Headers given as "" are removed, so a test can send a request without e.g. Authorization.
    for (const [k, v] of Object.entries(headers)) if (v === "") delete headers[k];
    const init: RequestInit = { method, headers, body };
    if (duplex) init.duplex = duplex;
    if (opts.dispatcher) init.dispatcher = opts.dispatcher;
    const res = await fetch(`${this.baseUrl}${path}`, init);
    const text = await res.text();
    let parsed: unknown = null;
    if (text !== "") {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = null;
      }
    }
    return { status: res.status, headers: res.headers, body: parsed as T, text };
  }

  /** A request to the admin API: `path` is relative to /_isthmus/v1. */
  request<T = unknown>(method: string, path: string, opts: RequestOptions = {}): Promise<AdminResponse<T>> {
    return this.raw<T>(method, `${ADMIN_BASE}${path}`, opts);
  }

  get<T = unknown>(path: string, opts?: RequestOptions) {
    return this.request<T>("GET", path, opts);
  }
  put<T = unknown>(path: string, body: unknown, opts: RequestOptions = {}) {
    return this.request<T>("PUT", path, { ...opts, body });
  }
  post<T = unknown>(path: string, body: unknown, opts: RequestOptions = {}) {
    return this.request<T>("POST", path, { ...opts, body });
  }
  delete<T = unknown>(path: string, opts?: RequestOptions) {
    return this.request<T>("DELETE", path, opts);
  }
}
