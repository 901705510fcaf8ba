import { getTestRuntime } from '@statespace/core/testing';
import { describe, expect, it } from 'vitest';
import { RATIOS, SIZES, benchmarkDecode, compositionOf, patternOfChoice } from './bench.js';

describe('hybrid ratio benchmark', () => {
  it('gives each mix its layer pattern', () => {
    expect(RATIOS.map((r) => patternOfChoice(SIZES[0], r))).toEqual(['MMMMMMMM', 'MMMMAMMM', 'MMAMMMAM', 'AAAAAAAA']);
    expect(patternOfChoice(SIZES[2], RATIOS[1])).toBe('MMMMAMMMMMMM');
    // 64-wide heads: every size must split into whole heads.
    for (const size of SIZES) expect([(2 * size.hiddenSize) % 64, size.hiddenSize % 64]).toEqual([0, 0]);
  });

  it('times decode at growing contexts and reports the state held there', async () => {
    const rt = await getTestRuntime();
    const live = rt.memory().liveBytes;
    const composition = compositionOf(SIZES[0], RATIOS[1]);
    const seen: number[] = [];
    const points = await benchmarkDecode(rt, composition, [9, 4], { steps: 1, onPoint: (p) => seen.push(p.context) });
    expect(points.map((p) => p.context)).toEqual([4, 9]);
    expect(seen).toEqual([4, 9]);
    for (const p of points) {
      expect(p.msPerToken).toBeGreaterThan(0);
      expect(p.stateBytes.ssm).toBeGreaterThan(0);
      expect(p.stateBytes.kv).toBeGreaterThan(0);
    }
    // The model and its session are freed at the end: a second run holds no more than the first left.
    const afterFirst = rt.memory().liveBytes;
    await benchmarkDecode(rt, composition, [4], { steps: 1 });
    expect(rt.memory().liveBytes).toBe(afterFirst);
    expect(afterFirst - live).toBeLessThan(1 << 20);
  });
});
