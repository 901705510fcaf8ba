/**
 * Choosing the next token from logits on the host: greedy, temperature,
 * top-k, top-p (nucleus) and repetition penalty (as transformers'
 * RepetitionPenaltyLogitsProcessor: divide positive logits, multiply negative ones),
 * with a seeded generator so a run can be repeated exactly.
 */

import { type TokenSamplingParams, sampleTokenReference, seededRandom } from '@statespace/core';

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

/** A seeded uniform generator in [0, 1) (mulberry32; core's, re-exported where sampling lives). */
export { seededRandom };

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
 * Picks one token id from a row of logits on the host, by the GPU sampler's rules
 * (`sampleTokenReference` of @statespace/core): repetition penalty, then greedy or
 * temperature with top-k and top-p (ties at a cut kept together, as transformers' warpers),
 * the token drawn in vocabulary order with one uniform number from `random`.
 * {@link Session.generate} does the same on the GPU, drawing `samplerUniform(seed, i, row)`.
 *
 * @example
 * ```ts
 * const [logits] = await session.prefill([3, 1, 4]);
 * const next = sampleToken(logits, { temperature: 0.8, topP: 0.95 }, [3, 1, 4], seededRandom(1));
 * ```
 */
export function sampleToken(logits: Float32Array, options: SamplingOptions, history: readonly number[], random: () => number): number {
  const params = samplerSettings(options);
  return sampleTokenReference(logits, params, new Set(history), params.temperature > 0 ? random() : 0).token;
}

/**
 * The GPU sampler's settings for {@link SamplingOptions} (the seed aside): greedy is temperature 0,
 * unset top-k 0, top-p 1, penalty 1.
 *
 * @example
 * ```ts
 * samplerSettings({ temperature: 0.8, topP: 0.95 }); // { temperature: 0.8, topK: 0, topP: 0.95, penalty: 1 }
 * ```
 */
export function samplerSettings(options: SamplingOptions): Omit<TokenSamplingParams, 'seed'> {
  return { temperature: options.greedy ? 0 : (options.temperature ?? 0), topK: options.topK ?? 0, topP: options.topP ?? 1, penalty: options.repetitionPenalty ?? 1 };
}
