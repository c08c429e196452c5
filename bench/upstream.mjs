// Benchmark upstream: the fastest plain node:http answer, so the proxy under test is what limits.
import { createServer } from "node:http";
const body = Buffer.from(JSON.stringify({ ok: true, service: "bench" }));
const server = createServer((req, res) => {
  req.resume();
  res.writeHead(200, { "content-type": "application/json", "content-length": body.length });
  res.end(body);
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
