// Reads a whole body into memory, never more than `limit` bytes: every place that buffers a body
// (admin requests, bundles and JWKS, retryable request bodies) goes through here.
export class TooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`larger than ${limit} bytes`);
    this.name = "TooLargeError";
  }
}

/** Web stream or async iterable (a Node request) to bytes; throws TooLargeError past `limit`, cancelling the source. */
export async function readBounded(body: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>, limit: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const iterable: AsyncIterable<Uint8Array> = body instanceof ReadableStream ? iterate(body) : body;
  for await (const chunk of iterable) {
    size += chunk.byteLength;
    if (size > limit) throw new TooLargeError(limit);
    chunks.push(chunk);
  }
  const out = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}

async function* iterate(stream: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  let finished = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        finished = true;
        return;
      }
      yield value;
    }
  } finally {
    // Stopped early (too large, or the consumer gave up): release the source.
    if (!finished) await reader.cancel().catch(() => undefined);
  }
}
