// Reference point, not a product: the least a Node proxy can do below node:http and undici. `net`
// sockets and Node's own llhttp parser on both sides (the binding isthmus's HTTP/1.1 server uses),
// a keep-alive upstream connection per client connection's turn, headers passed through, the
// upstream's Content-Length body relayed; no routing, identity, metrics, timeouts, chunked bodies
// or error handling worth the name. It answers "how far can a Node process go on this machine at
// all": the gap between it and nginx is Node's and the kernel's, whatever a proxy does on top.
// As isthmus (and node:http) do, the parser reads each socket's handle itself: no Buffer and no
// 'data' event per read. With 'data' events instead, it cost about 3 µs more per request (18.5-22
// against 16-18 by hand on the 2026-11-27 machine, 21 against 18 in the bench), close to isthmus-plain's 24.
import net from "node:net";
import { HTTPParser, methods } from "_http_common";

const upstream = new URL(process.env.UPSTREAM);
const idle = [];

/** The parser reads the socket's handle (as node:http's server does); a parse error closes the socket. */
function consume(sock, parser) {
  const handle = sock._handle;
  handle._consumed = true;
  parser.consume(handle);
  parser[HTTPParser.kOnExecute] = (r) => {
    if (typeof r !== "number") sock.destroy();
  };
  // Flowing, though no data passes through the stream: only then is the peer's FIN told as 'end'.
  sock.resume();
}

function connectUpstream(then) {
  const sock = net.connect(Number(upstream.port), upstream.hostname, () => {
    consume(sock, p);
    then(sock);
  });
  sock.setNoDelay(true);
  const p = new HTTPParser();
  p.initialize(HTTPParser.RESPONSE, {}, 0, HTTPParser.kLenientNone);
  let head = "";
  let body = [];
  p[HTTPParser.kOnHeadersComplete] = (_maj, _min, headers, _m, _u, status, message) => {
    let h = `HTTP/1.1 ${status} ${message}\r\n`;
    for (let i = 0; i < headers.length; i += 2) if (headers[i].toLowerCase() !== "connection") h += `${headers[i]}: ${headers[i + 1]}\r\n`;
    head = `${h}\r\n`;
    body = [];
    return 0;
  };
  p[HTTPParser.kOnBody] = (b) => body.push(b);
  p[HTTPParser.kOnMessageComplete] = () => {
    const client = sock.client;
    sock.client = null;
    idle.push(sock);
    client.cork();
    client.write(head, "latin1");
    for (const b of body) client.write(b);
    client.uncork();
  };
  sock.on("error", () => sock.client?.destroy());
  sock.on("close", () => {
    const i = idle.indexOf(sock);
    if (i >= 0) idle.splice(i, 1);
    // Mid-exchange (a parse error destroys the socket without an 'error'): the client is not left waiting.
    sock.client?.destroy();
  });
}

function send(client, request) {
  const ready = (u) => {
    u.client = client;
    u.write(request, "latin1");
  };
  const sock = idle.pop();
  if (sock) ready(sock);
  else connectUpstream(ready);
}

const server = net.createServer({ noDelay: true }, (client) => {
  const p = new HTTPParser();
  p.initialize(HTTPParser.REQUEST, {}, 0, HTTPParser.kLenientNone);
  p[HTTPParser.kOnHeadersComplete] = (_maj, _min, headers, method, url) => {
    let h = `${methods[method]} ${url} HTTP/1.1\r\n`;
    for (let i = 0; i < headers.length; i += 2) if (headers[i].toLowerCase() !== "connection") h += `${headers[i]}: ${headers[i + 1]}\r\n`;
    send(client, `${h}\r\n`);
    return 0;
  };
  p[HTTPParser.kOnBody] = () => {};
  p[HTTPParser.kOnMessageComplete] = () => {};
  consume(client, p);
  client.on("error", () => {});
});
server.listen(Number(process.env.PORT), "127.0.0.1", () => process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`));
