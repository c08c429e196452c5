// A small upstream standing for one cluster's ingress: answers every request with JSON saying
// which cluster served it and what it received (so the split and header hygiene are visible).
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface EchoServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

export function startEchoServer(cluster: string, port = 0, host = "127.0.0.1"): Promise<EchoServer> {
  const server: Server = createServer((req, res) => {
    let size = 0;
    req.on("data", (c: Buffer) => (size += c.length));
    req.on("end", () => {
      if (req.url === "/ready") {
        res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
        return;
      }
      const body = JSON.stringify({ cluster, method: req.method, path: req.url, host: req.headers.host, bodyBytes: size, headers: req.headers }, null, 2);
      res.writeHead(200, { "content-type": "application/json", "x-served-by": cluster }).end(`${body}\n`);
    });
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      const p = (server.address() as AddressInfo).port;
      resolve({
        url: `http://${host}:${p}`,
        port: p,
        close: () => new Promise<void>((r) => server.close(() => r())),
      });
      server.closeIdleConnections();
    });
  });
}
