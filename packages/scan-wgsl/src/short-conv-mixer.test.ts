import { describe, expect, it } from 'vitest';
import { getTestRuntime, randn, relError } from '@statespace/core/testing';
import { ShortConvMixer, shortConvMixerReference } from './short-conv-mixer.js';

const rt = await getTestRuntime();

describe('ShortConvMixer (LFM2)', () => {
  for (const [H, k, bias, batch, L] of [[24, 3, true, 1, 37], [37, 4, false, 2, 9], [8, 2, true, 1, 1]] as const) {
    it(`H=${H} k=${k} bias=${bias} b=${batch} L=${L}: prefill and then steps match the CPU reference`, async () => {
      const config = { hiddenSize: H, convKernel: k, bias };
      const host: Record<string, Float32Array> = {};
      const weights: Record<string, ReturnType<typeof rt.upload>> = {};
      ShortConvMixer.expectedWeights(config).forEach((spec, i) => {
        host[spec.name] = randn(spec.shape.reduce((a, b) => a * b, 1), 100 + i, 0.3);
        weights[spec.name] = rt.upload(host[spec.name], spec.shape);
      });
      const mixer = new ShortConvMixer(rt, config, weights);
      const x = randn(batch * L * H, 7);
      const state = mixer.createState(batch);
      const y = mixer.forward(rt.upload(x, [batch, L, H]), state);
      const ref = shortConvMixerReference(config, host, x, batch, L);
      expect(relError((await rt.read(y)) as Float32Array, ref.y)).toBeLessThan(1e-5);
      expect(relError((await rt.read(state.conv)) as Float32Array, ref.conv)).toBeLessThan(1e-5);
      expect(state.length).toBe(L);
      expect(state.memory()).toEqual({ ssm: 0, conv: batch * H * (k - 1) * 4, kv: 0 });
      // two decode steps continue from the prompt's conv state
      const x1 = randn(batch * 2 * H, 8);
      const copy = state.clone();
      const perToken: Float32Array[] = [];
      for (let t = 0; t < 2; t++) {
        const step = new Float32Array(batch * H);
        for (let b = 0; b < batch; b++) step.set(x1.subarray((b * 2 + t) * H, (b * 2 + t + 1) * H), b * H);
        perToken.push((await rt.read(mixer.forward(rt.upload(step, [batch, 1, H]), copy))) as Float32Array);
      }
      const both = shortConvMixerReference(config, host, x1, batch, 2, ref.conv);
      for (let t = 0; t < 2; t++) {
        const want = new Float32Array(batch * H);
        for (let b = 0; b < batch; b++) want.set(both.y.subarray((b * 2 + t) * H, (b * 2 + t + 1) * H), b * H);
        expect(relError(perToken[t], want)).toBeLessThan(1e-5);
      }
      expect(relError((await rt.read(copy.conv)) as Float32Array, both.conv)).toBeLessThan(1e-5);
    });
  }
});
