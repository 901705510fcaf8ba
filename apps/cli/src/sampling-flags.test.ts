/** The sampling flags: ranges are checked before any model loads, and the seed is random unless given. */
import { StatespaceError } from '@statespace/core';
import { describe, expect, it } from 'vitest';
import { samplingFlags } from './sampling-flags.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return StatespaceError.is(error) ? `${error.code}: ${error.message}` : String(error);
  }
  return undefined;
}

describe('samplingFlags', () => {
  it('without --seed every call draws another seed, a uint32', () => {
    const seeds = Array.from({ length: 8 }, () => samplingFlags({ temperature: '0.8' }, 16).seed);
    expect(new Set(seeds).size).toBeGreaterThan(1);
    for (const s of seeds) expect(Number.isInteger(s) && s >= 0 && s < 2 ** 32).toBe(true);
  });
  it('--seed N is kept, and temperature sampling is marked as sampled', () => {
    const choice = samplingFlags({ temperature: '0.8', 'top-p': '0.9', 'top-k': '40', seed: '7', 'max-new-tokens': '5' }, 16);
    expect(choice).toMatchObject({ seed: 7, sampled: true, greedy: false, temperature: 0.8, topP: 0.9, topK: 40, maxNewTokens: 5 });
    expect(samplingFlags({}, 16)).toMatchObject({ greedy: true, sampled: false, maxNewTokens: 16 });
  });
  it.each([
    [{ 'top-p': '5' }, /INVALID_ARGUMENT: --top-p must be in \(0, 1\].*got 5/],
    [{ 'top-p': '0' }, /INVALID_ARGUMENT: --top-p/],
    [{ temperature: '-1' }, /INVALID_ARGUMENT: --temperature must be at least 0/],
    [{ 'top-k': '2.5' }, /INVALID_ARGUMENT: --top-k/],
    [{ 'repetition-penalty': '0' }, /INVALID_ARGUMENT: --repetition-penalty/],
    [{ seed: '4294967296' }, /INVALID_ARGUMENT: --seed/],
    [{ seed: '-3' }, /INVALID_ARGUMENT: --seed/],
    [{ 'top-p': 'much' }, /CLI_USAGE: --top-p: "much" is not a number/],
  ])('%o is rejected', (flags, message) => {
    expect(codeOf(() => samplingFlags(flags, 16))).toMatch(message);
  });
});
