// Terminal output: plain tables, bars, colours only on a TTY (never with --json or NO_COLOR),
// and the printing of API errors with their field paths.
import { ApiError, ConnectionError, type ProblemBody } from "./client.ts";

export interface Writer {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export class Output {
  readonly color: boolean;
  private readonly noColor: boolean;

  constructor(
    readonly out: Writer,
    readonly err: Writer,
    readonly json: boolean,
    opts: { noColor?: boolean } = {},
  ) {
    this.noColor = !!opts.noColor;
    this.color = !json && !!out.isTTY && !this.noColor;
  }

  get tty(): boolean {
    return !!this.out.isTTY;
  }

  line(text = ""): void {
    this.out.write(`${text}\n`);
  }

  /** Machine output: one JSON document (pretty) on stdout. */
  emit(value: unknown): void {
    this.out.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  warn(text: string): void {
    this.err.write(`${this.paint("yellow", "warning:", this.errColor)} ${text}\n`);
  }

  private get errColor(): boolean {
    return !this.json && !!this.err.isTTY && !this.noColor;
  }

  paint(style: Style, text: string, on = this.color): string {
    return on ? `${STYLES[style]}${text}\x1b[0m` : text;
  }
  green = (t: string): string => this.paint("green", t);
  red = (t: string): string => this.paint("red", t);
  yellow = (t: string): string => this.paint("yellow", t);
  bold = (t: string): string => this.paint("bold", t);
  dim = (t: string): string => this.paint("dim", t);

  table(headers: string[], rows: string[][]): void {
    for (const l of table(headers, rows)) this.line(l);
  }

  /** An API or connection error, with field paths; machine form with --json. */
  error(err: unknown, prefix?: string): void {
    if (this.json) {
      this.emit({ error: errorJson(err, prefix) });
      return;
    }
    for (const l of describeError(err, prefix)) this.err.write(`${l}\n`);
  }
}

type Style = "green" | "red" | "yellow" | "bold" | "dim";
const STYLES: Record<Style, string> = { green: "\x1b[32m", red: "\x1b[31m", yellow: "\x1b[33m", bold: "\x1b[1m", dim: "\x1b[2m" };

/** Visible width of a string, ignoring ANSI escapes. */
export function visibleLength(s: string): number {
  // eslint-disable-next-line no-control-regex
  return [...s.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "")].length;
}

/** The line cut to `columns` visible characters (colours dropped when it has to be cut); 0 = no limit. */
export function fit(line: string, columns: number): string {
  if (columns <= 0 || visibleLength(line) < columns) return line;
  // eslint-disable-next-line no-control-regex
  return [...line.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "")].slice(0, columns - 1).join("");
}

export function pad(s: string, width: number): string {
  return s + " ".repeat(Math.max(0, width - visibleLength(s)));
}

/** Left-aligned columns separated by three spaces, like kubectl and linkerd. */
export function table(headers: string[], rows: string[][]): string[] {
  const widths = headers.map((h, i) => Math.max(visibleLength(h), ...rows.map((r) => visibleLength(r[i] ?? ""))));
  const fmt = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : pad(c, widths[i] ?? 0)))
      .join("   ")
      .trimEnd();
  return [fmt(headers), ...rows.map(fmt)];
}

/** A bar of `width` cells, `fraction` of them full: `██████████████████░░`. */
export function bar(fraction: number, width = 20): string {
  const f = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
  const full = Math.round(f * width);
  return "█".repeat(full) + "░".repeat(width - full);
}

export function percent(fraction: number | null | undefined, digits = 0): string {
  if (fraction === null || fraction === undefined || !Number.isFinite(fraction)) return "-";
  return `${(fraction * 100).toFixed(digits)}%`;
}

export function ms(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "-";
  return value >= 100 ? `${Math.round(value)}ms` : `${Number(value.toFixed(1))}ms`;
}

export function errorJson(err: unknown, prefix?: string): Record<string, unknown> {
  if (err instanceof ApiError) return { ...err.problem, request: `${err.method} ${err.path}`, ...(prefix ? { resource: prefix } : {}) };
  if (err instanceof ConnectionError) return { title: "Gateway unreachable", url: err.url, detail: err.reason };
  return { title: "Error", detail: err instanceof Error ? err.message : String(err) };
}

/** Human lines for an error: the problem's title, status and detail, then one line per field path. */
export function describeError(err: unknown, prefix?: string): string[] {
  const where = prefix ? `${prefix}: ` : "";
  if (err instanceof ConnectionError) return [`error: ${where}cannot reach the gateway at ${err.url}: ${err.reason}`];
  if (!(err instanceof ApiError)) return [`error: ${where}${err instanceof Error ? err.message : String(err)}`];
  const p: ProblemBody = err.problem;
  const lines = [`error: ${where}${p.title ?? "request failed"} (HTTP ${p.status}, ${err.method} ${err.path})${p.detail ? `: ${p.detail}` : ""}`];
  for (const e of p.errors ?? []) lines.push(`  ${e.path}: ${e.message}`);
  if (typeof p.currentRevision === "number") lines.push(`  current revision: ${p.currentRevision}`);
  if (Array.isArray(p.routes)) lines.push(`  routes: ${p.routes.join(", ")}`);
  if (typeof p.phase === "string") lines.push(`  phase: ${p.phase}`);
  if (typeof p.hint === "string") lines.push(`  hint: ${p.hint}`);
  return lines;
}
