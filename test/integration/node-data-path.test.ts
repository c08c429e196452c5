// The Node runtime's data path below Hono (src/runtime/node-data-plane.ts and node-upstream.ts),
// end to end against real loopback servers: backpressure on a large answer to a client that stops
// reading, the fast path and the Hono path giving the same answers (normalised targets, odd Hosts,
// 404s), framing of HEAD/204/304 on a keep-alive connection, chunked and small complete upstream
// answers, clients that go away mid-body, upstream bodies that fail midway, and request bodies.
// Which path a request took is read off the real request objects (`takes`); ordering is proven with
// events, and `within()` only turns a missing event into a clear failure.
import { createHash, randomBytes } from "node:crypto";
import { request as httpRequest, type IncomingMessage } from "node:http";
import net from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Http1Request } from "../../src/runtime/http1-server.ts";
import { takes } from "../../src/runtime/node-data-plane.ts";
import { Closer, startTestGateway, type TestGateway } from "../helpers/gateway.ts";
import { deferred, TIMED_OUT, within } from "../helpers/waiting.ts";
import { startUpstream, type Upstream, type UpstreamEcho } from "../helpers/upstream.ts";

const MB = 1024 * 1024;
const HOST = "plain.test";
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** The next `event` the upstream reports for a request whose target is `url`. */
function upstreamEvent(up: Upstream, event: "finished" | "aborted" | "request", url: string): Promise<IncomingMessage> {
  return new Promise((resolve) => {
    const on = (req: IncomingMessage) => {
      if (req.url !== url) return;
      up.events.off(event, on);
      resolve(req);
    };
    up.events.on(event, on);
  });
}

type Head = { status: number; headers: Record<string, string> };
/** Every raw connection a test opened (closed after each test). */
const wires = new Set<net.Socket>();

/** A raw HTTP/1.1 client connection: the test sees exactly how the gateway framed its answers, and decides when to read. */
class Wire {
  private buf: Buffer = Buffer.alloc(0);
  private wake: (() => void) | null = null;
  closed = false;

  private constructor(readonly socket: net.Socket) {
    socket.on("data", (c: Buffer) => {
      this.buf = this.buf.length === 0 ? c : Buffer.concat([this.buf, c]);
      this.notify();
    });
    socket.on("close", () => {
      this.closed = true;
      this.notify();
    });
    socket.on("error", () => undefined);
  }

  static open(port: number): Promise<Wire> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, "127.0.0.1", () => resolve(new Wire(s)));
      s.once("error", reject);
      wires.add(s);
    });
  }

  send(data: string | Buffer): void {
    this.socket.write(data);
  }

  private notify(): void {
    this.wake?.();
    this.wake = null;
  }

  /** Waits until `ok()` holds; false when the connection closed first. */
  private async until(ok: () => boolean): Promise<boolean> {
    while (!ok()) {
      if (this.closed) return false;
      await new Promise<void>((r) => (this.wake = r));
    }
    return true;
  }

  private take(n: number): Buffer {
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** Resolves once some bytes beyond what was taken have arrived. */
  async more(): Promise<boolean> {
    return this.until(() => this.buf.length > 0);
  }

  async head(): Promise<Head> {
    if (!(await this.until(() => this.buf.includes("\r\n\r\n")))) throw new Error(`connection closed before a response head (${this.buf.length} bytes pending)`);
    const lines = this.take(this.buf.indexOf("\r\n\r\n") + 4).toString("latin1").split("\r\n");
    const status = /^HTTP\/1\.1 (\d{3}) /.exec(lines[0] ?? "");
    if (!status) throw new Error(`not a status line: ${JSON.stringify(lines[0])}`);
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const c = l.indexOf(":");
      if (c > 0) headers[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim();
    }
    return { status: Number(status[1]), headers };
  }

  /** The body as the head frames it; `complete` is false when the connection closed first. */
  async body(h: Head, method = "GET"): Promise<{ body: Buffer; complete: boolean }> {
    if (method === "HEAD" || h.status === 204 || h.status === 304) return { body: Buffer.alloc(0), complete: true };
    if (h.headers["transfer-encoding"] === "chunked") {
      const parts: Buffer[] = [];
      for (;;) {
        if (!(await this.until(() => this.buf.includes("\r\n")))) return { body: Buffer.concat(parts), complete: false };
        const size = parseInt(this.take(this.buf.indexOf("\r\n") + 2).toString("latin1"), 16);
        if (Number.isNaN(size)) throw new Error("not a chunk-size line");
        if (!(await this.until(() => this.buf.length >= size + 2))) return { body: Buffer.concat([...parts, this.take(this.buf.length)]), complete: false };
        if (size === 0) {
          this.take(2);
          return { body: Buffer.concat(parts), complete: true };
        }
        parts.push(Buffer.from(this.take(size)));
        this.take(2);
      }
    }
    const length = h.headers["content-length"];
    if (length === undefined) {
      await this.until(() => false);
      return { body: this.take(this.buf.length), complete: true };
    }
    const n = Number(length);
    const complete = await this.until(() => this.buf.length >= n);
    return { body: Buffer.from(this.take(Math.min(n, this.buf.length))), complete };
  }

  async request(method: string, target: string, extra = "", host = HOST): Promise<Head & { body: Buffer }> {
    this.send(`${method} ${target} HTTP/1.1\r\nHost: ${host}\r\n${extra}\r\n`);
    const h = await this.head();
    const b = await this.body(h, method);
    if (!b.complete) throw new Error(`${method} ${target}: connection closed mid-body`);
    return { ...h, body: b.body };
  }
}

describe("Node data path below Hono", () => {
  const closer = new Closer();
  let east: Upstream;
  let gw: TestGateway;
  /** Whether the fast path took each request, by "host target" (read off the real parsed request). */
  const took = new Map<string, boolean>();
  /** The gateway's side of each client connection, by the client's port. */
  const serverSockets = new Map<number, net.Socket>();
  const fast = (target: string, host = HOST) => took.get(`${host} ${target}`);

  beforeAll(async () => {
    east = closer.add(await startUpstream("east"));
    gw = closer.add(
      await startTestGateway({
        clusters: { east: east.url },
        routes: {
          plain: {
            hostnames: [HOST],
            authorization: { unauthenticated: true },
            rules: [{ backendRefs: [{ cluster: "east", service: "svc.local", port: 8080, weight: 1 }], timeouts: { request: "60s" } }],
          },
        },
      }),
    );
    gw.server.prependListener("request", (req: Http1Request) => took.set(`${req.header("host")} ${req.url}`, takes(req)));
    gw.server.on("connection", (s: net.Socket) => serverSockets.set(s.remotePort ?? 0, s));
  });
  afterEach(() => {
    east.setBehaviour({});
    for (const w of wires) w.destroy();
    wires.clear();
  });
  afterAll(() => closer.closeAll());

  async function stillServes(tag: string): Promise<void> {
    east.setBehaviour({});
    const res = await gw.request(HOST, `/after/${tag}`);
    expect(res.statusCode, tag).toBe(200);
    expect(((await res.body.json()) as UpstreamEcho).path).toBe(`/after/${tag}`);
    expect(fast(`/after/${tag}`)).toBe(true);
  }

  it("backpressure: a 64 MiB answer to a client that stops reading is not buffered by the gateway", { timeout: 60_000 }, async () => {
    const body = randomBytes(64 * MB);
    east.setBehaviour({ body });
    const finished = upstreamEvent(east, "finished", "/big");
    let upstreamDone = false;
    void finished.then(() => (upstreamDone = true));
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest({ host: "127.0.0.1", port: gw.port, path: "/big", headers: { host: HOST }, agent: false }, resolve);
      req.on("error", reject);
      req.end();
    });
    expect(res.statusCode).toBe(200);
    expect(fast("/big")).toBe(true);
    // The client has the headers and reads nothing more (no 'data' listener: node:http stops reading
    // the socket). Wait until what the gateway has written to it stops growing: the pipe is full.
    const sock = serverSockets.get(res.socket.localPort ?? -1);
    expect(sock, "the gateway's side of the client connection").toBeDefined();
    let written = -1;
    let stalled = false;
    for (let checks = 0; checks < 100 && !stalled; checks++) {
      await new Promise((r) => setTimeout(r, 200));
      const now = sock?.bytesWritten ?? 0;
      stalled = now === written;
      written = now;
    }
    console.info(`gateway wrote ${(written / MB).toFixed(1)} MiB to the paused client; upstream finished: ${upstreamDone}`);
    // Had the gateway buffered the body (ignored res.write's false), the upstream would have written it all by now.
    expect(upstreamDone, "the upstream finished while the client was paused").toBe(false);
    expect(stalled, "writes to the paused client never stopped growing").toBe(true);
    expect(written, "data flowed to the client before it stalled").toBeGreaterThan(1 * MB);
    expect(written).toBeLessThan(body.length);

    const hash = createHash("sha256");
    let bytes = 0;
    for await (const c of res as AsyncIterable<Buffer>) {
      bytes += c.length;
      hash.update(c);
    }
    expect(bytes).toBe(body.length);
    expect(hash.digest("hex")).toBe(sha256(body));
    expect(await within(finished, 10_000), "upstream never finished").not.toBe(TIMED_OUT);
  });

  it("both paths: normalised targets and odd Hosts reach the upstream as the Hono path normalises them, with the same answer", async () => {
    // Raw targets: undici and fetch would normalise them before sending. One keep-alive connection for all.
    const wire = await Wire.open(gw.port);
    const get = async (host: string, target: string) => {
      const r = await wire.request("GET", target, "", host);
      const text = r.body.toString();
      return { status: r.status, headers: r.headers, text, echo: r.status === 200 ? (JSON.parse(text) as UpstreamEcho) : null };
    };
    const base = await get(HOST, "/a/b?x=1");
    expect(fast("/a/b?x=1")).toBe(true);
    expect(base.status).toBe(200);
    // The fast path frames the small, complete answer with a content-length (the Hono path relays it chunked).
    expect(base.headers["content-length"]).toBe(String(Buffer.byteLength(base.text)));
    const revision = String(gw.routing.current.routes.get("plain")?.revision);
    expect(base.headers["x-isthmus-route-revision"]).toBe(revision);
    const cases: Array<[host: string, target: string, fast: boolean]> = [
      [HOST, "/a/./b?x=1", false],
      [HOST, "/a/../a/b?x=1", false],
      [HOST, "/a/%62?x=1", false],
      [HOST, "/a//b/./?x=1", false],
      ["Plain.Test", "/a/b?x=1", false],
      ["plain.test:80", "/a/b?x=1", false],
      ["plain.test:8080", "/a/b?x=1", true],
    ];
    for (const [host, target, wantFast] of cases) {
      const r = await get(host, target);
      const label = `${host} ${target}`;
      expect(fast(target, host), `${label}: fast path`).toBe(wantFast);
      expect(r.status, label).toBe(200);
      expect(r.headers["x-isthmus-route-revision"], label).toBe(revision);
      expect(r.headers["content-type"], label).toBe(base.headers["content-type"]);
      // What the upstream saw: the path as WHATWG URL parsing (the Hono path) normalises it, the query as sent.
      const u = new URL(target, "http://x");
      const want = `${u.pathname}${target.slice(target.indexOf("?"))}`;
      expect(east.received.at(-1)?.path, label).toBe(want);
      const echo = r.echo as UpstreamEcho;
      expect({ ...echo, headers: null }, label).toStrictEqual({ ...base.echo, path: want, headers: null });
      // Forwarded headers agree, except those that repeat the client's Host as sent.
      const strip = (h: UpstreamEcho["headers"]) => ({ ...h, "x-forwarded-host": null, forwarded: null });
      expect(strip(echo.headers), label).toStrictEqual(strip((base.echo as UpstreamEcho).headers));
      expect(echo.headers["x-forwarded-host"], label).toBe(host);
    }

    // A fragment is not part of the request (Node's parser lets "#" through): the Hono path drops
    // it, and a "?" inside it is not a query.
    for (const [target, want] of [
      ["/a/b?x=1#frag", "/a/b?x=1"],
      ["/a/b#frag", "/a/b"],
      ["/a/#x/../b?q=1", "/a/"],
    ] as const) {
      const r = await get(HOST, target);
      expect(fast(target), `${target}: fast path`).toBe(false);
      expect(r.status, target).toBe(200);
      expect(east.received.at(-1)?.path, target).toBe(want);
    }

    // No route: the same problem from both paths.
    const misses = [await get("nowhere.test", "/x"), await get("nowhere.test", "/./x"), await get("Nowhere.Test", "/x")];
    expect([fast("/x", "nowhere.test"), fast("/./x", "nowhere.test"), fast("/x", "Nowhere.Test")]).toEqual([true, false, false]);
    for (const m of misses) {
      expect(m.status).toBe(404);
      expect(m.headers["content-type"]).toBe("application/problem+json");
      expect(JSON.parse(m.text)).toStrictEqual(JSON.parse((misses[0] as typeof m).text));
    }
    expect(JSON.parse(misses[0]?.text ?? "")).toMatchObject({ type: "urn:isthmus:problem:no-route", status: 404, title: "No route" });
    expect(misses[0]?.headers["content-length"]).toBe(String(Buffer.byteLength(misses[0]?.text ?? "")));
  });

  it("HEAD, 204 and 304 through the fast path: no body, HEAD keeps the upstream's content-length, and the connection stays usable", async () => {
    const wire = await Wire.open(gw.port);
    east.setBehaviour({ body: Buffer.alloc(1234, "h") });
    const head = await wire.request("HEAD", "/head");
    expect([head.status, head.headers["content-length"], head.headers["transfer-encoding"]]).toEqual([200, "1234", undefined]);
    const got = await wire.request("GET", "/head");
    expect(got.body.equals(Buffer.alloc(1234, "h"))).toBe(true);

    east.setBehaviour({ status: 204, headers: { "x-kind": "no-content" } });
    const noContent = await wire.request("GET", "/no-content");
    expect([noContent.status, noContent.headers["x-kind"], noContent.headers["transfer-encoding"]]).toEqual([204, "no-content", undefined]);

    east.setBehaviour({ status: 304, headers: { etag: '"v1"' } });
    const notModified = await wire.request("GET", "/not-modified", 'If-None-Match: "v1"\r\n');
    expect([notModified.status, notModified.headers.etag, notModified.headers["transfer-encoding"]]).toEqual([304, '"v1"', undefined]);

    // Had any of them carried body bytes, this response would not parse.
    east.setBehaviour({});
    const after = await wire.request("GET", "/after-empty");
    expect(after.status).toBe(200);
    expect((JSON.parse(after.body.toString()) as UpstreamEcho).path).toBe("/after-empty");
    expect(wire.closed).toBe(false);
    for (const t of ["/head", "/no-content", "/not-modified", "/after-empty"]) expect(fast(t), t).toBe(true);
  });

  it("a chunked upstream answer is relayed chunked as it comes; a small one that arrived whole gets a content-length", async () => {
    const wire = await Wire.open(gw.port);
    const release = deferred();
    east.setBehaviour({ stream: { chunks: 3, chunkBytes: 1000, holdAfterFirst: release.promise } });
    wire.send(`GET /chunked HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
    // The head arrives while the upstream still holds the rest of its body.
    const head = await within(wire.head(), 10_000);
    release.resolve();
    if (head === TIMED_OUT) throw new Error("no response head while the upstream held its body");
    expect([head.status, head.headers["transfer-encoding"], head.headers["content-length"]]).toEqual([200, "chunked", undefined]);
    const body = await wire.body(head);
    expect(body.complete && body.body.toString()).toBe("a".repeat(1000) + "b".repeat(1000) + "c".repeat(1000));

    // Three chunks written at once (one segment on loopback): complete before the gateway answers.
    east.setBehaviour({ stream: { chunks: 3, chunkBytes: 16 } });
    for (let i = 0; i < 5; i++) {
      const small = await wire.request("GET", `/small/${i}`);
      expect([small.headers["content-length"], small.headers["transfer-encoding"]], `request ${i}`).toEqual(["48", undefined]);
      expect(small.body.toString()).toBe("a".repeat(16) + "b".repeat(16) + "c".repeat(16));
    }
    expect([fast("/chunked"), fast("/small/0")]).toEqual([true, true]);
  });

  it("each exchange's request timer ends with its answer: 60 small answers leave no timers behind (the 60 s request timeout)", async () => {
    // A small answer is often complete (the upstream exchange settled) before the awaiting exchange
    // takes it; the request timer must be cleared in that order too, or every request holds a timer
    // and its whole exchange until the request timeout.
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
    const w = await Wire.open(gw.port);
    await w.request("GET", "/timers/warm-up");
    const before = timers();
    for (let i = 0; i < 60; i++) expect((await w.request("GET", `/timers/${i}`)).status).toBe(200);
    expect(fast("/timers/59")).toBe(true);
    expect(timers() - before).toBeLessThan(10);
  });

  it("a client that goes away mid-body, 20 times: the upstream exchange is abandoned and the gateway keeps serving", async () => {
    for (let i = 0; i < 20; i++) {
      const hold = deferred();
      // Half the time the upstream writes continuously, half the time it holds after the first chunk.
      east.setBehaviour(i % 2 === 0 ? { stream: { chunks: 10_000, chunkBytes: 4096, gapMs: 1 } } : { stream: { chunks: 3, chunkBytes: 4096, holdAfterFirst: hold.promise } });
      const target = `/gone/${i}`;
      const aborted = upstreamEvent(east, "aborted", target);
      const wire = await Wire.open(gw.port);
      wire.send(`GET ${target} HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
      const head = await wire.head();
      expect(head.status).toBe(200);
      expect(await wire.more(), `iteration ${i}: no body bytes arrived`).toBe(true);
      wire.socket.destroy();
      expect(await within(aborted, 10_000), `iteration ${i}: the upstream exchange was not abandoned`).not.toBe(TIMED_OUT);
      hold.resolve();
      expect(fast(target)).toBe(true);
      await stillServes(`gone-${i}`);
    }
  });

  it("an upstream body that fails midway cuts the client's response (content-length and chunked), and the next request succeeds", async () => {
    for (const framing of ["content-length", "chunked"] as const) {
      const target = `/cut/${framing}`;
      east.setBehaviour({ stallAfterHeaders: true, stallChunk: "p".repeat(1000), headers: framing === "content-length" ? { "content-length": "100000" } : {} });
      const upstreamReq = upstreamEvent(east, "request", target);
      const wire = await Wire.open(gw.port);
      wire.send(`GET ${target} HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
      const head = await wire.head();
      expect(head.status).toBe(200);
      if (framing === "content-length") expect(head.headers["content-length"]).toBe("100000");
      else expect(head.headers["transfer-encoding"]).toBe("chunked");
      expect(await wire.more()).toBe(true);
      // The upstream dies after part of the body.
      (await upstreamReq).socket.destroy();
      const body = await within(wire.body(head), 10_000);
      if (body === TIMED_OUT) throw new Error(`${framing}: the client's response was neither ended nor cut`);
      expect(body.complete, `${framing}: the client saw a clean, complete response`).toBe(false);
      // What did arrive is a prefix of what the upstream sent.
      expect(body.body.toString()).toMatch(/^p{1,1000}$/);
      expect(wire.closed).toBe(true);
      expect(fast(target)).toBe(true);
      await stillServes(`cut-${framing}`);
    }
  });

  it("request bodies on the fast path: 5 MB with content-length, and a chunked one, arrive intact", async () => {
    const big = randomBytes(5 * MB);
    const res = await gw.request(HOST, "/upload", { method: "POST", body: big, headers: { "content-type": "application/octet-stream" } });
    expect(res.statusCode).toBe(200);
    const echo = (await res.body.json()) as UpstreamEcho;
    expect(fast("/upload")).toBe(true);
    expect(echo.bodyBytes).toBe(big.length);
    expect(echo.bodySha256).toBe(sha256(big));
    expect(echo.headers["content-length"]).toBe(String(big.length));

    const parts = [randomBytes(100_000), randomBytes(1), randomBytes(70_000)];
    const wire = await Wire.open(gw.port);
    wire.send(`POST /upload-chunked HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n`);
    for (const p of parts) wire.send(Buffer.concat([Buffer.from(`${p.length.toString(16)}\r\n`), p, Buffer.from("\r\n")]));
    wire.send("0\r\n\r\n");
    const head = await wire.head();
    expect(head.status).toBe(200);
    const chunkedEcho = JSON.parse((await wire.body(head)).body.toString()) as UpstreamEcho;
    const whole = Buffer.concat(parts);
    expect(fast("/upload-chunked")).toBe(true);
    expect(chunkedEcho.bodyBytes).toBe(whole.length);
    expect(chunkedEcho.bodySha256).toBe(sha256(whole));
  });
});

describe("upstream failures after the request was sent", () => {
  const closer = new Closer();
  let received = 0;
  let raw: net.Server;
  let gw: TestGateway;

  beforeAll(async () => {
    // Reads a request, then answers with a malformed status line: the request did reach the upstream.
    raw = net.createServer((s) => {
      s.once("data", (d: Buffer) => {
        // The gateway's health probes also knock here; count only the requests under test.
        if (d.toString("latin1").includes(" /orders ")) received++;
        s.end("HTTP/1.1 2x0 Bad\r\n\r\n");
      });
      s.on("error", () => undefined);
    });
    await new Promise<void>((resolve) => raw.listen(0, "127.0.0.1", resolve));
    closer.add({ close: () => new Promise<void>((resolve) => raw.close(() => resolve())) });
    const port = (raw.address() as net.AddressInfo).port;
    gw = closer.add(
      await startTestGateway({
        clusters: { bad: `http://127.0.0.1:${port}` },
        routes: {
          retrying: {
            hostnames: ["retry.test"],
            authorization: { unauthenticated: true },
            rules: [{ backendRefs: [{ cluster: "bad", service: "svc.local", weight: 1 }], retry: { attempts: 2 } }],
          },
        },
      }),
    );
  });
  afterAll(() => closer.closeAll());

  it("a malformed answer is a protocol failure: a POST is not sent again, a GET is retried", async () => {
    received = 0;
    const post = await gw.request("retry.test", "/orders", { method: "POST", body: "{}", headers: { "content-type": "application/json" } });
    expect(post.statusCode).toBe(502);
    expect(((await post.body.json()) as { detail: string }).detail).toMatch(/protocol/);
    expect(received).toBe(1);
    received = 0;
    const get = await gw.request("retry.test", "/orders");
    expect(get.statusCode).toBe(502);
    await get.body.dump();
    expect(received).toBe(3);
  });
});

describe("an upstream's interim answer (103 Early Hints) before the final one", () => {
  const closer = new Closer();
  let gw: TestGateway;
  beforeAll(async () => {
    const raw = net.createServer((s) => {
      s.on("data", (d: Buffer) => {
        if (!d.toString("latin1").includes(" /hints ")) {
          s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
          return;
        }
        s.write("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n");
        setTimeout(() => s.write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nfinal"), 20);
      });
      s.on("error", () => undefined);
    });
    await new Promise<void>((resolve) => raw.listen(0, "127.0.0.1", resolve));
    closer.add({ close: () => new Promise<void>((resolve) => raw.close(() => resolve())) });
    const port = (raw.address() as net.AddressInfo).port;
    gw = closer.add(
      await startTestGateway({
        clusters: { hints: `http://127.0.0.1:${port}` },
        routes: { hints: { hostnames: ["hints.test"], authorization: { unauthenticated: true }, rules: [{ backendRefs: [{ cluster: "hints", service: "svc.local", weight: 1 }] }] } },
      }),
    );
  });
  afterAll(() => closer.closeAll());

  it("the client gets the final 200 and its body, on the fast path and through the app", async () => {
    // "/a/../hints" needs normalising, so the Hono app serves it (the web stream path).
    for (const path of ["/hints", "/a/../hints"]) {
      const res = await gw.request("hints.test", path);
      expect(res.statusCode, path).toBe(200);
      expect(await res.body.text(), path).toBe("final");
    }
  });
});
