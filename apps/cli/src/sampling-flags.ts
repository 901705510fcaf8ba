/**
 * The sampling flags of generate, run, chat and start, validated once: a value outside its range is an
 * INVALID_ARGUMENT naming the flag, and without `--seed` every run draws a fresh seed (reported, so
 * that `--seed N` repeats it).
 */
import { randomInt } from 'node:crypto';
import type { GenerateOptions } from '@statespace/hybrid';
import { StatespaceError } from '@statespace/core';
import { parseCount, parseNumber } from './args.js';
import type { GenerateFlags } from './commands.js';

/** What {@link samplingFlags} makes of the flags: the options for `Session.generate`. */
export interface SamplingChoice extends GenerateOptions {
  maxNewTokens: number;
  /** The seed in use: `--seed`, or a random one when it is absent. */
  seed: number;
  /** False when the run is greedy and the seed plays no part. */
  sampled: boolean;
}

function invalid(flag: string, value: string, expected: string): never {
  throw new StatespaceError('INVALID_ARGUMENT', `${flag} must be ${expected}, got ${value}`);
}

/**
 * Sampling options from the command line flags.
 *
 * @example
 * ```ts
 * samplingFlags({ temperature: '0.8', 'top-p': '0.95' }, 128); // { temperature: 0.8, topP: 0.95, seed: <random>, sampled: true, ... }
 * samplingFlags({ 'top-p': '5' }, 128); // throws INVALID_ARGUMENT: --top-p must be in (0, 1], got 5
 * ```
 */
export function samplingFlags(flags: GenerateFlags, defaultMaxNewTokens: number): SamplingChoice {
  const temperature = parseNumber(flags.temperature, '--temperature');
  if (temperature !== undefined && temperature < 0) invalid('--temperature', flags.temperature!, 'at least 0 (0 is greedy)');
  const topK = parseNumber(flags['top-k'], '--top-k');
  if (topK !== undefined && (!Number.isInteger(topK) || topK < 0)) invalid('--top-k', flags['top-k']!, 'a whole number of at least 0 (0 keeps every token)');
  const topP = parseNumber(flags['top-p'], '--top-p');
  if (topP !== undefined && !(topP > 0 && topP <= 1)) invalid('--top-p', flags['top-p']!, 'in (0, 1] (1 keeps every token)');
  const repetitionPenalty = parseNumber(flags['repetition-penalty'], '--repetition-penalty');
  if (repetitionPenalty !== undefined && !(repetitionPenalty > 0)) invalid('--repetition-penalty', flags['repetition-penalty']!, 'above 0 (1 is off)');
  const seedFlag = parseNumber(flags.seed, '--seed');
  if (seedFlag !== undefined && !(Number.isInteger(seedFlag) && seedFlag >= 0 && seedFlag < 2 ** 32)) invalid('--seed', flags.seed!, 'a whole number in [0, 4294967295]');
  const greedy = !!flags.greedy || !temperature;
  return {
    maxNewTokens: parseCount(flags['max-new-tokens'], '--max-new-tokens', defaultMaxNewTokens),
    greedy,
    temperature,
    topK,
    topP,
    repetitionPenalty,
    seed: seedFlag ?? randomInt(2 ** 32),
    sampled: !greedy,
    ignoreEos: flags['ignore-eos'],
  };
}
