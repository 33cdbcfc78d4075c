/**
 * 32-bit FNV-1a over the UTF-8 bytes of a string, followed by murmur3's `fmix32` finaliser.
 *
 * FNV-1a alone is fast but mixes its last bytes poorly: labels that differ only in a trailing
 * digit (`replica#17`, `replica#18`) land close together, which clusters virtual nodes and skews
 * key shares. The finaliser is a full avalanche (every input bit flips each output bit with
 * probability ~1/2), so such labels spread uniformly over the ring.
 *
 * No allocation: the string is encoded to UTF-8 inline (a lone surrogate is hashed as U+FFFD,
 * as TextEncoder would encode it).
 */
export function hash32(input: string): number {
  let h = 0x811c9dc5;
  const len = input.length;
  for (let i = 0; i < len; i++) {
    let c = input.charCodeAt(i);
    if (c < 0x80) {
      h = Math.imul(h ^ c, 0x01000193);
      continue;
    }
    if (c < 0x800) {
      h = Math.imul(h ^ (0xc0 | (c >> 6)), 0x01000193);
      h = Math.imul(h ^ (0x80 | (c & 0x3f)), 0x01000193);
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = i + 1 < len ? input.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
        i++;
        h = Math.imul(h ^ (0xf0 | (c >> 18)), 0x01000193);
        h = Math.imul(h ^ (0x80 | ((c >> 12) & 0x3f)), 0x01000193);
        h = Math.imul(h ^ (0x80 | ((c >> 6) & 0x3f)), 0x01000193);
        h = Math.imul(h ^ (0x80 | (c & 0x3f)), 0x01000193);
        continue;
      }
      c = 0xfffd;
    }
    h = Math.imul(h ^ (0xe0 | (c >> 12)), 0x01000193);
    h = Math.imul(h ^ (0x80 | ((c >> 6) & 0x3f)), 0x01000193);
    h = Math.imul(h ^ (0x80 | (c & 0x3f)), 0x01000193);
  }
  // murmur3 fmix32
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
