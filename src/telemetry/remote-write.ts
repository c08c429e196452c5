// Prometheus remote write 1.0: a protobuf WriteRequest, snappy block-compressed, POSTed.
// The protobuf is small enough to encode by hand (no codegen, runs on every runtime).
import { compress } from "snappyjs";
import type { Sample } from "./exposition.ts";

class ProtoWriter {
  private buf = new Uint8Array(1024);
  private len = 0;
  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }
  varint(v: number): void {
    this.ensure(10);
    let n = BigInt.asUintN(64, BigInt(Math.trunc(v)));
    while (n >= 0x80n) {
      this.buf[this.len++] = Number(n & 0x7fn) | 0x80;
      n >>= 7n;
    }
    this.buf[this.len++] = Number(n);
  }
  tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }
  bytes(field: number, data: Uint8Array): void {
    this.tag(field, 2);
    this.varint(data.length);
    this.ensure(data.length);
    this.buf.set(data, this.len);
    this.len += data.length;
  }
  string(field: number, s: string): void {
    this.bytes(field, new TextEncoder().encode(s));
  }
  double(field: number, v: number): void {
    this.tag(field, 1);
    this.ensure(8);
    new DataView(this.buf.buffer, this.buf.byteOffset + this.len, 8).setFloat64(0, v, true);
    this.len += 8;
  }
  int64(field: number, v: number): void {
    this.tag(field, 0);
    this.varint(v);
  }
  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/** Encodes samples as a WriteRequest; labels are sorted by name, with __name__ first as Prometheus requires. */
export function encodeWriteRequest(samples: Sample[], timestampMs: number, externalLabels: Record<string, string> = {}): Uint8Array {
  const req = new ProtoWriter();
  for (const s of samples) {
    const labels: Array<[string, string]> = Object.entries({ ...externalLabels, ...s.labels, __name__: s.name }).filter(([, v]) => v !== "");
    labels.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const ts = new ProtoWriter();
    for (const [name, value] of labels) {
      const l = new ProtoWriter();
      l.string(1, name);
      l.string(2, value);
      ts.bytes(1, l.finish());
    }
    const sample = new ProtoWriter();
    sample.double(1, s.value);
    sample.int64(2, timestampMs);
    ts.bytes(2, sample.finish());
    req.bytes(1, ts.finish());
  }
  return req.finish();
}

export function snappy(data: Uint8Array): Uint8Array {
  return compress(data);
}

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

/** One POST; throws with the status and the receiver's message on a non-2xx answer. */
export async function postRemoteWrite(fetchFn: FetchLike, url: string, body: Uint8Array, timeoutMs: number): Promise<void> {
  const res = await fetchFn(url, {
    method: "POST",
    body: body as unknown as BodyInit,
    signal: AbortSignal.timeout(timeoutMs),
    headers: {
      "content-type": "application/x-protobuf",
      "content-encoding": "snappy",
      "x-prometheus-remote-write-version": "0.1.0",
      "user-agent": "isthmus",
    },
  });
  const text = await res.text().catch(() => "");
  if (res.status < 200 || res.status >= 300) throw new Error(`remote write to ${url}: HTTP ${res.status} ${text.slice(0, 200)}`);
}
