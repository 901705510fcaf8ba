import { describe, expect, it } from 'vitest';
import { checkLayerWeights, checkMixerInput } from './layer.js';
import { getTestRuntime } from './testing.js';

const rt = await getTestRuntime();

describe('layer input and weight checks', () => {
  const specs = [{ name: 'in_proj.weight', shape: [6, 4] }, { name: 'A_log', shape: [3], dtype: 'f32' as const }];
  const good = { 'in_proj.weight': rt.zeros([6, 4], 'f16'), A_log: rt.zeros([3]) };
  const code = (f: () => void) => {
    try {
      f();
    } catch (e) {
      return (e as { code?: string }).code;
    }
    return 'none';
  };
  it('checkLayerWeights takes matching weights and names what is wrong otherwise', () => {
    expect(code(() => checkLayerWeights('L', specs, good))).toBe('none');
    expect(() => checkLayerWeights('L', specs, { A_log: good.A_log })).toThrow(/L: weight in_proj.weight \[6,4\] is missing/);
    expect(code(() => checkLayerWeights('L', specs, { ...good, A_log: rt.zeros([4]) }))).toBe('SHAPE_MISMATCH');
    expect(code(() => checkLayerWeights('L', specs, { ...good, 'in_proj.weight': rt.zeros([6, 4, 1]) }))).toBe('SHAPE_MISMATCH');
    // A spec's own dtype is exact; the rest take what `accepts` takes (default: any float weight type).
    expect(code(() => checkLayerWeights('L', specs, { ...good, A_log: rt.zeros([3], 'f16') }))).toBe('DTYPE_MISMATCH');
    expect(code(() => checkLayerWeights('L', specs, { ...good, 'in_proj.weight': rt.zeros([6, 4], 'i32') }))).toBe('DTYPE_MISMATCH');
    expect(code(() => checkLayerWeights('L', specs, good, (d) => d === 'f32'))).toBe('DTYPE_MISMATCH');
  });
  it('checkMixerInput returns (batch, seqlen) and refuses a wrong rank, width, dtype or batch', () => {
    expect(checkMixerInput('M', rt.zeros([2, 5, 8]), 8, 2)).toEqual([2, 5]);
    expect(code(() => checkMixerInput('M', rt.zeros([2, 8]), 8, 2))).toBe('SHAPE_MISMATCH');
    expect(code(() => checkMixerInput('M', rt.zeros([2, 5, 7]), 8, 2))).toBe('SHAPE_MISMATCH');
    expect(code(() => checkMixerInput('M', rt.zeros([2, 5, 8], 'i32'), 8, 2))).toBe('DTYPE_MISMATCH');
    expect(code(() => checkMixerInput('M', rt.zeros([2, 5, 8]), 8, 3))).toBe('SHAPE_MISMATCH');
  });
});
