import { describe, expect, it } from 'vitest';
import type { Tensor } from '@statespace/core';
import { getTestRuntime, randn, randu, relError } from '@statespace/core/testing';
import { type Mamba1Config, Mamba1Mixer, mamba1MixerReference } from './mamba1-mixer.js';

const rt = await getTestRuntime();

const config: Mamba1Config = { hiddenSize: 16, intermediateSize: 32, stateSize: 16, convKernel: 4, timeStepRank: 4, useBias: false, useConvBias: true, normEps: 1e-5 };

const host: Record<string, Float32Array> = {};

function randomWeights(c: Mamba1Config): Record<string, Tensor> {
  const w: Record<string, Tensor> = {};
  let seed = 1;
  for (const spec of Mamba1Mixer.expectedWeights(c)) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const data =
      spec.name === 'A_log' ? randu(n, seed++, 0, 2.8) : spec.name === 'dt_proj.bias' ? randu(n, seed++, -6, -2) : randn(n, seed++, 1 / Math.sqrt(spec.shape[spec.shape.length - 1]));
    host[spec.name] = data;
    w[spec.name] = rt.upload(data, spec.shape);
  }
  return w;
}

/**
 * Peak live bytes a forward over L tokens adds (input upload included), and the output's relative
 * error against the plain CPU reference of the whole mixer on the same input (the state after the
 * last token included: a wrong chunk boundary or a dropped tail shows in both).
 */
async function peakOf(mixer: Mamba1Mixer, L: number): Promise<{ peak: number; error: number; stateError: number }> {
  const state = mixer.createState(1);
  rt.flush();
  const before = rt.memory().liveBytes;
  rt.resetPeak();
  const input = randn(L * config.hiddenSize, L);
  const x = rt.upload(input, [1, L, config.hiddenSize]);
  const y = mixer.forward(x, state);
  const out = await rt.readFloat(y);
  const peak = rt.memory().peakLiveBytes - before;
  const ssm = await rt.readFloat(state.ssm);
  x.dispose();
  y.dispose();
  state.dispose();
  const ref = mamba1MixerReference(config, host, input, 1, L);
  return { peak, error: relError(out, ref.y), stateError: relError(ssm, ref.state.ssm) };
}

describe('long prompts', () => {
  const weights = randomWeights(config);
  it('a one-layer mixer runs 4096 tokens with peak memory linear in the prompt length', async () => {
    const mixer = new Mamba1Mixer(rt, config, weights);
    const a = await peakOf(mixer, 2048);
    const b = await peakOf(mixer, 4096);
    for (const r of [a, b]) {
      expect(r.error).toBeLessThan(1e-5);
      expect(r.stateError).toBeLessThan(1e-5);
    }
    // doubling the prompt doubles the working memory (within the pool's size buckets)
    expect(b.peak / a.peak).toBeGreaterThan(1.8);
    expect(b.peak / a.peak).toBeLessThan(2.2);
    // and it is O(L · (hidden + d_inner)): in, in_proj out, conv out, x_proj out, dt and out per token, with 25% slack
    const { hiddenSize: H, intermediateSize: D, stateSize: N, timeStepRank: R } = config;
    const perToken = 4 * (2 * H + 4 * D + 2 * R + 2 * N);
    expect(b.peak).toBeLessThan(1.25 * perToken * 4096);
  });

  it('with the fast kernels (the time-segmented scan GPUs run) a 2048-token prompt gives the same values', async () => {
    const mixer = new Mamba1Mixer(rt, config, weights);
    const was = rt.fastKernels;
    try {
      const counts: number[] = [];
      for (const fast of [false, true]) {
        rt.fastKernels = fast;
        const d0 = rt.dispatchCount;
        const r = await peakOf(mixer, 2048);
        counts.push(rt.dispatchCount - d0);
        expect(r.error).toBeLessThan(1e-5);
        expect(r.stateError).toBeLessThan(1e-5);
      }
      expect(counts[1] - counts[0]).toBe(1); // the segments' summary pass
    } finally {
      rt.fastKernels = was;
    }
  });

  it('with prefill chunks only the input and output grow with the prompt', async () => {
    const mixer = new Mamba1Mixer(rt, { ...config, prefillChunk: 256 }, weights);
    const a = await peakOf(mixer, 1024);
    const b = await peakOf(mixer, 2048);
    // chunks of 256 carry the state across their boundaries: the same values as one pass
    for (const r of [a, b]) {
      expect(r.error).toBeLessThan(1e-5);
      expect(r.stateError).toBeLessThan(1e-5);
    }
    const { hiddenSize: H, intermediateSize: D, stateSize: N, timeStepRank: R } = config;
    const chunkBytes = 4 * 256 * (2 * H + 4 * D + 2 * R + 2 * N);
    // growth from 1024 to 2048 tokens is the extra input and output rows only
    expect(b.peak - a.peak).toBeLessThan(1.25 * 4 * 1024 * 2 * H);
    expect(b.peak).toBeLessThan(1.25 * (4 * 2048 * 2 * H + chunkBytes));
  });
});
