// Reads ISTHMUS_CONFIG from disk (Node and Lambda): every problem reported with its path.
import { readFile } from "node:fs/promises";
import { parseConfigText, type DeclarativeConfig } from "../config/declarative.ts";
import { ValidationError } from "../config/errors.ts";
import { errorMessage } from "../util/log.ts";

export async function loadConfigFile(path: string): Promise<DeclarativeConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new Error(`ISTHMUS_CONFIG: cannot read ${path}: ${errorMessage(err)}`, { cause: err });
  }
  try {
    return parseConfigText(text);
  } catch (err) {
    if (err instanceof ValidationError) throw new Error(`ISTHMUS_CONFIG ${path} is invalid:\n${err.errors.map((e) => `  ${e.path}: ${e.message}`).join("\n")}`, { cause: err });
    throw err;
  }
}
