// Bounded JSON fetch for trust bundles and JWKS: a timeout, a size cap, no redirects followed.
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
  const reader = res.body?.getReader();
  if (!reader) throw new Error(`GET ${url}: empty body`);
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BUNDLE_BYTES) {
      await reader.cancel().catch(() => undefined);
      throw new Error(`GET ${url}: body larger than ${MAX_BUNDLE_BYTES} bytes`);
    }
    chunks.push(value);
  }
  const text = new TextDecoder().decode(concat(chunks, size));
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new Error(`GET ${url}: not JSON`);
  }
}

function concat(chunks: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}
