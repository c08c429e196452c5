// Lambda invocation fixtures: Function URL (payload format 2.0) events as the Lambda service builds
// them, the EventBridge schedule's event, a Lambda context, and a stand-in for the Node.js runtime's
// `awslambda` global (streamifyResponse, HttpResponseStream) with a Writable sink that records every
// chunk and when it arrived (research/platform.md section 5: the real wrapper exists only on Lambda).
import { randomUUID } from "node:crypto";
import { Writable } from "node:stream";
import type { APIGatewayProxyEventV2, Context, ScheduledEvent } from "aws-lambda";

export const FUNCTION_URL_HOST = "abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws";

export interface UrlEventOptions {
  method?: string;
  path?: string;
  /** Raw query string, without "?". */
  query?: string;
  headers?: Record<string, string>;
  /** Text bodies are sent as is; bytes are base64-encoded (isBase64Encoded: true), as Lambda does for binary bodies. */
  body?: string | Uint8Array;
  sourceIp?: string;
  cookies?: string[];
  /** The Host header; default the Function URL's own domain (what a real Function URL event carries). */
  host?: string;
}

/** A Function URL request event, payload format version 2.0. */
export function urlEvent(o: UrlEventOptions = {}): APIGatewayProxyEventV2 {
  const method = o.method ?? "GET";
  const path = o.path ?? "/";
  const host = o.host ?? FUNCTION_URL_HOST;
  const now = new Date();
  const body = o.body === undefined ? undefined : typeof o.body === "string" ? o.body : Buffer.from(o.body).toString("base64");
  return {
    version: "2.0",
    routeKey: "$default",
    rawPath: path,
    rawQueryString: o.query ?? "",
    ...(o.cookies ? { cookies: o.cookies } : {}),
    headers: {
      host,
      "user-agent": "lambda-test",
      "x-amzn-trace-id": `Root=1-${Math.floor(now.getTime() / 1000).toString(16)}-${randomUUID().replace(/-/g, "").slice(0, 24)}`,
      "x-forwarded-proto": "https",
      "x-forwarded-port": "443",
      "x-forwarded-for": o.sourceIp ?? "203.0.113.7",
      ...o.headers,
    },
    requestContext: {
      accountId: "anonymous",
      apiId: host.split(".")[0] ?? "api",
      domainName: host,
      domainPrefix: host.split(".")[0] ?? "api",
      http: { method, path, protocol: "HTTP/1.1", sourceIp: o.sourceIp ?? "203.0.113.7", userAgent: "lambda-test" },
      requestId: randomUUID(),
      routeKey: "$default",
      stage: "$default",
      time: now.toUTCString(),
      timeEpoch: now.getTime(),
    },
    ...(body !== undefined ? { body } : {}),
    isBase64Encoded: o.body instanceof Uint8Array,
  };
}

/** The event an EventBridge rate/cron rule sends with the default target input. */
export function scheduledEvent(): ScheduledEvent {
  return {
    version: "0",
    id: randomUUID(),
    "detail-type": "Scheduled Event",
    source: "aws.events",
    account: "123456789012",
    time: new Date().toISOString(),
    region: "eu-west-1",
    resources: ["arn:aws:events:eu-west-1:123456789012:rule/isthmus-schedule"],
    detail: {},
  };
}

export function lambdaContext(): Context {
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: "isthmus-test",
    functionVersion: "$LATEST",
    invokedFunctionArn: "arn:aws:lambda:eu-west-1:123456789012:function:isthmus-test",
    memoryLimitInMB: "1024",
    awsRequestId: randomUUID(),
    logGroupName: "/aws/lambda/isthmus-test",
    logStreamName: "2026/11/26/[$LATEST]test",
    getRemainingTimeInMillis: () => 30_000,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

/** A response stream sink: every chunk with its arrival time, the HTTP metadata, and the whole body. */
export class ResponseSink extends Writable {
  readonly chunks: Array<{ at: number; data: Buffer }> = [];
  metadata: { statusCode?: number; headers?: Record<string, string>; cookies?: string[] } | null = null;
  private readonly firstWaiters: Array<() => void> = [];

  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.chunks.push({ at: performance.now(), data: Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk) });
    for (const w of this.firstWaiters.splice(0)) w();
    cb();
  }

  /** Resolves once at least one chunk was written. */
  firstChunk(): Promise<void> {
    if (this.chunks.length > 0) return Promise.resolve();
    return new Promise((resolve) => this.firstWaiters.push(resolve));
  }

  get body(): Buffer {
    return Buffer.concat(this.chunks.map((c) => c.data));
  }

  get text(): string {
    return this.body.toString("utf8");
  }
}

/**
 * Installs a stand-in for the Lambda runtime's `awslambda` global: `streamifyResponse` returns the
 * handler as is, and `HttpResponseStream.from` records the HTTP metadata on the sink. Install it
 * before the handler module is imported (the module wraps its handler at load time).
 */
export function installAwsLambdaGlobal(): () => void {
  const g = globalThis as Record<string, unknown>;
  const before = g.awslambda;
  g.awslambda = {
    streamifyResponse: <T>(handler: T): T => handler,
    HttpResponseStream: {
      from(stream: Writable, metadata: ResponseSink["metadata"]): Writable {
        if (stream instanceof ResponseSink) stream.metadata = metadata;
        return stream;
      },
    },
  };
  return () => {
    g.awslambda = before;
  };
}

/** Sets environment variables (undefined deletes) and returns a function that restores the previous values. */
export function setEnv(vars: Record<string, string | undefined>): () => void {
  const saved = new Map<string, string | undefined>();
  for (const [k, v] of Object.entries(vars)) {
    saved.set(k, process.env[k]);
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  return () => {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
}
