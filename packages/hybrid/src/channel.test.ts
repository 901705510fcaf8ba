import { describe, expect, it } from 'vitest';
import { type Tensor, gluReference, matmulReference, usesTiledMatmul } from '@statespace/core';
import { asGpuAdapter, getTestRuntime, randn, recordKernels, worstRowError } from '@statespace/core/testing';
import { GluMlp } from './channel.js';

const rt = await getTestRuntime();

describe('GluMlp prefill', () => {
  // On GPUs a prompt's gate, up and act·mul are one tiled product (gluMatmul); software adapters take
  // the plain products. Both must give down(act(x·Wgᵀ) · (x·Wuᵀ)).
  for (const [fused, act] of [[false, 'silu'], [true, 'gelu_tanh']] as const) {
    it(`${fused ? 'one gate_up weight' : 'separate gate and up'}, ${act}: a 40-token prompt equals the CPU composition, into poisoned buffers`, async () => {
      const [L, E, I] = [40, 48, 72];
      const x = randn(L * E, 1);
      const wg = randn(I * E, 2, 0.3);
      const wu = randn(I * E, 3, 0.3);
      const wd = randn(E * I, 4, 0.3);
      const gateUp = new Float32Array([...wg, ...wu]);
      const weights: Record<string, Tensor> = fused
        ? { 'gate_up_proj.weight': rt.upload(gateUp, [2 * I, E]), 'down_proj.weight': rt.upload(wd, [E, I]) }
        : { 'gate_proj.weight': rt.upload(wg, [I, E]), 'up_proj.weight': rt.upload(wu, [I, E]), 'down_proj.weight': rt.upload(wd, [E, I]) };
      const names = fused ? { gateUp: 'gate_up_proj.weight', down: 'down_proj.weight' } : { gate: 'gate_proj.weight', up: 'up_proj.weight', down: 'down_proj.weight' };
      const mlp = new GluMlp(rt, weights, names, act);
      const h = gluReference(matmulReference(x, gateUp, L, 2 * I, E), I, act);
      const ref = matmulReference(h, wd, L, E, I);
      const xT = rt.upload(x, [1, L, E]);
      const prefill = async () => {
        const { result: y, kernels: ran } = recordKernels(rt, () => mlp.forward(xT));
        expect(worstRowError((await rt.read(y)) as Float32Array, ref, L, E)).toBeLessThan(1e-5);
        if (usesTiledMatmul(rt, L)) expect(ran[0]).toBe('matmul_tiled_rb/4'); // x, gate, up, h
        else expect(ran.some((n) => n.startsWith('glu_') || n.startsWith('binary_silu_mul') || n.startsWith('unary_'))).toBe(true);
        y.dispose();
      };
      await prefill();
      // software adapters: also as a GPU adapter would make the call, so that SwiftShader runs the fused product in the layer
      if (rt.info.isSoftware) await asGpuAdapter(rt, prefill);
    });
  }
});
