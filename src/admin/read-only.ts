import { ValidationError } from "../config/errors.ts";

/**
 * Lets a client PUT back what it GOT: the read-only fields of a representation (name, revision,
 * updatedAt) are dropped before validation, and a `name` that disagrees with the URL is an error.
 */
export function withoutReadOnly(body: unknown, name: string, readOnly: string[]): unknown {
  if (!body || typeof body !== "object" || Array.isArray(body)) return body;
  const copy: Record<string, unknown> = { ...(body as Record<string, unknown>) };
  if ("name" in copy) {
    if (copy.name !== name) throw new ValidationError([{ path: "name", message: `must match the name in the URL ("${name}")` }]);
    delete copy.name;
  }
  for (const k of readOnly) delete copy[k];
  return copy;
}
