#!/usr/bin/env node
// The isthmus CLI launcher: runs the TypeScript sources through tsx (no build step).
import { register } from "tsx/esm/api";

register();
await import(new URL("../src/cli/main.ts", import.meta.url).href);
