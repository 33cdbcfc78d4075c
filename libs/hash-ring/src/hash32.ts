/**
 * MurmurHash3 x86 32-bit (Austin Appleby; seed 0) of the UTF-8 bytes of a string.
 *
 * Chosen over FNV-1a (even with a final avalanche): on labels that differ only in trailing
 * digits (`replica#17`, `replica#18`: the vnode labels, and session ids) FNV-1a's collisions
 * and clustering are measurably off from a random function's, while murmur3 mixes every
 * 4-byte block and ends with a full avalanche (`fmix32`).
 *
 * No allocation: ASCII strings (ids, session ids) are read straight from the string, 4 chars per
 * block; anything else is encoded once into a shared scratch buffer (a lone surrogate becomes
 * U+FFFD, as TextEncoder encodes it).
 */
export function hash32(input: string): number {
  const len = input.length;
  let h = 0;
  let i = 0;
  for (; i + 4 <= len; i += 4) {
    const a = input.charCodeAt(i);
    const b = input.charCodeAt(i + 1);
    const c = input.charCodeAt(i + 2);
    const d = input.charCodeAt(i + 3);
    if ((a | b | c | d) >= 0x80) return hashBytes(utf8(input));
    h = mixBlock(h, a | (b << 8) | (c << 16) | (d << 24));
  }
  if (i < len) {
    // The last 1-3 bytes, little-endian, as murmur3's tail.
    let k = 0;
    for (let t = len - 1; t >= i; t--) {
      const c = input.charCodeAt(t);
      if (c >= 0x80) return hashBytes(utf8(input));
      k = (k << 8) | c;
    }
    h ^= mixK(k);
  }
  return finish(h, len);
}

const encoder = new TextEncoder();
let scratch = new Uint8Array(1024);

/** The string's UTF-8 bytes in the shared scratch buffer: returns their count. */
function utf8(input: string): number {
  // UTF-16 → UTF-8 takes at most 3 bytes per code unit.
  if (scratch.length < input.length * 3) scratch = new Uint8Array(input.length * 3);
  return encoder.encodeInto(input, scratch).written;
}

function hashBytes(len: number): number {
  const b = scratch;
  let h = 0;
  let i = 0;
  for (; i + 4 <= len; i += 4) h = mixBlock(h, b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24));
  if (i < len) {
    let k = 0;
    for (let t = len - 1; t >= i; t--) k = (k << 8) | b[t];
    h ^= mixK(k);
  }
  return finish(h, len);
}

function mixK(k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  return Math.imul(k, 0x1b873593);
}

function mixBlock(h: number, k: number): number {
  h ^= mixK(k);
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** Length, then fmix32: every input bit affects every output bit. */
function finish(h: number, len: number): number {
  h ^= len;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
