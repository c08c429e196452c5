// MurmurHash3 (x86, 32-bit) over UTF-8 bytes: the same key hashes the same on Node, Workers and
// Lambda, so a sticky key lands on the same backend in every instance and runtime.
const encoder = new TextEncoder();

export function murmur3(text: string, seed = 0): number {
  // An ASCII string (sticky keys nearly always are) is its own UTF-8: hashed as is, without allocating.
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return murmur3OfBytes(byteString(encoder.encode(text)), seed);
  return murmur3OfBytes(text, seed);
}

/** The bytes as a string of one char per byte (codes 0-255); only non-ASCII keys pay for it. */
function byteString(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

/** MurmurHash3_x86_32 over `bytes`, a string whose char codes are the bytes. */
function murmur3OfBytes(bytes: string, seed: number): number {
  const len = bytes.length;
  let h = seed >>> 0;
  const blocks = len & ~3;
  for (let i = 0; i < blocks; i += 4) {
    const k = bytes.charCodeAt(i) | (bytes.charCodeAt(i + 1) << 8) | (bytes.charCodeAt(i + 2) << 16) | (bytes.charCodeAt(i + 3) << 24);
    h = mixBlock(h, k);
  }
  const tail = len & 3;
  if (tail > 0) {
    let k = 0;
    if (tail === 3) k ^= bytes.charCodeAt(blocks + 2) << 16;
    if (tail >= 2) k ^= bytes.charCodeAt(blocks + 1) << 8;
    k ^= bytes.charCodeAt(blocks);
    h ^= scramble(k);
  }
  return fmix(h, len);
}

function scramble(k: number): number {
  const x = Math.imul(k, 0xcc9e2d51);
  return Math.imul((x << 15) | (x >>> 17), 0x1b873593);
}

function mixBlock(hash: number, k: number): number {
  const h = hash ^ scramble(k);
  return (Math.imul((h << 13) | (h >>> 19), 5) + 0xe6546b64) | 0;
}

function fmix(hash: number, len: number): number {
  let h = hash ^ len;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
