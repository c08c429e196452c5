// Reads an admin request body: JSON only, bounded in size, every problem a 400 with a path.
import { ValidationError } from "../config/errors.ts";
import { readBounded, TooLargeError } from "../util/read-bounded.ts";

export const MAX_ADMIN_BODY_BYTES = 1_048_576;

const fail = (path: string, message: string): never => {
  throw new ValidationError([{ path, message }]);
};

/**
 * The body is larger than allowed. The rest of it is not read, so the connection cannot carry another
 * request: the answer says `Connection: close` (a client that reuses it would otherwise fail later).
 */
export class PayloadTooLargeError extends ValidationError {
  constructor(limit: number) {
    super([{ path: "body", message: `must be at most ${limit} bytes` }]);
    this.name = "PayloadTooLargeError";
  }
}

export async function readJsonBody(req: Request, limit = MAX_ADMIN_BODY_BYTES): Promise<unknown> {
  const type = (req.headers.get("content-type") ?? "").toLowerCase();
  const [mime, ...params] = type.split(";").map((s) => s.trim());
  if (mime !== "application/json" && !/^application\/[a-z0-9.+-]+\+json$/.test(mime ?? ""))
    fail("headers.content-type", `must be application/json, not "${type || "(none)"}"`);
  const charset = params.find((p) => p.startsWith("charset="));
  if (charset && !/^charset="?utf-8"?$/.test(charset)) fail("headers.content-type", "charset must be utf-8");
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > limit) throw new PayloadTooLargeError(limit);
  if (!req.body) fail("body", "is required");
  let bytes: Uint8Array;
  try {
    bytes = await readBounded(req.body as ReadableStream<Uint8Array>, limit);
  } catch (err) {
    if (err instanceof TooLargeError) throw new PayloadTooLargeError(limit);
    return fail("body", "could not be read");
  }
  let text = "";
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    fail("body", "is not valid UTF-8");
  }
  if (text.trim() === "") fail("body", "is required");
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    return fail("body", `is not valid JSON: ${(err as Error).message}`);
  }
}
