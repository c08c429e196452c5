// Reference point, not a product: the least a Node proxy can do. node:http in, undici's pool out,
// headers passed through, the body piped back; no routing, identity, metrics or timeouts beyond
// undici's own. Whatever isthmus does costs on top of this; the gap to nginx below this figure is
// what Node itself costs on this machine.
import { createServer } from "node:http";
import { Agent } from "undici";

const upstream = process.env.UPSTREAM;
const agent = new Agent({ connections: 256 });
const HOP = new Set(["connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection", "host"]);
const server = createServer((req, res) => {
  const headers = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) if (!HOP.has(raw[i].toLowerCase())) headers.push(raw[i], raw[i + 1]);
  agent.request({ origin: upstream, path: req.url, method: req.method, headers, body: req.method === "GET" || req.method === "HEAD" ? null : req }).then(
    (r) => {
      res.writeHead(r.statusCode, r.headers);
      r.body.pipe(res);
    },
    () => {
      res.writeHead(502).end();
    },
  );
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT), "127.0.0.1", () => process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`));
