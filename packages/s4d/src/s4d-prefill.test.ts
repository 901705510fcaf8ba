import { type Runtime, StatespaceError, type Tensor } from '@statespace/core';
import { getTestRuntime, randn, randu, relError } from '@statespace/core/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { createS4DChunkScanKernel, createS4DChunkStatesKernel, s4dChunkStates } from './s4d-chunk-states.js';
import { s4dConv } from './s4d-conv.js';
import { s4dImagInit } from './s4d-init.js';
import { s4dKernel } from './s4d-kernel.js';
import type { S4DParams } from './s4d-params.js';
import { S4D_PREFILL_CHUNK, s4dPrefill } from './s4d-prefill.js';
import { s4dStateOutput } from './s4d-state-output.js';
import { s4dStep } from './s4d-step.js';
import { type S4DHostParams, s4dConvReference, s4dKernelReference, s4dRecurrenceReference, s4dStateOutputReference, randomS4DHostParams, uploadS4DParams } from './testing.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await getTestRuntime();
});



// as in s4d.test.ts: f32 phases rounded per step (recurrence) or per lag (Vandermonde) against unrounded f64
const tol = (L: number) => (L > 100 ? 1e-4 : 2e-5);
const read = (t: Tensor) => rt.readFloat(t);

// L = Q − 1 (one direct convolution), Q (exactly one chunk), Q + 1 (a one-token second chunk), 3Q + 7 (four chunks,
// a ragged last); Q the default 256 and forced small ones; H 3 / 5, N 2 / 10 / 64, S4D-Lin and S4D-Inv
const Q0 = S4D_PREFILL_CHUNK;
const cases = [
  { Q: Q0, L: Q0 - 1, H: 3, N: 64, init: 'inv' as const },
  { Q: Q0, L: Q0, H: 5, N: 10, init: 'lin' as const },
  { Q: Q0, L: Q0 + 1, H: 3, N: 2, init: 'lin' as const },
  { Q: Q0, L: 3 * Q0 + 7, H: 5, N: 64, init: 'inv' as const },
  { Q: 16, L: 15, H: 5, N: 10, init: 'inv' as const },
  { Q: 16, L: 17, H: 3, N: 64, init: 'lin' as const },
  { Q: 16, L: 3 * 16 + 7, H: 5, N: 2, init: 'lin' as const },
  { Q: 48, L: 3 * 48 + 7, H: 3, N: 10, init: 'inv' as const },
];

describe('s4dPrefill (chunked convolution) == direct convolution == recurrence == f64 reference', () => {
  for (const { Q, L, H, N, init } of cases) {
    it(`Q ${Q}, L ${L}, H ${H}, N ${N}, ${init}: from a zero and from a non-zero state, output and final state`, async () => {
      const B = 2;
      const modes = N / 2;
      const p = randomS4DHostParams(H, N, 1, init, Q + L + H + N);
      const params = uploadS4DParams(rt, p);
      const uHost = randn(B * L * H, 51 + L);
      const DHost = randn(H, 52);
      const u = rt.upload(uHost, [B, L, H]);
      const D = rt.upload(DHost, [H]);
      const KL = s4dKernel(rt, params, L);
      for (const state0 of [new Float32Array(B * H * modes * 2), randn(B * H * modes * 2, 53, 0.5)]) {
        const zero = state0.every((v) => v === 0);
        const label = zero ? 'zero state' : 'non-zero state';
        const want = s4dRecurrenceReference(uHost, p, B, L, state0, { D: DHost, activation: 'gelu' });
        // the f64 direct convolution plus the state's f64 response
        const direct = s4dConvReference(uHost, s4dKernelReference(p, L), { B, L, H, Lk: L, channels: 1 }, { D: DHost, add: s4dStateOutputReference(p, state0, B, L), activation: 'gelu' });
        expect(relError(want.y, direct), `${label}: the two references`).toBeLessThan(1e-9);

        const state = rt.upload(state0, [B, H, modes, 2]);
        const y = await read(s4dPrefill(rt, u, params, state, { D, activation: 'gelu', chunk: Q, stateIsZero: zero }));
        expect(relError(y, want.y), `${label}: y vs f64`).toBeLessThan(tol(L));
        expect(relError(await read(state), want.state), `${label}: state vs f64`).toBeLessThan(tol(L));

        // the GPU's own direct convolution (K of L taps) and recurrence
        const add = zero ? undefined : s4dStateOutput(rt, params, rt.upload(state0, [B, H, modes, 2]), L);
        expect(relError(y, await read(s4dConv(rt, u, KL, { D, add, activation: 'gelu' }))), `${label}: y vs s4dConv`).toBeLessThan(tol(L));
        const recState = rt.upload(state0, [B, H, modes, 2]);
        expect(relError(y, await read(s4dStep(rt, u, params, recState, { D, activation: 'gelu' }))), `${label}: y vs s4dStep`).toBeLessThan(tol(L));
        expect(relError(await read(state), await read(recState)), `${label}: state vs s4dStep`).toBeLessThan(tol(L));
      }
    });
  }

  it('takes the kernel of min(L, Q) taps and no activation; a K given with more rows is read only up to Q', async () => {
    const [B, L, H, N, Q] = [1, 71, 5, 10, 32];
    const p = randomS4DHostParams(H, N, 1, 'lin', 9);
    const params = uploadS4DParams(rt, p);
    const uHost = randn(B * L * H, 61);
    const want = s4dRecurrenceReference(uHost, p, B, L);
    for (const K of [undefined, s4dKernel(rt, params, Q), s4dKernel(rt, params, L + 9)]) {
      const state = rt.zeros([B, H, N / 2, 2]);
      const y = await read(s4dPrefill(rt, rt.upload(uHost, [B, L, H]), params, state, { K, chunk: Q }));
      expect(relError(y, want.y)).toBeLessThan(2e-5);
      expect(relError(await read(state), want.state)).toBeLessThan(2e-5);
    }
  });
});

describe('s4dChunkStates', () => {
  it('holds the state at the start of every chunk and advances the state over all L tokens', async () => {
    const [B, L, H, N, Q] = [2, 3 * 16 + 7, 3, 10, 16];
    const modes = N / 2;
    const p = randomS4DHostParams(H, N, 1, 'inv', 71);
    const uHost = randn(B * L * H, 72);
    const state0 = randn(B * H * modes * 2, 73, 0.5);
    const state = rt.upload(state0, [B, H, modes, 2]);
    const starts = await read(s4dChunkStates(rt, rt.upload(uHost, [B, L, H]), uploadS4DParams(rt, p), state, Q));
    const chunks = Math.ceil(L / Q);
    expect(starts.length).toBe(B * chunks * H * modes * 2);
    const per = H * modes * 2;
    for (let c = 0; c < chunks; c++) {
      // the reference state after c·Q tokens
      const t = c * Q;
      const prefix = new Float32Array(B * t * H);
      for (let b = 0; b < B; b++) prefix.set(uHost.subarray(b * L * H, (b * L + t) * H), b * t * H);
      const ref = s4dRecurrenceReference(prefix, p, B, t, state0).state;
      for (let b = 0; b < B; b++) {
        const got = starts.subarray((b * chunks + c) * per, (b * chunks + c + 1) * per);
        expect(relError(got, ref.subarray(b * per, (b + 1) * per)), `chunk ${c}, batch ${b}`).toBeLessThan(2e-5);
      }
    }
    expect(relError(await read(state), s4dRecurrenceReference(uHost, p, B, L, state0).state)).toBeLessThan(2e-5);
  });

  it('builds WGSL without a GPU; sizes stay out of the cache key', () => {
    const a = createS4DChunkStatesKernel({ B: 2, L: 775, H: 24, modes: 32, Q: 256 });
    const b = createS4DChunkStatesKernel({ B: 1, L: 9, H: 3, modes: 1, Q: 16 });
    expect(a.wgsl).toBe(b.wgsl);
    expect(a.dispatch).toEqual([96, 1, 1]);
    expect(a.uniforms).toMatchObject({ chunks: 4, Q: 256 });
    expect(createS4DChunkScanKernel({ B: 2, L: 775, H: 24, modes: 32, Q: 256 }).dispatch).toEqual([24, 1, 1]);
  });
});

describe('chunked prefill checks', () => {
  const code = (run: () => unknown): string | undefined => {
    try {
      run();
    } catch (e) {
      return StatespaceError.is(e) ? e.code : 'not a StatespaceError';
    }
    return undefined;
  };

  it('refuses to chunk a bidirectional layer with S4D_BIDIRECTIONAL', () => {
    const p = uploadS4DParams(rt, randomS4DHostParams(3, 10, 2, 'lin', 1));
    expect(code(() => s4dPrefill(rt, rt.zeros([1, 40, 3]), p, rt.zeros([1, 3, 5, 2]), { chunk: 16 }))).toBe('S4D_BIDIRECTIONAL');
    expect(code(() => s4dConv(rt, rt.zeros([1, 40, 3]), rt.zeros([2, 40, 3]), { chunk: 16 }))).toBe('S4D_BIDIRECTIONAL');
  });

  it('names a chunk that is not a multiple of 16 and a kernel with too few rows', () => {
    const p = uploadS4DParams(rt, randomS4DHostParams(3, 10, 1, 'lin', 1));
    expect(() => s4dPrefill(rt, rt.zeros([1, 40, 3]), p, rt.zeros([1, 3, 5, 2]), { chunk: 24 })).toThrowError(/s4dPrefill: chunk=24 must be a positive multiple of 16/);
    expect(() => s4dConv(rt, rt.zeros([1, 40, 3]), rt.zeros([1, 16, 3]), { chunk: 8 })).toThrowError(/s4dConv: chunk=8 must be a positive multiple of 16/);
    expect(() => s4dPrefill(rt, rt.zeros([1, 40, 3]), p, rt.zeros([1, 3, 5, 2]), { chunk: 32, K: rt.zeros([1, 31, 3]) })).toThrowError(/s4dPrefill: K has shape \[1,31,3\], expected \[channels=1, kernel rows ≥ 32, channels=3\]/);
    expect(() => s4dConv(rt, rt.zeros([1, 40, 3]), rt.zeros([1, 15, 3]), { chunk: 16 })).toThrowError(/s4dConv: K has shape \[1,15,3\], expected \[channels=1 or 2, kernel rows ≥ 16/);
    expect(() => s4dStateOutput(rt, p, rt.zeros([1, 2, 3, 5, 2]), 40, 16)).toThrowError(/s4dStateOutput: state has shape \[1,2,3,5,2\], expected \[batch=1, chunks=3, channels=3, modes=5, complex=2\]/);
  });
});
