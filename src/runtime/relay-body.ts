// An upstream response body on its way to the client, for both Node upstream clients (our own on
// `net` for http: origins, undici for https:). It holds what arrives before a reader attaches, so a
// small answer leaves in one write with its head, and pauses the upstream when the reader falls behind.
import { ReadableStream as NodeReadableStream } from "node:stream/web";
import type { Http1Response } from "./http1-server.ts";
import { UpstreamError, type UpstreamBody } from "../proxy/upstream.ts";

/** How a relayed body steers its upstream connection (undici's DispatchController has this shape). */
export interface FlowControl {
  pause(): void;
  resume(): void;
  abort(reason: Error): void;
}

/** Body bytes buffered before anyone reads them; beyond it the upstream socket is paused. */
const BUFFER_LIMIT = 64 * 1024;
/** A discarded body (a retried answer) is read off the connection up to this, so it can be reused. */
const DISCARD_LIMIT = 128 * 1024;

/** Where a relayed body goes: the Node response, or a web stream's controller. */
interface Sink {
  /** False when the sink wants no more for now; `drained` is called when it does. */
  write(chunk: Buffer): boolean;
  end(): void;
  /** The upstream body failed midway: the client's response must be cut, not ended cleanly. */
  cut(err: Error): void;
}

/**
 * An upstream response body between the upstream client's parser and its reader. Chunks that arrive before a
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
    private readonly ctl: FlowControl,
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
