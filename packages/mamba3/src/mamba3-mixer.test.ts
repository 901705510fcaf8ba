/**
 * Mamba3Mixer on the GPU with the fixtures' layer-0 weights: the prefill output against mamba_ssm's recorded mixer
 * output (fixtures/mamba3, 1e-4) and the CPU reference, then decode steps continuing from the prefill state against
 * the reference continuing from its own; state clone / save / load round trips; bad inputs get typed errors; the
 * projections stored as f16, bf16 and q8 against the reference on the same weights rounded to that dtype.
 */
import { type Runtime, StatespaceError, type Tensor, roundTo } from '@statespace/core';
import { getTestRuntime, maxAbsError, randn } from '@statespace/core/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { MAMBA3_FIXTURE_NAMES, mixerWeights, readMamba3Fixture } from './fixtures.js';
import { Mamba3Mixer } from './mamba3-mixer.js';
import { mamba3MixerReference } from './mamba3-reference.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await getTestRuntime();
});

describe.each(MAMBA3_FIXTURE_NAMES)('Mamba3Mixer, %s layer 0', (name) => {
  const f = readMamba3Fixture(name);
  const host = mixerWeights(f, 0);
  const hostData = Object.fromEntries(Object.entries(host).map(([k, v]) => [k, v.data]));

  it('prefill == mamba_ssm and the reference; 2 decode steps == the reference continued', async () => {
    const weights = Object.fromEntries(Object.entries(host).map(([k, v]) => [k, rt.upload(v.data, v.shape)]));
    // small prompts dispatch in pieces of 16 tokens here, to cover the mixer's loop over dispatches
    const mixer = new Mamba3Mixer(rt, { ...f.config, tokensPerDispatch: 16 }, weights);
    const D = f.json.d_model;
    const u = Float32Array.from(f.ref.layer0_mixer_input.flat());
    const L = u.length / D;
    const state = mixer.createState(1);
    const y = await rt.readFloat(mixer.forward(rt.upload(u, [1, L, D]), state));
    expect(maxAbsError(y, f.ref.layer0_mixer_output.flat())).toBeLessThan(1e-4);
    const ref = mamba3MixerReference(u, hostData, f.config, 1, L);
    expect(maxAbsError(y, ref.out)).toBeLessThan(1e-4);
    let hostState = ref.state;
    const fork = state.clone();
    for (let step = 0; step < 2; step++) {
      const x1 = randn(D, 50 + step);
      const got = await rt.readFloat(mixer.forward(rt.upload(x1, [1, 1, D]), state));
      const want = mamba3MixerReference(x1, hostData, f.config, 1, 1, hostState);
      hostState = want.state;
      expect(maxAbsError(got, want.out)).toBeLessThan(1e-4);
    }
    expect(state.length).toBe(L + 2);
    // the fork still holds the prompt's state: its first step is the reference's first step
    const restored = mixer.createState(1);
    restored.load(await fork.save());
    const x1 = randn(D, 50);
    const again = await rt.readFloat(mixer.forward(rt.upload(x1, [1, 1, D]), restored));
    expect(maxAbsError(again, mamba3MixerReference(x1, hostData, f.config, 1, 1, ref.state).out)).toBeLessThan(1e-4);
  });
});

describe('Mamba3Mixer errors', () => {
  const f = readMamba3Fixture('siso-rope-half');
  it('missing and misshapen weights, bad input shapes: typed errors naming the input', () => {
    const host = mixerWeights(f, 0);
    const weights: Record<string, Tensor> = Object.fromEntries(Object.entries(host).map(([k, v]) => [k, rt.upload(v.data, v.shape)]));
    const { B_bias: _, ...missing } = weights;
    expect(() => new Mamba3Mixer(rt, f.config, missing)).toThrow(/B_bias/);
    const wrong = { ...weights, D: rt.upload(new Float32Array(3), [3]) };
    let code: string | undefined;
    try {
      new Mamba3Mixer(rt, f.config, wrong);
    } catch (e) {
      code = StatespaceError.is(e) ? e.code : String(e);
    }
    expect(code).toBe('SHAPE_MISMATCH');
    expect(() => new Mamba3Mixer(rt, { ...f.config, ropeFraction: 0.25 as 0.5 }, weights)).toThrow(/ropeFraction/);
    const mixer = new Mamba3Mixer(rt, f.config, weights);
    expect(() => mixer.forward(rt.zeros([1, 3, 7]), mixer.createState(1))).toThrow(/expected \[batch, seqlen, hidden=40\]/);
    expect(() => mixer.forward(rt.zeros([2, 3, 40]), mixer.createState(1))).toThrow(/batch/);
  });
});

describe('Mamba3Mixer with 16-bit and 8-bit weights', () => {
  // Each dtype on one fixture (SISO and MIMO both covered): the projections stored as f16 / bf16 / q8 on the GPU,
  // against the reference run on the same weights rounded to that dtype, prefill and a decode step.
  const cases = [['siso-rope-half', 'f16'], ['mimo-r4', 'bf16'], ['mimo-r2-norm', 'q8'], ['siso-rope-full-norm', 'q8']] as const;
  it.each(cases)('%s with %s projections == the reference on the rounded weights', async (name, dtype) => {
    const f = readMamba3Fixture(name);
    const host = mixerWeights(f, 0);
    const f32Only = new Set(Mamba3Mixer.expectedWeights(f.config).filter((s) => s.dtype === 'f32').map((s) => s.name));
    const packed = Object.keys(host).filter((k) => !f32Only.has(k) && host[k].shape.length === 2);
    expect(packed).toContain('in_proj.weight');
    expect(packed).toContain('out_proj.weight');
    const weights = Object.fromEntries(Object.entries(host).map(([k, v]) => [k, rt.upload(v.data, v.shape, packed.includes(k) ? dtype : 'f32')]));
    const rounded = Object.fromEntries(Object.entries(host).map(([k, v]) => [k, packed.includes(k) ? roundTo(v.data, dtype) : v.data]));
    const mixer = new Mamba3Mixer(rt, f.config, weights);
    const D = f.json.d_model;
    const u = Float32Array.from(f.ref.layer0_mixer_input.flat());
    const L = u.length / D;
    const state = mixer.createState(1);
    const ref = mamba3MixerReference(u, rounded, f.config, 1, L);
    expect(maxAbsError(await rt.readFloat(mixer.forward(rt.upload(u, [1, L, D]), state)), ref.out)).toBeLessThan(1e-4);
    const x1 = randn(D, 60);
    const step = mamba3MixerReference(x1, rounded, f.config, 1, 1, ref.state);
    expect(maxAbsError(await rt.readFloat(mixer.forward(rt.upload(x1, [1, 1, D]), state)), step.out)).toBeLessThan(1e-4);
    // and the rounding is real: the f32 weights' output is measurably different
    expect(maxAbsError(ref.out, mamba3MixerReference(u, Object.fromEntries(Object.entries(host).map(([k, v]) => [k, v.data])), f.config, 1, L).out)).toBeGreaterThan(1e-5);
  });
});
