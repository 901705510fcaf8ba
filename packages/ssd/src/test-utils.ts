/**
 * Random SSD problems shared by the tests (not exported from the package).
 */
import { randn, randu } from '@statespace/core/testing';
import type { SsdShape } from './ssd-shape.js';
import type { SsdReferenceInputs } from './ssd.js';

/** A random SSD problem: reference inputs plus the A_log the GPU kernels take. */
export interface SsdProblem extends SsdReferenceInputs {
  aLog: Float32Array;
  dtBias: Float32Array;
  D: Float32Array;
}

/** Random inputs of a plausible scale for `shape` (dt near softplus(−1), |A| in [1, 16]). */
export function randomSsdProblem(shape: SsdShape, seed: number, options: { initialState?: boolean } = {}): SsdProblem {
  const { batch: b, seqlen: L, heads: H, headDim: P, dState: N, groups: G } = shape;
  const aLog = randu(H, seed + 1, 0, Math.log(16));
  const A = aLog.map((v) => -Math.exp(v));
  return {
    x: randn(b * L * H * P, seed + 2),
    dt: randn(b * L * H, seed + 3, 0.7).map((v) => v - 1),
    A,
    aLog,
    B: randn(b * L * G * N, seed + 4, 0.5),
    C: randn(b * L * G * N, seed + 5, 0.5),
    dtBias: randn(H, seed + 6, 0.5),
    D: randn(H, seed + 7),
    initialState: options.initialState ? randn(b * H * P * N, seed + 8) : undefined,
  };
}

/** Rows [from, to) of each sequence of a (b, L, ...) array with `width` values per token. */
export function sliceTokens(data: Float32Array, batch: number, seqlen: number, width: number, from: number, to: number): Float32Array {
  const out = new Float32Array(batch * (to - from) * width);
  for (let b = 0; b < batch; b++) out.set(data.subarray((b * seqlen + from) * width, (b * seqlen + to) * width), b * (to - from) * width);
  return out;
}
