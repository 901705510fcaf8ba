import { describe, expect, it } from 'vitest';
import { composeSpec, patternFromRatio } from './compose.js';
import { patternOf } from './spec.js';

describe('patternFromRatio', () => {
  it('spreads attention evenly and never first', () => {
    expect(patternFromRatio({ attention: 1, ssm: 7 }, 8)).toBe('MMMMAMMM');
    expect(patternFromRatio({ attention: 1, ssm: 3 }, 8)).toBe('MMAMMMAM');
    expect(patternFromRatio({ attention: 1, ssm: 1 }, 4)).toBe('MAMA');
    expect(patternFromRatio({ attention: 0, ssm: 1 }, 3)).toBe('MMM');
    expect(patternFromRatio({ attention: 1, ssm: 0 }, 3)).toBe('AAA');
    expect(patternFromRatio({ attention: 2, ssm: 7 }, 9)).toBe('MMMAMMAMM');
    for (const p of [patternFromRatio({ attention: 1, ssm: 2 }, 12), patternFromRatio({ attention: 3, ssm: 5 }, 16)]) expect(p[0]).toBe('M');
  });
  it('rejects a ratio of zeros', () => {
    expect(() => patternFromRatio({ attention: 0, ssm: 0 }, 4)).toThrow(/not both zero/);
  });
});

describe('composeSpec', () => {
  it('builds Nemotron-style patterns with MLP-only layers', () => {
    const spec = composeSpec({ pattern: 'M-*M', hiddenSize: 64, vocabSize: 50 });
    expect(patternOf(spec)).toBe('M-*M');
    expect(spec.blocks[1].mixers).toHaveLength(0);
    expect(spec.blocks[1].channel?.kind).toBe('glu');
    expect(spec.blocks[2].mixers[0].kind).toBe('attention');
  });
  it('names the bad layer of a pattern', () => {
    expect(() => composeSpec({ pattern: 'MMX', hiddenSize: 64, vocabSize: 50 })).toThrow(/layer 2 is 'X'/);
  });
});

describe('composeSpec sliding windows', () => {
  it("gives 'S' layers attention.slidingWindow and per-layer windows from slidingWindows", () => {
    const spec = composeSpec({ pattern: 'mSmSMA', hiddenSize: 64, vocabSize: 50, attention: { numHeads: 2, slidingWindow: 32, kvPageSize: 16 }, slidingWindows: { 3: 8, 5: 100 } });
    expect(patternOf(spec)).toBe('mSmSMA');
    const windows = spec.blocks.map((b) => (b.mixers[0].config as { slidingWindow?: number }).slidingWindow ?? null);
    expect(windows).toEqual([null, 32, null, 8, null, 100]);
    expect((spec.blocks[1].mixers[0].config as { cache?: unknown }).cache).toEqual({ pageSize: 16 });
    const full = composeSpec({ pattern: 'SA', hiddenSize: 64, vocabSize: 50, attention: { numHeads: 2, slidingWindow: 4 }, slidingWindows: { 0: null } });
    expect(full.blocks.map((b) => (b.mixers[0].config as { slidingWindow?: number }).slidingWindow)).toEqual([undefined, undefined]);
  });
  it('refuses an S layer without a window and windows on layers that are not attention', () => {
    expect(() => composeSpec({ pattern: 'MS', hiddenSize: 64, vocabSize: 50 })).toThrow(/layer 1 is 'S'.*attention.slidingWindow/);
    expect(() => composeSpec({ pattern: 'MA', hiddenSize: 64, vocabSize: 50, slidingWindows: { 0: 8 } })).toThrow(/layer 0, which is 'M', not attention/);
    expect(() => composeSpec({ pattern: 'MA', hiddenSize: 64, vocabSize: 50, slidingWindows: { 7: 8 } })).toThrow(/not in the pattern/);
    expect(() => composeSpec({ pattern: 'MA', hiddenSize: 64, vocabSize: 50, slidingWindows: { 1: 2.5 } })).toThrow(/positive integer or null/);
  });
});
