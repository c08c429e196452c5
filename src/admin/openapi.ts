// GET /_isthmus/v1/openapi.json: the OpenAPI 3.1 document of the admin API (to be generated from
// the same zod schemas the server validates with).
import type { Hono } from "hono";
import type { AdminDeps, AdminEnv } from "./deps.ts";

export function registerOpenApiRoute(app: Hono<AdminEnv>, _deps: AdminDeps): void {
  app.get("/openapi.json", (c) => c.json({ openapi: "3.1.0", info: { title: "isthmus admin API", version: "1" }, paths: {} }));
}
