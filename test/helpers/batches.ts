/**
 * Runs `work` over `items` with at most `width` at once (a bounded fan-out, so a test opening
 * thousands of sessions never opens them all in one burst); results in the order of `items`.
 */
export async function inBatches<T, R>(
  items: readonly T[],
  width: number,
  work: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await work(items[i], i);
      }
    }),
  );
  return out;
}

/** The indexes 0 … count − 1, for {@link inBatches} over a count. */
export function indexes(count: number): number[] {
  return Array.from({ length: count }, (_, i) => i);
}
