/**
 * A seeded uniform generator in [0, 1) (mulberry32): the same sequence for the same seed, in every
 * package that draws initial weights or samples on the host.
 *
 * @example
 * ```ts
 * const random = seededRandom(1);
 * random(); // 0.627..., the same for the same seed
 * ```
 */
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
