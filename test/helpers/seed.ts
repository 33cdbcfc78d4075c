/**
 * Seeds for tests that use randomness: taken from an environment variable when set (to replay a
 * failure), otherwise drawn once; the test prints it either way.
 */
export function testSeed(variable: string): number {
  const given = process.env[variable];
  if (given !== undefined && given !== '') {
    const n = Number(given);
    if (!Number.isInteger(n)) throw new Error(`${variable} must be an integer, got "${given}"`);
    return n | 0;
  }
  return (Date.now() ^ (process.pid << 16)) | 0;
}

/** mulberry32: a small, fast PRNG; same seed, same sequence. Returns floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
