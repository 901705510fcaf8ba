/**
 * Random S4D parameters for tests (`@statespace/s4d/testing`): dt log-uniform in [0.001, 0.1],
 * Re(A) near −1/2, Im(A) from S4D-Lin or S4D-Inv, C normal with variance 1/2 per component.
 */
import type { Runtime } from '@statespace/core';
import { randn, randu } from '@statespace/core/testing';
import { s4dImagInit } from './s4d-init.js';
import type { S4DParams } from './s4d-params.js';
import type { S4DHostParams } from './s4d-reference.js';

/**
 * Host parameters of H channels, N/2 complex modes, 1 or 2 directions.
 *
 * @example
 * ```ts
 * const host = randomS4DHostParams(5, 10, 1, 'inv', 7);
 * ```
 */
export function randomS4DHostParams(H: number, N: number, channels: 1 | 2, init: 'lin' | 'inv', seed: number): S4DHostParams {
  const modes = N / 2;
  const logDt = randu(H, seed, Math.log(0.001), Math.log(0.1));
  const logAReal = randn(H * modes, seed + 1, 0.1).map((v) => v + Math.log(0.5));
  const AImag = Float32Array.from({ length: H * modes }, (_, i) => s4dImagInit(init, N, i % modes));
  const C = randn(channels * H * modes * 2, seed + 2, Math.SQRT1_2);
  return { logDt, logAReal, AImag, C, H, modes, channels };
}

/**
 * The same parameters on the GPU, in the layout the kernels take.
 *
 * @example
 * ```ts
 * const params = uploadS4DParams(rt, randomS4DHostParams(5, 10, 1, 'inv', 7));
 * ```
 */
export function uploadS4DParams(rt: Runtime, p: S4DHostParams): S4DParams {
  const { H, modes, channels } = p;
  return {
    logDt: rt.upload(new Float32Array(p.logDt as Float32Array), [H]),
    logAReal: rt.upload(new Float32Array(p.logAReal as Float32Array), [H, modes]),
    AImag: rt.upload(new Float32Array(p.AImag as Float32Array), [H, modes]),
    C: rt.upload(new Float32Array(p.C as Float32Array), channels === 2 ? [2, H, modes, 2] : [H, modes, 2]),
  };
}
