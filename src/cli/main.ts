// Entry point of the isthmus CLI (bin/isthmus.mjs loads it): runs the command line and exits.
import { run } from "./run.ts";

const code = await run(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env }).catch((err: unknown) => {
  process.stderr.write(`isthmus: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return 1;
});
// Let stdout drain (it may be a pipe), then exit without waiting for idle keep-alive sockets.
process.stdout.write("", () => process.exit(code));
