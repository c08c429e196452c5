// The Node runtime's HTTP/1.1 server (src/runtime/http1-server.ts) on real sockets: the protocol
// behaviour node:http gave before it, and its answers to malformed and hostile input. Bytes are
// written and read raw, so framing, ordering and closing are what is checked, not a client's view.
import net from "node:net";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, describe, expect, it } from "vitest";
import { createHttp1Server, InvalidHeaderError, type Http1Handler, type Http1Request, type Http1Response, type Http1ServerOptions } from "../../src/runtime/http1-server.ts";
import { webUrl, writeWebResponse } from "../../src/runtime/node-app-bridge.ts";
import { TIMED_OUT, within } from "../helpers/waiting.ts";

interface Answer {
  status: number;
  /** Lower-case names; repeated names keep the last. */
  headers: Record<string, string>;
  body: string;
}

/** A raw client connection: what it wrote, and the answers parsed off what came back. */
class Wire {
  readonly socket: net.Socket;
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  closed = false;
  readonly closedP: Promise<void>;

  constructor(port: number) {
    this.socket = net.connect(port, "127.0.0.1");
    this.socket.on("data", (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    this.socket.on("error", () => undefined);
    this.closedP = new Promise((resolve) =>
      this.socket.once("close", () => {
        this.closed = true;
        this.wake();
        resolve();
      }),
    );
  }

  send(s: string | Buffer): void {
    this.socket.write(s);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private more(): Promise<void> {
    return new Promise((r) => this.waiters.push(r));
  }

  /** The next answer off the wire (a 1xx included), or null when the connection closed first. */
  async next(): Promise<Answer | null> {
    for (;;) {
      const parsed = parseOne(this.buf, this.closed);
      if (parsed) {
        this.buf = this.buf.subarray(parsed.used);
        return parsed.answer;
      }
      if (this.closed) return null;
      await this.more();
    }
  }

  /** Whatever bytes are left once the connection closed. */
  async rest(): Promise<string> {
    await this.closedP;
    return this.buf.toString("latin1");
  }
}

function parseOne(buf: Buffer, closed: boolean): { answer: Answer; used: number } | null {
  const end = buf.indexOf("\r\n\r\n");
  if (end < 0) return null;
  const lines = buf.subarray(0, end).toString("latin1").split("\r\n");
  const status = Number((lines[0] ?? "").split(" ")[1]);
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(":");
    headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  let at = end + 4;
  if (status < 200 || status === 204 || status === 304 || headers["x-head"] === "1") return { answer: { status, headers, body: "" }, used: at };
  if (headers["content-length"] !== undefined) {
    const n = Number(headers["content-length"]);
    if (buf.length < at + n) return null;
    return { answer: { status, headers, body: buf.subarray(at, at + n).toString("latin1") }, used: at + n };
  }
  if (headers["transfer-encoding"] === "chunked") {
    let body = "";
    for (;;) {
      const lineEnd = buf.indexOf("\r\n", at);
      if (lineEnd < 0) return null;
      const size = parseInt(buf.subarray(at, lineEnd).toString("latin1"), 16);
      if (buf.length < lineEnd + 2 + size + 2) return null;
      if (size === 0) return { answer: { status, headers, body }, used: lineEnd + 4 };
      body += buf.subarray(lineEnd + 2, lineEnd + 2 + size).toString("latin1");
      at = lineEnd + 2 + size + 2;
    }
  }
  // Delimited by closing.
  if (!closed) return null;
  return { answer: { status, headers, body: buf.subarray(at).toString("latin1") }, used: buf.length };
}

const servers: Array<{ close(ms?: number): Promise<void> }> = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close(100)));
});

async function serve(handler: Http1Handler, opts: Http1ServerOptions = {}): Promise<{ port: number; close(ms?: number): Promise<void> }> {
  const s = createHttp1Server(handler, opts);
  await s.listen(0, "127.0.0.1");
  const port = (s.net.address() as net.AddressInfo).port;
  const handle = { port, close: (ms?: number) => s.close(ms) };
  servers.push(handle);
  return handle;
}

async function readBody(req: Http1Request): Promise<string> {
  if (!req.body) return "";
  const parts: Buffer[] = [];
  for await (const c of req.body) parts.push(c as Buffer);
  return Buffer.concat(parts).toString("latin1");
}

/** Echoes method, target, a few headers and the body, in one write. */
const echo: Http1Handler = (req, res) => {
  void readBody(req).then((body) => {
    res.writeHead(200, ["content-type", "application/json", "x-head", req.method === "HEAD" ? "1" : "0"], Buffer.from(JSON.stringify({ method: req.method, url: req.url, host: req.header("host"), body, headers: req.rawHeaders.length / 2 })));
  });
};

const GET = (path: string, extra = "") => `GET ${path} HTTP/1.1\r\nHost: t.local\r\n${extra}\r\n`;

describe("HTTP/1.1 server: the protocol", () => {
  it("keep-alive: three requests on one connection, each answered in full, the connection left open", async () => {
    const { port } = await serve(echo);
    const w = new Wire(port);
    for (const p of ["/a", "/b?x=1", "/c"]) {
      w.send(GET(p));
      const a = await w.next();
      expect(a?.status).toBe(200);
      expect(JSON.parse(a?.body ?? "{}")).toMatchObject({ method: "GET", url: p, host: "t.local" });
      expect(a?.headers.connection).toBeUndefined();
      expect(a?.headers.date).toMatch(/GMT$/);
    }
    expect(w.closed).toBe(false);
    w.socket.destroy();
  });

  it("pipelining: answers leave in request order even when the first is the slowest", async () => {
    const order: string[] = [];
    const { port } = await serve((req, res) => {
      order.push(req.url);
      const delay = req.url === "/1" ? 50 : 0;
      setTimeout(() => res.writeHead(200, [], Buffer.from(req.url)), delay);
    });
    const w = new Wire(port);
    w.send(GET("/1") + GET("/2") + GET("/3"));
    const got = [await w.next(), await w.next(), await w.next()].map((a) => a?.body);
    expect(got).toEqual(["/1", "/2", "/3"]);
    w.socket.destroy();
  });

  it("pipelining past maxPipelined: reading pauses and resumes, and all 40 are answered in order", async () => {
    const { port } = await serve((req, res) => setImmediate(() => res.writeHead(200, [], Buffer.from(req.url))), { maxPipelined: 2 });
    const w = new Wire(port);
    w.send(Array.from({ length: 40 }, (_, i) => GET(`/${i}`)).join(""));
    for (let i = 0; i < 40; i++) expect((await w.next())?.body).toBe(`/${i}`);
    w.socket.destroy();
  });

  it("request bodies: Content-Length and chunked, both streamed to the handler whole", async () => {
    const { port } = await serve(echo);
    const w = new Wire(port);
    w.send("POST /p HTTP/1.1\r\nHost: t.local\r\nContent-Length: 5\r\n\r\nhello");
    expect(JSON.parse((await w.next())?.body ?? "{}").body).toBe("hello");
    w.send("POST /p HTTP/1.1\r\nHost: t.local\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n");
    expect(JSON.parse((await w.next())?.body ?? "{}").body).toBe("abcdefg");
    w.socket.destroy();
  });

  it("trailers of a chunked request are dropped, never joined into the next request's headers (a trailer Host included)", async () => {
    const { port } = await serve(echo);
    const w = new Wire(port);
    w.send("POST /p HTTP/1.1\r\nHost: t.local\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nHost: evil.example\r\nX-Trailer: 1\r\n\r\n");
    expect(JSON.parse((await w.next())?.body ?? "{}")).toMatchObject({ body: "abc", host: "t.local" });
    w.send(GET("/next"));
    // The next request has exactly its own one header, and its own Host.
    expect(JSON.parse((await w.next())?.body ?? "{}")).toMatchObject({ url: "/next", host: "t.local", headers: 1 });
    w.socket.destroy();
  });

  it("a request body of 4 MiB to a handler that reads slowly: the socket is paused, nothing lost", async () => {
    const { port } = await serve((req, res) => {
      let n = 0;
      const body = req.body;
      if (!body) return res.writeHead(400, [], null);
      body.on("data", (c: Buffer) => {
        n += c.length;
        body.pause();
        setImmediate(() => body.resume());
      });
      body.on("end", () => res.writeHead(200, [], Buffer.from(String(n))));
    });
    const w = new Wire(port);
    const size = 4 * 1024 * 1024;
    w.send(`PUT /big HTTP/1.1\r\nHost: t.local\r\nContent-Length: ${size}\r\n\r\n`);
    w.send(Buffer.alloc(size, 97));
    expect((await w.next())?.body).toBe(String(size));
    w.socket.destroy();
  });

  it("more than 32 header fields (the parser hands them over in parts): every one arrives", async () => {
    const { port } = await serve(echo);
    const w = new Wire(port);
    const extra = Array.from({ length: 70 }, (_, i) => `X-F${i}: v${i}\r\n`).join("");
    w.send(GET("/many", extra));
    const a = await w.next();
    expect(JSON.parse(a?.body ?? "{}")).toMatchObject({ url: "/many", headers: 71 });
    w.socket.destroy();
  });

  it("Expect: 100-continue gets its 100 before the body is sent; another expectation gets 417", async () => {
    const { port } = await serve(echo);
    const w = new Wire(port);
    w.send("POST /e HTTP/1.1\r\nHost: t.local\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n");
    expect((await w.next())?.status).toBe(100);
    w.send("ok");
    expect(JSON.parse((await w.next())?.body ?? "{}").body).toBe("ok");
    w.send(GET("/x", "Expect: something-else\r\n"));
    expect((await w.next())?.status).toBe(417);
    w.socket.destroy();
  });

  it("HEAD keeps Content-Length and sends no body; 204 and 304 send neither", async () => {
    const { port } = await serve((req, res) => {
      const status = req.url === "/204" ? 204 : req.url === "/304" ? 304 : 200;
      res.writeHead(status, ["content-length", "11", "x-head", "1"], req.method === "HEAD" || status !== 200 ? null : Buffer.from("hello world"));
    });
    const w = new Wire(port);
    w.send("HEAD /h HTTP/1.1\r\nHost: t.local\r\n\r\n");
    const h = await w.next();
    expect(h?.status).toBe(200);
    expect(h?.headers["content-length"]).toBe("11");
    w.send(GET("/204"));
    const n = await w.next();
    expect(n?.status).toBe(204);
    expect(n?.headers["content-length"]).toBeUndefined();
    w.send(GET("/304"));
    expect((await w.next())?.status).toBe(304);
    // Nothing stray between the answers: the next request is answered cleanly.
    w.send("HEAD /h HTTP/1.1\r\nHost: t.local\r\n\r\n");
    expect((await w.next())?.status).toBe(200);
    w.socket.destroy();
  });

  it("a streamed body of unknown length is chunked for HTTP/1.1 and delimited by closing for HTTP/1.0", async () => {
    const { port } = await serve((_req, res) => {
      res.writeHead(200, ["content-type", "text/plain"]);
      res.write(Buffer.from("one,"));
      setImmediate(() => {
        res.write(Buffer.from("two"));
        res.end();
      });
    });
    const w = new Wire(port);
    w.send(GET("/s"));
    const a = await w.next();
    expect(a?.headers["transfer-encoding"]).toBe("chunked");
    expect(a?.body).toBe("one,two");
    w.socket.destroy();
    const old = new Wire(port);
    old.send("GET /s HTTP/1.0\r\n\r\n");
    const b = await old.next();
    expect(b?.headers["transfer-encoding"]).toBeUndefined();
    expect(b?.headers.connection).toBe("close");
    expect(b?.body).toBe("one,two");
    expect(old.closed).toBe(true);
  });

  it("HTTP/1.0: closed after the answer unless it asks for keep-alive, which it then gets", async () => {
    const { port } = await serve(echo);
    const w = new Wire(port);
    w.send("GET /a HTTP/1.0\r\n\r\n");
    expect((await w.next())?.status).toBe(200);
    await w.closedP;
    const k = new Wire(port);
    k.send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    const a = await k.next();
    expect(a?.headers.connection).toBe("keep-alive");
    k.send("GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    expect(JSON.parse((await k.next())?.body ?? "{}").url).toBe("/b");
    k.socket.destroy();
  });

  it("Connection: close from the client: answered with connection: close, then closed", async () => {
    const { port } = await serve(echo);
    const w = new Wire(port);
    w.send(GET("/c", "Connection: close\r\n"));
    expect((await w.next())?.headers.connection).toBe("close");
    await w.closedP;
  });

  it("an Upgrade (h2c) is answered as HTTP/1.1, then the connection closes; what followed the headers is never parsed", async () => {
    const seen: string[] = [];
    const { port } = await serve((req, res) => {
      seen.push(req.url);
      res.writeHead(200, [], Buffer.from("plain"));
    });
    const w = new Wire(port);
    w.send(GET("/u", "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n") + GET("/smuggled"));
    const a = await w.next();
    expect(a?.body).toBe("plain");
    expect(a?.headers.connection).toBe("close");
    await w.closedP;
    expect(seen).toEqual(["/u"]);
  });

  it("a handler that throws: 500, and the connection still serves", async () => {
    const errors: unknown[] = [];
    const { port } = await serve(
      (req, res) => {
        if (req.url === "/throw") throw new Error("boom");
        res.writeHead(200, [], Buffer.from("fine"));
      },
      { onError: (e) => errors.push(e) },
    );
    const w = new Wire(port);
    w.send(GET("/throw"));
    expect((await w.next())?.status).toBe(500);
    w.send(GET("/ok"));
    expect((await w.next())?.body).toBe("fine");
    expect(errors).toHaveLength(1);
    w.socket.destroy();
  });

  it("writeHead refuses a header it must not send (CR LF in a value, a name that is no token), before writing anything", async () => {
    const thrown: unknown[] = [];
    const { port } = await serve((req, res) => {
      const bad = req.url === "/crlf" ? ["x-a", "b\r\nset-cookie: evil=1"] : ["bad name", "v"];
      try {
        res.writeHead(200, bad, Buffer.from("x"));
      } catch (e) {
        thrown.push(e);
        res.writeHead(502, [], Buffer.from("refused"));
      }
    });
    const w = new Wire(port);
    w.send(GET("/crlf") + GET("/name"));
    const a = await w.next();
    const b = await w.next();
    expect([a?.status, b?.status]).toEqual([502, 502]);
    expect(a?.headers["set-cookie"]).toBeUndefined();
    expect(thrown.every((e) => e instanceof InvalidHeaderError)).toBe(true);
    expect(thrown).toHaveLength(2);
    w.socket.destroy();
  });

  it("a Content-Length that contradicts the body given is refused (no desynchronised connection)", async () => {
    let err: unknown = null;
    const { port } = await serve((_req, res) => {
      try {
        res.writeHead(200, ["content-length", "99"], Buffer.from("short"));
      } catch (e) {
        err = e;
        res.writeHead(500, [], null);
      }
    });
    const w = new Wire(port);
    w.send(GET("/"));
    expect((await w.next())?.status).toBe(500);
    expect(err).toBeInstanceOf(InvalidHeaderError);
    w.socket.destroy();
  });

  it("answering before the request body has arrived: the answer says connection: close, and the connection closes", async () => {
    const { port } = await serve((_req, res) => res.writeHead(413, [], Buffer.from("too big")));
    const w = new Wire(port);
    w.send("POST /up HTTP/1.1\r\nHost: t.local\r\nContent-Length: 100000\r\n\r\npartial");
    const a = await w.next();
    expect(a?.status).toBe(413);
    expect(a?.headers.connection).toBe("close");
    await w.closedP;
  });
});

describe("HTTP/1.1 server: malformed and hostile requests", () => {
  const refusals: Array<[string, string, number]> = [
    ["garbage request line", "NOT HTTP AT ALL\r\n\r\n", 400],
    ["unknown method", "BREW /pot HTTP/1.1\r\nHost: t\r\n\r\n", 400],
    ["HTTP/1.1 without Host", "GET / HTTP/1.1\r\nUser-Agent: x\r\n\r\n", 400],
    ["space before a header colon", "GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400],
    ["header name with a control character", "GET / HTTP/1.1\r\nHost: t\r\nX\u0001Y: z\r\n\r\n", 400],
    ["bare LF line endings inside headers", "GET / HTTP/1.1\r\nHost: t\nX: y\r\n\r\n", 400],
    ["Content-Length and Transfer-Encoding together (smuggling)", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400],
    ["two different Content-Lengths", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", 400],
    ["a negative Content-Length", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", 400],
    ["an unsupported HTTP version", "GET / HTTP/3.7\r\nHost: t\r\n\r\n", 400],
    ["CONNECT (not a forward proxy)", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 405],
    ["a header block over the limit", `GET / HTTP/1.1\r\nHost: t\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`, 431],
  ];

  for (const [what, bytes, status] of refusals) {
    it(`${what}: ${status}, connection: close, the handler never called`, async () => {
      let called = 0;
      const { port } = await serve((_req, res) => {
        called++;
        res.writeHead(200, [], Buffer.from("served"));
      });
      const w = new Wire(port);
      w.send(bytes);
      const a = await w.next();
      expect(a?.status).toBe(status);
      expect(a?.headers.connection).toBe("close");
      await w.closedP;
      expect(called).toBe(0);
    });
  }

  // Errors found in the body, after the headers: the handler has the request by then (as with
  // node:http); its reader gets an error, and nothing after it on the connection is served.
  const badBodies: Array<[string, string]> = [
    ["a bad chunk size", "POST /b HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"],
    ["a chunk longer than its size", "POST /b HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcdef\r\n0\r\n\r\n"],
    ["Transfer-Encoding that does not end in chunked", "POST /b HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\nxyz"],
  ];
  for (const [what, bytes] of badBodies) {
    it(`${what}: the body's reader gets an error, the connection closes, and a request pipelined after it is never served`, async () => {
      const seen: string[] = [];
      const outcome: string[] = [];
      const { port } = await serve((req, res) => {
        seen.push(req.url);
        readBody(req).then(
          () => outcome.push("read"),
          () => outcome.push("error"),
        );
        res.onAbort(() => outcome.push("aborted"));
        setTimeout(() => {
          if (!res.destroyed) res.writeHead(200, [], Buffer.from("x"));
        }, 20);
      });
      const w = new Wire(port);
      w.send(bytes + GET("/after"));
      await w.closedP;
      expect(seen).toEqual(["/b"]);
      expect(outcome).not.toContain("read");
      expect(outcome[0]).toBe("error");
    });
  }

  it("a malformed request after a good one: the good one is answered first, then the refusal, then close", async () => {
    const { port } = await serve((req, res) => setTimeout(() => res.writeHead(200, [], Buffer.from(req.url)), 20));
    const w = new Wire(port);
    w.send(GET("/good") + "BAD\r\n\r\n");
    expect((await w.next())?.body).toBe("/good");
    expect((await w.next())?.status).toBe(400);
    await w.closedP;
  });

  it("slowloris: headers trickling in past the headers timeout get 408 and the connection is closed", async () => {
    const { port } = await serve(echo, { headersTimeoutMs: 200 });
    const w = new Wire(port);
    w.send("GET / HTTP/1.1\r\nHost: t\r\n");
    const trickle = setInterval(() => {
      if (!w.closed) w.send("X-Drip: 1\r\n");
    }, 50);
    try {
      expect(await within(w.closedP, 5_000)).not.toBe(TIMED_OUT);
    } finally {
      clearInterval(trickle);
    }
    expect(await w.rest()).toMatch(/^HTTP\/1\.1 408 /);
  });

  it("an idle keep-alive connection is closed after the keep-alive timeout, without an answer", async () => {
    const { port } = await serve(echo, { keepAliveTimeoutMs: 200 });
    const w = new Wire(port);
    w.send(GET("/once"));
    expect((await w.next())?.status).toBe(200);
    expect(await within(w.closedP, 5_000)).not.toBe(TIMED_OUT);
    expect(await w.rest()).toBe("");
  });

  it("a client that half-closes or leaves mid-answer: the answer's abort listeners are told, and the server keeps serving", async () => {
    let aborted = 0;
    let pending: Http1Response | null = null;
    const { port } = await serve((req, res) => {
      if (req.url === "/hang") {
        pending = res;
        res.onAbort(() => aborted++);
        return;
      }
      res.writeHead(200, [], Buffer.from("ok"));
    });
    for (const leave of ["end", "destroy"] as const) {
      const w = new Wire(port);
      w.send(GET("/hang"));
      while (!pending) await new Promise((r) => setImmediate(r));
      w.socket[leave]();
      await w.closedP;
      while (aborted === (leave === "end" ? 0 : 1)) await new Promise((r) => setImmediate(r));
      expect((pending as Http1Response).aborted).toBe(true);
      pending = null;
    }
    expect(aborted).toBe(2);
    const w = new Wire(port);
    w.send(GET("/after"));
    expect((await w.next())?.body).toBe("ok");
    w.socket.destroy();
  });

  it("close(): an idle connection closes at once; a busy one gets its answer with connection: close, then closes", async () => {
    let release: (() => void) | null = null;
    const s = await serve((req, res) => {
      if (req.url === "/slow") release = () => res.writeHead(200, [], Buffer.from("late"));
      else res.writeHead(200, [], Buffer.from("now"));
    });
    const idle = new Wire(s.port);
    idle.send(GET("/fast"));
    expect((await idle.next())?.body).toBe("now");
    const busy = new Wire(s.port);
    busy.send(GET("/slow"));
    while (!release) await new Promise((r) => setImmediate(r));
    const closing = s.close(5_000);
    await idle.closedP;
    expect(busy.closed).toBe(false);
    (release as () => void)();
    const a = await busy.next();
    expect(a?.body).toBe("late");
    expect(a?.headers.connection).toBe("close");
    await busy.closedP;
    await closing;
  });
});

describe("the app bridge's URL", () => {
  it("builds origin-form and absolute-form targets as @hono/node-server did, and refuses what makes no URL", () => {
    expect(webUrl("/a/b?c=d", "svc.local:8080")).toBe("http://svc.local:8080/a/b?c=d");
    expect(webUrl("/a/../b", "svc.local")).toBe("http://svc.local/b");
    expect(webUrl("http://other.local/x", null)).toBe("http://other.local/x");
    expect(webUrl("/x", "[::1]:8080")).toBe("http://[::1]:8080/x");
    expect(() => webUrl("/x", null)).toThrow(/Host/);
    expect(() => webUrl("*", "svc.local")).toThrow(/target/);
    expect(() => webUrl("/a\\b", "svc.local")).toThrow(/backslash/);
    expect(() => webUrl("//evil.example/x", "svc.local")).not.toThrow();
    expect(webUrl("//evil.example/x", "svc.local")).toBe("http://svc.local//evil.example/x");
    expect(() => webUrl("/x", "evil.example/path")).toThrow(/Host/);
    expect(() => webUrl("/x", "a@evil.example")).toThrow(/Host/);
  });
});

describe("HTTP/1.1 server: found in review", () => {
  it("a refused request's body is never served as a request, nor is anything sent after an early answer", async () => {
    const seen: string[] = [];
    const { port } = await serve((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      res.writeHead(401, [], Buffer.from("no"));
    });
    // Missing Host: refused; the smuggled request in its "body" must not reach the handler.
    const smuggled = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    const w = new Wire(port);
    w.send(`POST / HTTP/1.1\r\nContent-Length: ${smuggled.length}\r\n\r\n${smuggled}`);
    expect((await w.next())?.status).toBe(400);
    await w.closedP;
    // An answer before the body arrived: the rest of the body and a request after it are dropped.
    const l = new Wire(port);
    l.send("POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab");
    const a = await l.next();
    expect(a?.status).toBe(401);
    expect(a?.headers.connection).toBe("close");
    l.send("cde" + "DELETE /admin/thing HTTP/1.1\r\nHost: a\r\n\r\n");
    await l.closedP;
    expect(seen).toEqual(["POST /up"]);
  });

  it("lingering after an early answer reads and drops a 10 MB body: the client's upload completes and it reads the answer", async () => {
    const { port } = await serve((_req, res) => res.writeHead(413, [], Buffer.from("too big")));
    const w = new Wire(port);
    const size = 10 * 1024 * 1024;
    w.send(`POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: ${size}\r\n\r\n`);
    const sent = new Promise<boolean>((resolve) => w.socket.write(Buffer.alloc(size, 97), (err) => resolve(!err)));
    expect((await w.next())?.status).toBe(413);
    expect(await sent).toBe(true);
    w.socket.end();
    await w.closedP;
  });

  it("a client that pipelines and never reads: the server stops reading and answering instead of buffering without limit", async () => {
    let served = 0;
    const big = Buffer.alloc(64 * 1024, 120);
    const s = createHttp1Server((_req, res) => {
      served++;
      res.writeHead(200, [], big);
    });
    await s.listen(0, "127.0.0.1");
    servers.push({ close: (ms?: number) => s.close(ms) });
    let serverSide: net.Socket | null = null;
    s.net.on("connection", (sock: net.Socket) => (serverSide = sock));
    const socket = net.connect((s.net.address() as net.AddressInfo).port, "127.0.0.1");
    socket.on("error", () => undefined);
    socket.pause(); // never reads
    await new Promise((r) => socket.once("connect", r));
    const N = 3000;
    const request = GET("/p");
    for (let i = 0; i < N; i++) socket.write(request);
    // Wait until the server stops serving (the count stays put across several turns of the loop).
    let last = -1;
    for (let stable = 0; stable < 20; ) {
      await new Promise((r) => setTimeout(r, 10));
      if (served === last) stable++;
      else {
        stable = 0;
        last = served;
      }
    }
    // 3,000 answers of 64 KiB are 192 MiB. What waits is in the kernel's socket buffers; the server's
    // own buffer holds at most the answer that filled it.
    expect(served).toBeLessThan(N);
    expect((serverSide as net.Socket | null)?.writableLength ?? Infinity).toBeLessThanOrEqual(big.length + 1024);
    // Reading resumes the server.
    let bytes = 0;
    const all = N * big.length;
    const got = new Promise<void>((resolve) => socket.on("data", (d: Buffer) => ((bytes += d.length) >= all ? resolve() : undefined)));
    socket.resume();
    expect(await within(got, 30_000)).not.toBe(TIMED_OUT);
    expect(served).toBe(N);
    socket.destroy();
  });

  it("an Upgrade request's body reaches the handler (curl --http2 -d sends one)", async () => {
    const { port } = await serve(echo);
    const w = new Wire(port);
    w.send("POST /u HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nContent-Length: 5\r\n\r\nhello");
    const a = await w.next();
    expect(JSON.parse(a?.body ?? "{}").body).toBe("hello");
    expect(a?.headers.connection).toBe("close");
  });

  it("a streamed body that overruns or falls short of its Content-Length cuts the connection instead of desynchronising it", async () => {
    const { port } = await serve((req, res) => {
      res.writeHead(200, ["content-length", "2"]);
      if (req.url === "/over") res.write(Buffer.from("hello"));
      else res.write(Buffer.from("h"));
      res.end();
    });
    for (const path of ["/over", "/short"]) {
      const w = new Wire(port);
      w.send(GET(path) + GET("/next"));
      await w.closedP;
      const rest = await w.rest();
      expect(rest, path).not.toMatch(/hello/);
      expect(rest.match(/HTTP\/1\.1 200/g) ?? [], path).toHaveLength(1);
    }
  });

  it("writeHead refuses an interim status (1xx) as an answer", async () => {
    let err: unknown = null;
    const { port } = await serve((_req, res) => {
      try {
        res.writeHead(103, ["link", "</a.css>; rel=preload"], null);
      } catch (e) {
        err = e;
        res.writeHead(200, [], Buffer.from("final"));
      }
    });
    const w = new Wire(port);
    w.send(GET("/"));
    expect((await w.next())?.body).toBe("final");
    expect(err).toBeInstanceOf(InvalidHeaderError);
    w.socket.destroy();
  });

  it("a web Response streamed to a slow client: every byte arrives, with a pause between chunks (no lost 'drain')", async () => {
    const first = Buffer.alloc(1024 * 1024, 97);
    const { port } = await serve((_req, res) => {
      const body = new ReadableStream<Uint8Array>({
        async start(ctl) {
          ctl.enqueue(first);
          await new Promise((r) => setTimeout(r, 100));
          ctl.enqueue(Buffer.from("tail"));
          ctl.close();
        },
      });
      void writeWebResponse(new Response(body, { status: 200 }), res);
    });
    const socket = net.connect(port, "127.0.0.1");
    socket.on("error", () => undefined);
    await new Promise((r) => socket.once("connect", r));
    socket.pause();
    socket.write(GET("/stream"));
    await new Promise((r) => setTimeout(r, 300)); // the server's writes back up meanwhile
    const chunks: Buffer[] = [];
    const done = new Promise<void>((resolve) => socket.on("data", (d: Buffer) => (chunks.push(d), Buffer.concat(chunks).includes("\r\n0\r\n\r\n") ? resolve() : undefined)));
    socket.resume();
    expect(await within(done, 10_000)).not.toBe(TIMED_OUT);
    expect(Buffer.concat(chunks).includes("tail")).toBe(true);
    socket.destroy();
  });

  it("closed connections are garbage-collected: socket, parser and connection are not kept alive", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const s = createHttp1Server((_req, res) => res.writeHead(200, [], Buffer.from("ok")));
    await s.listen(0, "127.0.0.1");
    servers.push({ close: (ms?: number) => s.close(ms) });
    let collected = 0;
    let accepted = 0;
    const registry = new FinalizationRegistry(() => collected++);
    s.net.on("connection", (sock: net.Socket) => {
      accepted++;
      registry.register(sock, 0);
    });
    const p2 = (s.net.address() as net.AddressInfo).port;
    const N = 300;
    for (let i = 0; i < N; i += 50) {
      await Promise.all(
        Array.from(
          { length: 50 },
          () =>
            new Promise<void>((resolve) => {
              const c = net.connect(p2, "127.0.0.1");
              c.on("data", () => c.end());
              c.on("close", () => resolve());
              c.on("error", () => resolve());
              c.write(GET("/"));
            }),
        ),
      );
    }
    for (let i = 0; i < 50 && collected < N; i++) {
      await new Promise((r) => setTimeout(r, 20));
      gc();
    }
    expect(accepted).toBe(N);
    expect(collected).toBeGreaterThanOrEqual(N * 0.95);
  });
});
