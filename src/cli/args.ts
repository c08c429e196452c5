// Command-line parsing with node:util parseArgs: one table of every flag, each command says which
// of them it takes, so a misplaced flag is a usage error (exit 2) naming the command.
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { parse as parseYaml } from "yaml";
import { parseDuration } from "../config/duration.ts";

export class UsageError extends Error {
  constructor(
    message: string,
    readonly usage?: string,
  ) {
    super(message);
    this.name = "UsageError";
  }
}

/** Every flag any command takes. */
export const OPTIONS = {
  url: { type: "string" },
  token: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  "no-color": { type: "boolean" },
  file: { type: "string", short: "f" },
  "dry-run": { type: "boolean" },
  watch: { type: "boolean", short: "w" },
  full: { type: "boolean" },
  window: { type: "string" },
  interval: { type: "string" },
  timeout: { type: "string" },
  cluster: { type: "string" },
  endpoint: { type: "string" },
  issuer: { type: "string" },
  "trust-domain": { type: "string" },
  "bundle-url": { type: "string" },
} as const;

export type FlagName = keyof typeof OPTIONS;
export type Flags = { [K in FlagName]?: (typeof OPTIONS)[K]["type"] extends "string" ? string : boolean };

/** Flags every command accepts. */
export const GLOBAL_FLAGS: FlagName[] = ["url", "token", "json", "help", "no-color"];

export function parseCommandLine(argv: string[]): { flags: Flags; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
    return { flags: values as Flags, positionals };
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/\. To specify a positional argument.*$/s, ""));
  }
}

/** A duration flag ("5s", "500ms", "1m30s"), within bounds. */
export function durationFlag(flags: Flags, name: FlagName, fallback: string, bounds: { minMs?: number; maxMs?: number } = {}): number {
  const text = (flags[name] as string | undefined) ?? fallback;
  const ms = parseDuration(text);
  if (ms === undefined) throw new UsageError(`--${name} "${text}" is not a duration (e.g. "500ms", "5s", "1m30s")`);
  if (bounds.minMs !== undefined && ms < bounds.minMs) throw new UsageError(`--${name} must be at least ${bounds.minMs} ms`);
  if (bounds.maxMs !== undefined && ms > bounds.maxMs) throw new UsageError(`--${name} must be at most ${bounds.maxMs / 1000} s`);
  return ms;
}

/** Reads a JSON or YAML document from a file, or stdin for "-". */
export async function readDocument(file: string | undefined, what: string): Promise<unknown> {
  if (!file) throw new UsageError(`${what} needs -f FILE (JSON or YAML; "-" reads stdin)`);
  let text: string;
  try {
    text = file === "-" ? await readStdin() : await readFile(file, "utf8");
  } catch (err) {
    throw new DocumentError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return parseYaml(text, { maxAliasCount: 100, uniqueKeys: true }) as unknown;
  } catch (err) {
    const e = err as Error & { linePos?: Array<{ line: number }> };
    const at = e.linePos?.[0] ? ` at line ${e.linePos[0].line}` : "";
    throw new DocumentError(`${file} is not valid JSON or YAML${at}: ${e.message.split("\n")[0]}`);
  }
}

/** A problem with an input document (exit 1, not a usage error). */
export class DocumentError extends Error {
  constructor(
    message: string,
    readonly errors: Array<{ path: string; message: string }> = [],
  ) {
    super(message);
    this.name = "DocumentError";
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString("utf8");
}
