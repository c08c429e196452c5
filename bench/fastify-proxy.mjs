// The Node peer: @fastify/http-proxy (fastify + @fastify/reply-from on undici) doing plain
// forwarding to one upstream, as its README configures it. No logger: isthmus logs nothing per request either.
import Fastify from "fastify";
import proxy from "@fastify/http-proxy";

const app = Fastify({ logger: false });
await app.register(proxy, { upstream: process.env.UPSTREAM });
await app.listen({ port: Number(process.env.PORT), host: "127.0.0.1" });
process.stdout.write(`${JSON.stringify({ port: app.server.address().port })}\n`);
