import { getTestRuntime } from '@statespace/core/testing';
import { describe, expect, it } from 'vitest';
import { type BenchPoint, type BenchRow, DEFAULT_STEPS, RATIOS, SIZES, benchVerdict, benchmarkDecode, compositionOf, patternOfChoice } from './bench.js';

describe('hybrid ratio benchmark', () => {
  it('gives each mix its layer pattern', () => {
    expect(RATIOS.map((r) => patternOfChoice(SIZES[0], r))).toEqual(['MMMMMMMM', 'MMMMAMMM', 'MMAMMMAM', 'AAAAAAAA', 'LLLLLLLL', 'LLLLALLL']);
    expect(patternOfChoice(SIZES[2], RATIOS[1])).toBe('MMMMAMMMMMMM');
    expect(patternOfChoice(SIZES[2], RATIOS[5])).toBe('LLLLALLLLLLL');
    // 64-wide heads: every size must split into whole heads.
    for (const size of SIZES) expect([(2 * size.hiddenSize) % 64, size.hiddenSize % 64]).toEqual([0, 0]);
  });

  it('times decode at growing contexts and reports the state held there', async () => {
    const rt = await getTestRuntime();
    const live = rt.memory().liveBytes;
    const composition = compositionOf(SIZES[0], RATIOS[1]);
    const seen: number[] = [];
    const points = await benchmarkDecode(rt, composition, [9, 4], { steps: 2, onPoint: (p) => seen.push(p.context) });
    expect(points.map((p) => p.context)).toEqual([4, 9]);
    expect(seen).toEqual([4, 9]);
    expect(points.map((p) => p.steps)).toEqual([2, 2]);
    // MMMMAMMM at d=64: 7 Mamba-2 layers of 2 heads x 64 x state 16, conv over 128 + 2·16 channels
    // (kernel 4 keeps 3 columns); one attention layer of 1 KV head x 64 holds one 256-token page of K and V.
    const state = { ssm: 7 * 2 * 64 * 16 * 4, conv: 7 * (128 + 2 * 16) * 3 * 4, kv: 2 * 256 * 64 * 4 };
    for (const p of points) {
      expect(p.msPerToken).toBeGreaterThan(0);
      // The spread: the median lies between the fastest and the slowest step.
      expect(p.msMin).toBeLessThanOrEqual(p.msPerToken);
      expect(p.msMax).toBeGreaterThanOrEqual(p.msPerToken);
      expect(p.stateBytes).toEqual(state);
    }
    // Context 9 was reached by prefilling 9 - 2 steps - 1 untimed step = 6 tokens: a rate was measured.
    expect(points[1].prefillTokensPerSecond).toBeGreaterThan(0);
    // The model and its session are freed at the end: a second run holds no more than the first left.
    const afterFirst = rt.memory().liveBytes;
    await benchmarkDecode(rt, composition, [4], { steps: 1 });
    expect(rt.memory().liveBytes).toBe(afterFirst);
    expect(afterFirst - live).toBeLessThan(1 << 20);
  });

  it('runs the S4D mixes: 1:7 (attention:S4D) holds 7 complex S4D states and one KV page, no conv window', async () => {
    const rt = await getTestRuntime();
    const ratio = RATIOS.find((r) => r.id === 's4d-1:7')!;
    const points = await benchmarkDecode(rt, compositionOf(SIZES[0], ratio), [4, 9], { steps: 2 });
    expect(points.map((p) => p.context)).toEqual([4, 9]);
    // LLLLALLL at d=64, d_state 16: 7 S4D layers of 64 channels x 8 complex modes (2 f32 each).
    for (const p of points) {
      expect(p.msPerToken).toBeGreaterThan(0);
      expect(p.stateBytes).toEqual({ ssm: 7 * 64 * 8 * 2 * 4, conv: 0, kv: 2 * 256 * 64 * 4 });
    }
  });

  it('times more than a handful of steps by default', () => {
    expect(DEFAULT_STEPS).toBeGreaterThanOrEqual(16);
  });
});

describe('benchVerdict', () => {
  const point = (context: number, ms: number, min: number, max: number): BenchPoint => ({ context, msPerToken: ms, msMin: min, msMax: max, steps: 16, prefillTokensPerSecond: NaN, stateBytes: { ssm: 0, conv: 0, kv: 0 } });
  const row = (pattern: string, points: BenchPoint[]): BenchRow => ({ label: pattern, pattern, points });

  it('claims that attention pays for context only when its growth exceeds the spread', () => {
    const grows = [row('MMMMMMMM', [point(16, 2, 1.9, 2.2), point(128, 2.1, 1.9, 2.3)]), row('AAAAAAAA', [point(16, 2, 1.9, 2.1), point(128, 3, 2.9, 3.2)])];
    expect(benchVerdict(grows)).toContain('attention layers pay for every token of context');
  });

  it('says the figures are noise when they are (the tiny model on a software adapter)', () => {
    // Pure attention "faster" at the longer context, within a wide spread: what the tiny size gave.
    const noise = [row('MMMMMMMM', [point(16, 2.4, 1.5, 4), point(128, 2.0, 1.6, 3.5)]), row('AAAAAAAA', [point(16, 2.3, 1.6, 4.2), point(128, 2.2, 1.7, 3.9)])];
    const text = benchVerdict(noise);
    expect(text).toContain('within that spread');
    expect(text).not.toContain('attention layers pay');
    // A growth smaller than the spread is noise too.
    expect(benchVerdict([row('MMMMAMMM', [point(16, 2, 1, 4), point(128, 3, 1, 5)])])).toContain('within that spread');
    // One context length cannot show growth.
    expect(benchVerdict([row('AAAAAAAA', [point(16, 2, 1.9, 2.1)])])).toContain('within that spread');
  });

  it('makes no attention claim for Mamba-2 alone', () => {
    expect(benchVerdict([row('MMMMMMMM', [point(16, 2, 1.9, 2.1), point(128, 2, 1.9, 2.1)])])).toBe('Each figure is the median of the timed steps; the range under it runs from the fastest to the slowest step. Lower is faster.');
  });
});
