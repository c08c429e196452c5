// The isthmus CLI: finds the command, checks its arguments and flags, runs it against the admin
// API (ISTHMUS_URL, ISTHMUS_ADMIN_TOKEN; --url and --token override) and maps the outcome to the
// exit code: 0 ok, 1 a failed check or operation (API errors included), 2 a usage error.
import { applyCommands } from "./apply.ts";
import { GLOBAL_FLAGS, parseCommandLine, UsageError, type FlagName } from "./args.ts";
import { checkCommands } from "./check.ts";
import { Client } from "./client.ts";
import { clusterCommands } from "./clusters.ts";
import type { Command } from "./context.ts";
import { Output, type Writer } from "./output.ts";
import { rolloutCommands } from "./rollout.ts";
import { routeCommands } from "./routes.ts";
import { statCommands } from "./stat.ts";

export const COMMANDS: Command[] = [...checkCommands, ...clusterCommands, ...routeCommands, ...statCommands, ...applyCommands, ...rolloutCommands];

const FLAG_HELP: Record<FlagName, string> = {
  url: "--url URL            gateway base URL (default $ISTHMUS_URL)",
  token: "--token TOKEN        admin bearer token (default $ISTHMUS_ADMIN_TOKEN)",
  json: "--json               machine-readable output (JSON, no colours)",
  help: "-h, --help           this help",
  "no-color": "--no-color           no ANSI colours (also NO_COLOR=1)",
  file: "-f, --file FILE      JSON or YAML document (\"-\" for stdin)",
  "dry-run": "--dry-run            show the diff against the gateway, write nothing",
  watch: "-w, --watch          follow until the rollout finishes",
  full: "--full               promote straight to 100%",
  window: "--window DURATION    sampling window (default 5s)",
  interval: "--interval DURATION  polling period for --watch (default 1s)",
  timeout: "--timeout DURATION   give up watching after this long",
  cluster: "--cluster NAME       only this backend cluster",
  endpoint: "--endpoint URL       where the gateway sends the cluster's traffic",
  issuer: "--issuer URL         the cluster's Kubernetes service-account issuer (OIDC)",
  "trust-domain": "--trust-domain TD    SPIFFE trust domain of the cluster's workloads",
  "bundle-url": "--bundle-url URL     SPIFFE bundle endpoint of the cluster",
};

const shortLine = (c: Command) => `isthmus ${[...c.path, ...c.args.map((a) => (a.endsWith("?") ? `[${a.slice(0, -1)}]` : a))].join(" ")}`;
const usageLine = (c: Command) => `isthmus ${[...c.path, ...(c.synopsis ? [c.synopsis] : c.args.map((a) => (a.endsWith("?") ? `[${a.slice(0, -1)}]` : a)))].join(" ")}`;

export function helpText(command?: Command): string {
  if (command) {
    const flags = [...command.flags, ...GLOBAL_FLAGS].map((f) => `  ${FLAG_HELP[f]}`);
    return [`${command.summary}\n`, `usage: ${usageLine(command)} [flags]`, ...(command.help ? ["", command.help] : []), "", "flags:", ...flags, ""].join("\n");
  }
  const width = Math.max(...COMMANDS.map((c) => shortLine(c).length));
  return [
    "isthmus: operate an isthmus multi-cluster gateway through its admin API\n",
    "usage: isthmus COMMAND [ARGS] [flags]\n",
    "commands:",
    ...COMMANDS.map((c) => `  ${shortLine(c).padEnd(width)}  ${c.summary}`),
    "",
    "global flags:",
    ...GLOBAL_FLAGS.map((f) => `  ${FLAG_HELP[f]}`),
    "",
    'run "isthmus COMMAND --help" for a command\'s flags',
    "environment: ISTHMUS_URL (e.g. https://gateway.example.com), ISTHMUS_ADMIN_TOKEN",
    "exit codes: 0 ok, 1 a failed check or operation, 2 a usage error",
    "",
  ].join("\n");
}

/** The command whose words start the positionals (longest match), and the remaining arguments. */
function findCommand(positionals: string[]): { command: Command; args: string[] } | null {
  const matches = COMMANDS.filter((c) => c.path.every((w, i) => positionals[i] === w)).sort((a, b) => b.path.length - a.path.length);
  const command = matches[0];
  return command ? { command, args: positionals.slice(command.path.length) } : null;
}

export interface RunIO {
  stdout: Writer;
  stderr: Writer;
  env: Record<string, string | undefined>;
}

export async function run(argv: string[], io: RunIO): Promise<number> {
  try {
    const { flags, positionals } = parseCommandLine(argv);
    const json = !!flags.json;
    if (positionals.length === 0 || positionals[0] === "help") {
      const target = positionals.length > 1 ? findCommand(positionals.slice(1))?.command : undefined;
      io[positionals.length === 0 && !flags.help ? "stderr" : "stdout"].write(helpText(target));
      return positionals.length === 0 && !flags.help ? 2 : 0;
    }
    const found = findCommand(positionals);
    if (!found) {
      const family = COMMANDS.filter((c) => c.path[0] === positionals[0]);
      throw new UsageError(
        family.length > 0 ? `unknown command "${positionals.join(" ")}"; did you mean one of: ${family.map((c) => c.path.join(" ")).join(", ")}?` : `unknown command "${positionals[0]}"`,
      );
    }
    const { command, args } = found;
    if (flags.help) {
      io.stdout.write(helpText(command));
      return 0;
    }
    const allowed = new Set<FlagName>([...GLOBAL_FLAGS, ...command.flags]);
    for (const f of Object.keys(flags) as FlagName[]) if (!allowed.has(f)) throw new UsageError(`"${command.path.join(" ")}" does not take --${f}`, usageLine(command));
    const required = command.args.filter((a) => !a.endsWith("?")).length;
    if (args.length < required) throw new UsageError(`"${command.path.join(" ")}" needs ${command.args.slice(args.length).filter((a) => !a.endsWith("?")).join(" ")}`, usageLine(command));
    if (args.length > command.args.length) throw new UsageError(`unexpected argument "${args[command.args.length]}"`, usageLine(command));

    const url = flags.url ?? io.env.ISTHMUS_URL;
    if (!url) throw new UsageError("no gateway URL: set ISTHMUS_URL or pass --url (e.g. --url https://gateway.example.com)");
    if (!/^https?:\/\/[^/]/.test(url)) throw new UsageError(`the gateway URL must be http(s)://host[:port], not "${url}"`);
    const client = new Client({ url, token: flags.token ?? io.env.ISTHMUS_ADMIN_TOKEN });
    const out = new Output(io.stdout, io.stderr, json, { noColor: !!flags["no-color"] || !!io.env.NO_COLOR || io.env.TERM === "dumb" });
    try {
      return await command.run({ client, out, flags, args });
    } catch (err) {
      if (err instanceof UsageError) throw err;
      out.error(err);
      return 1;
    }
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr.write(`error: ${err.message}\n${err.usage ? `usage: ${err.usage}\n` : ""}run "isthmus --help" for the commands\n`);
    return 2;
  }
}
