// The CLI's only way to the gateway: its HTTP API (admin API under /_isthmus/v1 with the admin
// token, plus the unauthenticated health and JWKS endpoints). Errors come back as values the
// commands can print: problem+json bodies with their field paths, or the network reason.

export interface FieldError {
  path: string;
  message: string;
}

/** RFC 9457 problem details as the gateway writes them. */
export interface ProblemBody {
  type?: string;
  title?: string;
  status: number;
  detail?: string;
  errors?: FieldError[];
  [extra: string]: unknown;
}

/** The gateway answered with an error status. */
export class ApiError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly problem: ProblemBody,
  ) {
    super(`${method} ${path}: ${problem.status} ${problem.title ?? ""}${problem.detail ? `: ${problem.detail}` : ""}`);
    this.name = "ApiError";
  }
  get status(): number {
    return this.problem.status;
  }
}

/** The gateway could not be reached (refused, DNS, timeout, TLS). */
export class ConnectionError extends Error {
  constructor(
    readonly url: string,
    readonly reason: string,
  ) {
    super(`cannot reach the gateway at ${url}: ${reason}`);
    this.name = "ConnectionError";
  }
}

export interface RawResponse {
  status: number;
  headers: Headers;
  text: string;
  /** Local time the request was sent and the answer arrived, ms since the epoch. */
  sentAt: number;
  receivedAt: number;
}

export interface ClientOptions {
  url: string;
  token?: string | undefined;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export const ADMIN_BASE = "/_isthmus/v1";

export class Client {
  readonly base: string;
  private readonly token: string | undefined;
  private readonly timeoutMs: number;
  private readonly fetchFn: typeof fetch;

  constructor(opts: ClientOptions) {
    this.base = opts.url.replace(/\/+$/, "");
    this.token = opts.token;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.fetchFn = opts.fetch ?? fetch;
  }

  get hasToken(): boolean {
    return !!this.token;
  }

  /** Any request to the gateway, without throwing on an error status. */
  async raw(method: string, path: string, init: { body?: unknown; admin?: boolean } = {}): Promise<RawResponse> {
    const headers: Record<string, string> = { accept: "application/json, application/problem+json, text/plain;q=0.9" };
    if (init.admin && this.token) headers.authorization = `Bearer ${this.token}`;
    let body: string | undefined;
    if (init.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(init.body);
    }
    const url = `${this.base}${path}`;
    const sentAt = Date.now();
    let res: Response;
    try {
      res = await this.fetchFn(url, { method, headers, body, signal: AbortSignal.timeout(this.timeoutMs), redirect: "manual" });
    } catch (err) {
      throw new ConnectionError(this.base, networkReason(err, this.timeoutMs));
    }
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      throw new ConnectionError(this.base, networkReason(err, this.timeoutMs));
    }
    return { status: res.status, headers: res.headers, text, sentAt, receivedAt: Date.now() };
  }

  /** An admin call: the parsed JSON body on 2xx (null for 204), an ApiError otherwise. */
  async admin<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    return (await this.adminWithHeaders<T>(method, path, body)).body;
  }

  async adminWithHeaders<T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; headers: Headers; body: T }> {
    const res = await this.raw(method, `${ADMIN_BASE}${path}`, { body, admin: true });
    if (res.status >= 200 && res.status < 300) return { status: res.status, headers: res.headers, body: (res.text ? parseJson(res.text) : null) as T };
    throw new ApiError(method, `${ADMIN_BASE}${path}`, toProblem(res, this.hasToken));
  }

  /** An admin call answering text (the metrics exposition). */
  async adminText(path: string): Promise<string> {
    const res = await this.raw("GET", `${ADMIN_BASE}${path}`, { admin: true });
    if (res.status === 200) return res.text;
    throw new ApiError("GET", `${ADMIN_BASE}${path}`, toProblem(res, this.hasToken));
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** The problem of an error answer; a non-problem body still becomes one, with a hint for 401. */
function toProblem(res: RawResponse, hasToken: boolean): ProblemBody {
  const parsed = parseJson(res.text);
  const p: ProblemBody =
    parsed && typeof parsed === "object" && !Array.isArray(parsed) ? { ...(parsed as ProblemBody), status: res.status } : { status: res.status, title: `HTTP ${res.status}`, detail: res.text.trim().slice(0, 500) || undefined };
  if (res.status === 401) p.hint = hasToken ? "the gateway refused the admin token: check ISTHMUS_ADMIN_TOKEN (or --token)" : "no admin token given: set ISTHMUS_ADMIN_TOKEN or pass --token";
  return p;
}

function networkReason(err: unknown, timeoutMs: number): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e?.name === "TimeoutError" || e?.name === "AbortError") return `no answer within ${timeoutMs} ms`;
  const code = e?.cause?.code;
  const msg = e?.cause?.message ?? e?.message ?? String(err);
  return code && !msg.includes(code) ? `${code} (${msg})` : msg;
}
