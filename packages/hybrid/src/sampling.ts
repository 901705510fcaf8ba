/**
 * Choosing the next token from logits on the host: greedy, temperature,
 * top-k, top-p (nucleus) and repetition penalty (as transformers'
 * RepetitionPenaltyLogitsProcessor: divide positive logits, multiply negative ones),
 * with a seeded generator so a run can be repeated exactly.
 */

/** Sampling settings of {@link Session.generate}. */
export interface SamplingOptions {
  /** Always take the most likely token (default when temperature is 0 or unset). */
  greedy?: boolean;
  /** Divides the logits before sampling; 0 or unset means greedy. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 or unset: all). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (nucleus; 1 or unset: all). */
  topP?: number;
  /** Penalises tokens already in the history (1 or unset: off; 1.1 to 1.3 is usual). */
  repetitionPenalty?: number;
  /** Seed of the sampler's random generator. */
  seed?: number;
}

/**
 * A seeded uniform generator in [0, 1) (mulberry32).
 *
 * @example
 * ```ts
 * const random = seededRandom(1);
 * random(); // the same sequence for the same seed
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

/**
 * Index of the largest value (first on ties), as torch.argmax.
 *
 * @example
 * ```ts
 * argmaxHost([0.1, 2, 2, -1]); // 1
 * ```
 */
export function argmaxHost(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/**
 * Picks one token id from a row of logits: repetition penalty, then greedy or
 * temperature with top-k and top-p. What {@link Session.generate} uses on the host.
 *
 * @example
 * ```ts
 * const [logits] = await session.prefill([3, 1, 4]);
 * const next = sampleToken(logits, { temperature: 0.8, topP: 0.95 }, [3, 1, 4], seededRandom(1));
 * ```
 */
export function sampleToken(logits: Float32Array, options: SamplingOptions, history: readonly number[], random: () => number): number {
  const x = Float32Array.from(logits);
  const penalty = options.repetitionPenalty ?? 1;
  if (penalty !== 1) {
    for (const id of new Set(history)) if (id >= 0 && id < x.length) x[id] = x[id] > 0 ? x[id] / penalty : x[id] * penalty;
  }
  const temperature = options.temperature ?? 0;
  if (options.greedy || temperature <= 0) return argmaxHost(x);
  let order = Array.from(x.keys()).sort((a, b) => x[b] - x[a] || a - b);
  if (options.topK && options.topK > 0) order = order.slice(0, options.topK);
  const m = x[order[0]];
  let probs = order.map((i) => Math.exp((x[i] - m) / temperature));
  let sum = probs.reduce((a, b) => a + b, 0);
  probs = probs.map((p) => p / sum);
  if (options.topP !== undefined && options.topP < 1) {
    let acc = 0;
    let keep = 0;
    while (keep < probs.length && (keep === 0 || acc < options.topP)) acc += probs[keep++];
    order = order.slice(0, keep);
    probs = probs.slice(0, keep);
    sum = probs.reduce((a, b) => a + b, 0);
    probs = probs.map((p) => p / sum);
  }
  let r = random();
  for (let i = 0; i < order.length; i++) {
    r -= probs[i];
    if (r <= 0) return order[i];
  }
  return order[order.length - 1];
}
