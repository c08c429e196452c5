import type { z } from "zod";

/** One problem with an input document, located by a field path such as `rules[0].backendRefs[1].weight`. */
export interface FieldError {
  path: string;
  message: string;
}

/** Renders a path of keys and indices the way users write it: `rules[0].matches[2].path.value`. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else {
      const name = String(key);
      const plain = /^[A-Za-z_$][\w$-]*$/.test(name);
      out += !plain ? `[${JSON.stringify(name)}]` : out === "" ? name : `.${name}`;
    }
  }
  return out;
}

/** Flattens zod issues into field errors; every problem is reported, not just the first. */
export function zodToFieldErrors(error: z.ZodError, prefix: ReadonlyArray<PropertyKey> = []): FieldError[] {
  const out: FieldError[] = [];
  for (const issue of error.issues) {
    // An unknown field is reported at its own path ("rules[0].backendRefs[0].wieght"), not its parent's.
    const keys = issue.code === "unrecognized_keys" ? issue.keys : [undefined];
    for (const key of keys) {
      const path = formatPath(key === undefined ? [...prefix, ...issue.path] : [...prefix, ...issue.path, key]);
      out.push({ path: path === "" ? "body" : path, message: key === undefined ? issue.message : `unknown field "${key}"` });
    }
  }
  return out;
}

/** Thrown where a caller must see field errors (admin API and declarative config turn it into a 400). */
export class ValidationError extends Error {
  constructor(readonly errors: FieldError[]) {
    super(errors.map((e) => `${e.path}: ${e.message}`).join("; "));
    this.name = "ValidationError";
  }
}
