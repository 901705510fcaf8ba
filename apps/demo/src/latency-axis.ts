/**
 * The playground chart's x scale, kept apart from uPlot so it can be tested
 * without a DOM: the axis spans exactly the measured context lengths (uPlot's
 * own log range rounds up to the next power of ten, so data ending at 128 drew
 * an axis to 1,000).
 */

/** How the x axis of the latency chart is drawn. */
export interface LatencyAxis {
  /** uPlot `distr`: 1 linear, 3 logarithmic. */
  distr: 1 | 3;
  /** Log base when logarithmic (context lengths are usually powers of two). */
  log: 2 | 10;
  /** First and last value shown: the smallest and the largest context measured. */
  range: [number, number];
}

/**
 * The x axis for these context lengths: logarithmic (base 2) when they span a
 * factor of 8 or more over at least three points, linear otherwise; the range
 * is the data's own, padded only when there is a single point.
 *
 * @example
 * ```ts
 * latencyAxis([16, 64, 128]); // { distr: 3, log: 2, range: [16, 128] }
 * ```
 */
export function latencyAxis(contexts: readonly number[]): LatencyAxis {
  const xs = contexts.filter((x) => Number.isFinite(x) && x > 0);
  if (xs.length === 0) return { distr: 1, log: 10, range: [0, 1] };
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  if (lo === hi) return { distr: 1, log: 10, range: [Math.max(0, lo - 1), hi + 1] };
  const logarithmic = new Set(xs).size > 2 && hi / lo >= 8;
  return logarithmic ? { distr: 3, log: 2, range: [lo, hi] } : { distr: 1, log: 10, range: [lo, hi] };
}
