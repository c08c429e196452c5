// The live dashboard at /_isthmus/ui (admin token required).
import type { Hono } from "hono";
import type { AdminDeps } from "../admin/deps.ts";

export function registerUiRoutes(_app: Hono, _deps: AdminDeps): void {}
