import { StatespaceError, type Runtime, type Tensor } from '@statespace/core';
import { getTestRuntime, randn, randu, relError } from '@statespace/core/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { createS4DConvKernel, s4dConv } from './s4d-conv.js';
import { s4dImagInit } from './s4d-init.js';
import { createS4DVandermondeKernel, s4dKernel } from './s4d-kernel.js';
import type { S4DParams } from './s4d-params.js';
import { s4dStateOutput } from './s4d-state-output.js';
import { s4dAdvanceState, s4dStep } from './s4d-step.js';
import { sigmoidGlu } from './sigmoid-glu.js';
import { type S4DHostParams, s4dConvReference, s4dKernelReference, s4dRecurrenceReference, s4dStateOutputReference, randomS4DHostParams, uploadS4DParams } from './testing.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await getTestRuntime();
});



// The recurrence rounds dt·Im(A) (up to ~130 rad a step under S4D-Inv) to f32 once and compounds it over L steps,
// the Vandermonde forms round dt·Im(A)·l (up to ~2e4 rad) to f32 for each l, the f64 references round neither:
// over a hundred steps and more they differ by ~1e-5 relative (a state's response, undamped by dt, the most).
const recurrenceTol = (L: number) => (L > 100 ? 1e-4 : 2e-5);

async function read(t: Tensor): Promise<Float32Array> {
  return rt.readFloat(t);
}

// awkward sizes: L 1 / 7 / 130 / 257 (tile tails of 16), H 3 / 5, N 2 / 10 / 64 (1, 5, 32 complex modes)
const cases = [
  { L: 1, H: 3, N: 2, init: 'lin' as const },
  { L: 7, H: 5, N: 10, init: 'inv' as const },
  { L: 130, H: 3, N: 64, init: 'inv' as const },
  { L: 257, H: 5, N: 10, init: 'lin' as const },
  { L: 257, H: 3, N: 64, init: 'lin' as const },
];

describe('s4dKernel (Vandermonde)', () => {
  for (const { L, H, N, init } of cases) {
    for (const channels of [1, 2] as const) {
      it(`matches the f64 reference: L ${L}, H ${H}, N ${N}, ${init}, channels ${channels}`, async () => {
        const p = randomS4DHostParams(H, N, channels, init, L + H + N);
        const K = s4dKernel(rt, uploadS4DParams(rt, p), L);
        expect(K.shape).toEqual([channels, L, H]);
        expect(relError(await read(K), s4dKernelReference(p, L))).toBeLessThan(2e-5);
      });
    }
  }
});

describe('s4dConv (convolution mode)', () => {
  for (const { L, H, N, init } of cases) {
    for (const channels of [1, 2] as const) {
      it(`matches the direct f64 convolution with D, add and GELU: L ${L}, H ${H}, channels ${channels}`, async () => {
        const B = 2;
        const p = randomS4DHostParams(H, N, channels, init, 7 * L + H);
        const Lk = L + 3; // only the first L rows are read
        const K = s4dKernelReference(p, Lk);
        const u = randn(B * L * H, 11 + L);
        const D = randn(H, 12);
        const add = randn(B * L * H, 13, 0.3);
        const y = s4dConv(rt, rt.upload(u, [B, L, H]), rt.upload(new Float32Array(K), [channels, Lk, H]), {
          D: rt.upload(D, [H]),
          add: rt.upload(add, [B, L, H]),
          activation: 'gelu',
        });
        const want = s4dConvReference(u, K, { B, L, H, Lk, channels }, { D, add, activation: 'gelu' });
        expect(relError(await read(y), want)).toBeLessThan(1e-5);
      });
    }
  }
});

describe('s4dStep (recurrent mode)', () => {
  for (const { L, H, N, init } of cases) {
    it(`matches the f64 recurrence from a non-zero state, output and state: L ${L}, H ${H}, N ${N}`, async () => {
      const B = 2;
      const p = randomS4DHostParams(H, N, 1, init, 3 * L + N);
      const params = uploadS4DParams(rt, p);
      const u = randn(B * L * H, 21 + L);
      const D = randn(H, 22);
      const state0 = randn(B * H * (N / 2) * 2, 23, 0.5);
      const state = rt.upload(state0, [B, H, N / 2, 2]);
      const y = s4dStep(rt, rt.upload(u, [B, L, H]), params, state, { D: rt.upload(D, [H]), activation: 'gelu' });
      const want = s4dRecurrenceReference(u, p, B, L, state0, { D, activation: 'gelu' });
      expect(relError(await read(y), want.y)).toBeLessThan(recurrenceTol(L));
      expect(relError(await read(state), want.state)).toBeLessThan(recurrenceTol(L));

      const state2 = rt.upload(state0, [B, H, N / 2, 2]);
      s4dAdvanceState(rt, rt.upload(u, [B, L, H]), params, state2);
      expect(relError(await read(state2), want.state)).toBeLessThan(recurrenceTol(L));
    });
  }
});

describe('convolution mode == recurrent mode', () => {
  for (const { L, H, N, init } of cases) {
    it(`from a zero state and from a non-zero state (state response added): L ${L}, H ${H}, N ${N}`, async () => {
      const B = 2;
      const p = randomS4DHostParams(H, N, 1, init, 5 * L + N + 1);
      const params = uploadS4DParams(rt, p);
      const uHost = randn(B * L * H, 31 + L);
      const u = rt.upload(uHost, [B, L, H]);
      const D = rt.upload(randn(H, 32), [H]);
      const K = s4dKernel(rt, params, L);
      const conv = await read(s4dConv(rt, u, K, { D, activation: 'gelu' }));
      const rec = await read(s4dStep(rt, u, params, rt.zeros([B, H, N / 2, 2]), { D, activation: 'gelu' }));
      expect(relError(conv, rec)).toBeLessThan(recurrenceTol(L));

      const state0 = randn(B * H * (N / 2) * 2, 33, 0.5);
      const y0 = s4dStateOutput(rt, params, rt.upload(state0, [B, H, N / 2, 2]), L);
      expect(relError(await read(y0), s4dStateOutputReference(p, state0, B, L))).toBeLessThan(recurrenceTol(L));
      const fromState = await read(s4dConv(rt, u, K, { D, add: y0, activation: 'gelu' }));
      const recFromState = await read(s4dStep(rt, u, params, rt.upload(state0, [B, H, N / 2, 2]), { D, activation: 'gelu' }));
      expect(relError(fromState, recFromState)).toBeLessThan(recurrenceTol(L));
      // and a prefill of the chunk == the same chunk token by token
      const stepState = rt.upload(state0, [B, H, N / 2, 2]);
      const steps: Float32Array[] = [];
      for (let t = 0; t < Math.min(L, 9); t++) {
        const ut = new Float32Array(B * H);
        for (let b = 0; b < B; b++) ut.set(uHost.subarray((b * L + t) * H, (b * L + t + 1) * H), b * H);
        steps.push(await read(s4dStep(rt, rt.upload(ut, [B, 1, H]), params, stepState, { D, activation: 'gelu' })));
      }
      for (let t = 0; t < steps.length; t++) {
        for (let b = 0; b < B; b++) {
          const row = fromState.subarray((b * L + t) * H, (b * L + t + 1) * H);
          expect(relError(steps[t].subarray(b * H, (b + 1) * H), row)).toBeLessThan(recurrenceTol(L));
        }
      }
    });
  }
});

describe('sigmoidGlu', () => {
  it('is first half · sigmoid(second half) on 37 × 2·5', async () => {
    const a = randn(37 * 10, 41);
    const y = await read(sigmoidGlu(rt, rt.upload(a, [37, 10])));
    const want = Float64Array.from({ length: 37 * 5 }, (_, i) => {
      const t = Math.floor(i / 5);
      const j = i % 5;
      return a[t * 10 + j] / (1 + Math.exp(-a[t * 10 + 5 + j]));
    });
    expect(relError(y, want)).toBeLessThan(1e-6);
  });
});

describe('descriptors and checks', () => {
  it('builds WGSL without a GPU; sizes stay out of the cache key', () => {
    const a = createS4DConvKernel({ B: 1, L: 7, H: 3, Lk: 7 }, { skip: true, add: false, bidirectional: true, activation: 'gelu' });
    const b = createS4DConvKernel({ B: 2, L: 300, H: 50, Lk: 512 }, { skip: true, add: false, bidirectional: true, activation: 'gelu' });
    expect(a.cacheKey).toBe(b.cacheKey);
    expect(a.wgsl).toBe(b.wgsl);
    expect(b.dispatch).toEqual([4, 19, 2]);
    expect(createS4DVandermondeKernel({ L: 257, H: 3, modes: 32, channels: 2 }).dispatch).toEqual([7, 1, 1]);
  });

  it('refuses the recurrence of a bidirectional layer with S4D_BIDIRECTIONAL', () => {
    const p = uploadS4DParams(rt, randomS4DHostParams(3, 10, 2, 'lin', 1));
    const run = () => s4dStep(rt, rt.zeros([1, 1, 3]), p, rt.zeros([1, 3, 5, 2]));
    expect(run).toThrowError(StatespaceError);
    try {
      run();
    } catch (e) {
      expect(StatespaceError.is(e) && e.code).toBe('S4D_BIDIRECTIONAL');
    }
  });

  it('names the input and the expected shape', () => {
    const p = uploadS4DParams(rt, randomS4DHostParams(3, 10, 1, 'lin', 1));
    expect(() => s4dStep(rt, rt.zeros([1, 1, 3]), p, rt.zeros([1, 3, 4, 2]))).toThrowError(/s4dStep: state has shape \[1,3,4,2\], expected \[batch=1, channels=3, modes=5, complex=2\]/);
    expect(() => s4dConv(rt, rt.zeros([1, 9, 3]), rt.zeros([1, 8, 3]))).toThrowError(/s4dConv: K has shape \[1,8,3\]/);
    expect(() => s4dKernel(rt, { ...p, AImag: rt.zeros([3, 4]) }, 5)).toThrowError(/s4dKernel: logAReal has shape \[3,5\], expected \[H=3, modes=4\]/);
  });
});
