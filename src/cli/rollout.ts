// isthmus rollout start -f FILE | list | get NAME [--watch] | promote NAME [--full] | pause | resume | abort | retry NAME
import { DocumentError, durationFlag, readDocument } from "./args.ts";
import { ConnectionError } from "./client.ts";
import type { Command, Ctx, Phase, RolloutView } from "./context.ts";
import { TERMINAL_PHASES } from "./context.ts";
import { bar, fit, ms, pad, percent, type Output } from "./output.ts";

const path = (name: string, verb = "") => `/rollouts/${encodeURIComponent(name)}${verb ? `/${verb}` : ""}`;

function stepText(r: RolloutView): string {
  const steps = r.spec.steps;
  if (r.status.step >= steps.length) return `${steps.length}/${steps.length} done`;
  const s = steps[r.status.step];
  const what = !s ? "" : "setWeight" in s ? `setWeight ${s.setWeight}` : s.pause.duration ? `pause ${s.pause.duration}` : "pause until promoted";
  return `${r.status.step + 1}/${steps.length} ${what}`;
}

function stepFraction(r: RolloutView): number {
  if (r.status.phase === "Succeeded") return 1;
  return Math.min(1, r.status.step / Math.max(1, r.spec.steps.length));
}

const backendText = (b: { cluster: string; service: string; port?: number }) => `${b.cluster}/${b.service}${b.port ? `:${b.port}` : ""}`;

function phaseText(o: Output, p: Phase): string {
  return p === "Succeeded" ? o.green(p) : p === "Failed" || p === "Aborted" ? o.red(p) : p === "Paused" ? o.yellow(p) : o.bold(p);
}

function analysisText(r: RolloutView): string {
  const a = r.status.lastAnalysis;
  const spec = r.spec.analysis;
  if (!spec) return "none configured";
  if (!a) return `waiting for the first window (every ${spec.interval})`;
  const c = a.canary;
  const parts = [
    `${a.verdict} at ${a.at.slice(11, 19)}`,
    `success ${percent(c.successRate, 2)}${spec.successRate ? ` (min ${percent(spec.successRate.min, 2)})` : ""}`,
    `p99 ${ms(c.latencyP99Ms)}${spec.latencyP99Ms ? ` (max ${spec.latencyP99Ms.max}ms)` : ""}`,
    `${c.requests} requests`,
    `${r.status.failedChecks}/${spec.threshold} failed checks`,
  ];
  return parts.join(", ");
}

/** The multi-line view of a rollout (get, and each redraw of --watch on a TTY). */
export function rolloutLines(o: Output, r: RolloutView): string[] {
  const s = r.status;
  const w = Math.max(backendText(r.spec.stable).length, backendText(r.spec.canary).length);
  return [
    `${o.bold(`rollout/${r.name}`)}   ${phaseText(o, s.phase)}   route ${r.spec.route}, rule ${r.spec.rule}, revision ${s.routeRevision}`,
    `steps     ${bar(stepFraction(r))} step ${stepText(r)}`,
    `weights   stable ${pad(backendText(r.spec.stable), w)}  ${bar(s.weights.stable / 100)} ${s.weights.stable}%`,
    `          canary ${pad(backendText(r.spec.canary), w)}  ${o.green(bar(s.weights.canary / 100))} ${s.weights.canary}%`,
    `analysis  ${analysisText(r)}`,
    ...(s.lastAnalysis?.reasons.length ? [`reasons   ${s.lastAnalysis.reasons.join("; ")}`] : []),
    `message   ${s.message}`,
  ];
}

/** One line per update, for logs and pipes. */
export function rolloutLine(r: RolloutView): string {
  const s = r.status;
  const a = s.lastAnalysis;
  const analysis = a ? ` analysis ${a.verdict} success ${percent(a.canary.successRate, 2)} p99 ${ms(a.canary.latencyP99Ms)} requests ${a.canary.requests}` : "";
  return `${new Date().toISOString()} rollout/${r.name} ${s.phase} step ${stepText(r)} canary ${s.weights.canary}% stable ${s.weights.stable}%${analysis}: ${s.message}`;
}

const exitFor = (p: Phase): number => (p === "Succeeded" ? 0 : 1);

async function watch(ctx: Ctx, name: string): Promise<number> {
  const intervalMs = durationFlag(ctx.flags, "interval", "1s", { minMs: 100, maxMs: 60_000 });
  const timeoutMs = ctx.flags.timeout ? durationFlag(ctx.flags, "timeout", "0s", { minMs: 1000, maxMs: 86_400_000 }) : 0;
  const o = ctx.out;
  const live = o.tty && !o.json;
  const deadline = timeoutMs > 0 ? Date.now() + timeoutMs : Infinity;
  let drawn = 0;
  let last = "";
  let warned = false;
  const restore = () => live && o.out.write("\x1b[?25h");
  const onSigint = () => {
    restore();
    process.exit(130);
  };
  if (live) {
    o.out.write("\x1b[?25l");
    process.once("SIGINT", onSigint);
  }
  try {
    for (;;) {
      let r: RolloutView;
      try {
        r = await ctx.client.admin<RolloutView>("GET", path(name));
        warned = false;
      } catch (err) {
        // A gateway restarting is not the rollout failing: keep watching, say so once.
        if (!(err instanceof ConnectionError)) throw err;
        if (!warned) o.warn(`${err.message}; retrying`);
        warned = true;
        if (Date.now() > deadline) break;
        await sleep(intervalMs);
        continue;
      }
      const s = r.status;
      const signature = JSON.stringify([s.phase, s.step, s.weights, s.message, s.lastAnalysis?.at, s.failedChecks, s.routeRevision]);
      if (live) {
        // Redraw in place: back to the first line of the previous view, clear below, draw again.
        const footer = TERMINAL_PHASES.has(s.phase) ? `finished: ${s.phase}` : `updated ${new Date().toLocaleTimeString()} (every ${intervalMs / 1000}s; Ctrl-C to stop)`;
        // Lines are cut to the terminal's width: a wrapped line would break the cursor arithmetic.
        const lines = [...rolloutLines(o, r), o.dim(footer)].map((l) => fit(l, o.out.columns ?? 0));
        o.out.write(`${drawn > 0 ? `\x1b[${drawn}A\r\x1b[0J` : ""}${lines.join("\n")}\n`);
        drawn = lines.length;
      } else if (signature !== last) {
        if (o.json) o.out.write(`${JSON.stringify(r)}\n`);
        else o.line(rolloutLine(r));
      }
      last = signature;
      if (TERMINAL_PHASES.has(s.phase)) return exitFor(s.phase);
      if (Date.now() > deadline) break;
      await sleep(intervalMs);
    }
    o.err.write(`error: rollout/${name} did not finish within ${timeoutMs / 1000}s\n`);
    return 1;
  } finally {
    restore();
    process.removeListener("SIGINT", onSigint);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function get(ctx: Ctx): Promise<number> {
  const name = ctx.args[0] as string;
  if (ctx.flags.watch) return watch(ctx, name);
  const r = await ctx.client.admin<RolloutView>("GET", path(name));
  if (ctx.out.json) ctx.out.emit(r);
  else for (const l of rolloutLines(ctx.out, r)) ctx.out.line(l);
  return 0;
}

async function list(ctx: Ctx): Promise<number> {
  const { items } = await ctx.client.admin<{ items: RolloutView[] }>("GET", "/rollouts");
  if (ctx.out.json) {
    ctx.out.emit({ items });
    return 0;
  }
  if (items.length === 0) {
    ctx.out.line("No rollouts. Start one with: isthmus rollout start -f FILE");
    return 0;
  }
  ctx.out.table(
    ["NAME", "ROUTE", "RULE", "PHASE", "STEP", "CANARY", "MESSAGE"],
    items.map((r) => [r.name, r.spec.route, r.spec.rule, phaseText(ctx.out, r.status.phase), stepText(r), `${r.status.weights.canary}%`, r.status.message]),
  );
  return 0;
}

async function start(ctx: Ctx): Promise<number> {
  let doc: unknown;
  try {
    doc = await readDocument(ctx.flags.file, "rollout start");
  } catch (err) {
    if (!(err instanceof DocumentError)) throw err;
    ctx.out.error(err);
    return 1;
  }
  const r = await ctx.client.admin<RolloutView>("POST", "/rollouts", doc);
  if (ctx.flags.watch) {
    if (!ctx.out.json) ctx.out.line(`rollout/${r.name} started`);
    return watch(ctx, r.name);
  }
  if (ctx.out.json) ctx.out.emit(r);
  else {
    ctx.out.line(`rollout/${r.name} started: route ${r.spec.route}, rule ${r.spec.rule}, ${r.spec.steps.length} steps, ${backendText(r.spec.stable)} -> ${backendText(r.spec.canary)}`);
    ctx.out.line(`follow it with: isthmus rollout get ${r.name} --watch`);
  }
  return 0;
}

const PAST: Record<string, string> = { promote: "promoted", pause: "paused", resume: "resumed", abort: "aborted", retry: "restarted" };

function verb(v: "promote" | "pause" | "resume" | "abort" | "retry") {
  return async (ctx: Ctx): Promise<number> => {
    const name = ctx.args[0] as string;
    const body = v === "promote" ? { full: !!ctx.flags.full } : undefined;
    const r = await ctx.client.admin<RolloutView>("POST", path(name, v), body);
    if (ctx.out.json) ctx.out.emit(r);
    else {
      ctx.out.line(`rollout/${name} ${PAST[v]}: ${r.status.phase}, step ${stepText(r)}, canary ${r.status.weights.canary}%`);
      ctx.out.line(`  ${r.status.message}`);
    }
    return 0;
  };
}

export const rolloutCommands: Command[] = [
  { path: ["rollout", "start"], args: [], synopsis: "-f FILE [--watch]", flags: ["file", "watch", "interval", "timeout"], summary: "start a canary rollout from a JSON/YAML file", run: start },
  { path: ["rollout", "list"], args: [], flags: [], summary: "list rollouts", run: list },
  { path: ["rollouts"], args: [], flags: [], summary: "list rollouts", run: list },
  {
    path: ["rollout", "get"],
    args: ["NAME"],
    synopsis: "NAME [--watch]",
    flags: ["watch", "interval", "timeout"],
    summary: "show a rollout; --watch follows it until it finishes (exit 0 Succeeded, 1 Failed/Aborted)",
    help: "--watch redraws in place on a terminal and prints one line per change otherwise (one JSON document\nper change with --json). --interval (default 1s) sets the polling period, --timeout gives up.",
    run: get,
  },
  { path: ["rollout", "promote"], args: ["NAME"], synopsis: "NAME [--full]", flags: ["full"], summary: "move to the next step (--full: straight to 100%)", run: verb("promote") },
  { path: ["rollout", "pause"], args: ["NAME"], flags: [], summary: "hold the rollout where it is", run: verb("pause") },
  { path: ["rollout", "resume"], args: ["NAME"], flags: [], summary: "continue a paused rollout", run: verb("resume") },
  { path: ["rollout", "abort"], args: ["NAME"], flags: [], summary: "send the canary's weight to 0 at once", run: verb("abort") },
  { path: ["rollout", "retry"], args: ["NAME"], flags: [], summary: "start a Failed or Aborted rollout again from step 0", run: verb("retry") },
];
