// Bounded JSON fetch for trust bundles and JWKS: a timeout, a size cap, no redirects followed.
import { readBounded, TooLargeError } from "../util/read-bounded.ts";
export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export const MAX_BUNDLE_BYTES = 256 * 1024;

export async function fetchJson(fetchFn: FetchLike, url: string, timeoutMs = 2000): Promise<unknown> {
  const res = await fetchFn(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: "application/json" }, redirect: "manual" });
  if (res.status !== 200) {
    await res.body?.cancel().catch(() => undefined);
    throw new Error(`GET ${url}: HTTP ${res.status}`);
  }
  const declared = Number(res.headers.get("content-length") ?? 0);
  if (declared > MAX_BUNDLE_BYTES) {
    await res.body?.cancel().catch(() => undefined);
    throw new Error(`GET ${url}: body larger than ${MAX_BUNDLE_BYTES} bytes`);
  }
  if (!res.body) throw new Error(`GET ${url}: empty body`);
  let bytes: Uint8Array;
  try {
    bytes = await readBounded(res.body, MAX_BUNDLE_BYTES);
  } catch (err) {
    if (err instanceof TooLargeError) throw new Error(`GET ${url}: body larger than ${MAX_BUNDLE_BYTES} bytes`, { cause: err });
    throw err;
  }
  const text = new TextDecoder().decode(bytes);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new Error(`GET ${url}: not JSON`);
  }
}
