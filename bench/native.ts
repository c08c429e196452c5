// The bench's small C programs (bench/*.c), compiled with the machine's C compiler into dist/bench/.
import { spawnSync } from "node:child_process";
import { mkdirSync, statSync } from "node:fs";
import { join } from "node:path";

/** Whether a C compiler is there to build them (the bench installs nothing). */
export function hasCompiler(): boolean {
  return spawnSync("cc", ["--version"], { stdio: "ignore" }).error === undefined;
}

/** Compiles bench/<name>.c into dist/bench/<name> when the binary is missing or older than its source. */
export function buildC(name: string): string {
  const source = join(import.meta.dirname, `${name}.c`);
  const binary = join(import.meta.dirname, "..", "dist", "bench", name);
  const built = statSync(binary, { throwIfNoEntry: false });
  if (built && built.mtimeMs >= statSync(source).mtimeMs) return binary;
  mkdirSync(join(binary, ".."), { recursive: true });
  const r = spawnSync("cc", ["-O2", "-Wall", "-o", binary, source], { stdio: "inherit" });
  if (r.status !== 0) throw new Error(`cc could not build ${source}`);
  return binary;
}
