/**
 * Chunked state space duality (SSD), the Mamba-2 prefill algorithm ("Transformers are
 * SSMs", Dao & Gu 2024, section 6): matrix multiplications inside chunks of Q tokens
 * and a short recurrence between chunks, in five kernels:
 *
 *   1. ssdChunkCumsum    dt = clamp(softplus(Δ + dt_bias)), dA = dt·A, cumsum of dA per chunk
 *   2. ssdChunkState     each chunk's end state from a zero start
 *   3. ssdStatePassing   S_c = exp(Σ dA of chunk c)·S_{c−1} + state_c (initial state in, final state out)
 *   4. ssdBmm            C·Bᵀ per chunk and group
 *   5. ssdChunkScan      y = C·S_prev·exp(cs) + (CB ∘ exp(segsum) ∘ dt, causal)·x + D·x
 *
 * The selective SSM it computes, per head h with scalar A_h = -exp(A_log_h):
 *   S_l = exp(dt_l·A_h)·S_{l−1} + dt_l·x_l ⊗ B_l        (S: (P, N))
 *   y_l = S_l·C_l + D_h·x_l
 *
 * Shape glossary (see ssd-shape.ts): b batch, L tokens, H heads, P head dim, N d_state,
 * G groups, Q chunk length. Memory is linear in L: (b, nC, H, P, N) states and
 * (b, nC, G, Q, Q) CB blocks, nC = ceil(L / Q).
 */
import type { Runtime, Tensor, TensorLike } from '@statespace/core';
import { assertShape } from '@statespace/core';
import { ssdBmm } from './ssd-bmm.js';
import { ssdChunkCumsum, ssdDtReference } from './ssd-chunk-cumsum.js';
import { ssdChunkScan } from './ssd-chunk-scan.js';
import { ssdChunkState } from './ssd-chunk-state.js';
import { type SsdDtAttrs, type SsdOperand, type SsdShape, validateSsdShape } from './ssd-shape.js';
import { ssdStatePassing } from './ssd-state-passing.js';

/** GPU inputs of one SSD call. */
export interface SsdInputs {
  /** (b, L, H, P) */
  x: SsdOperand;
  /** Raw Δ, (b, L, H). */
  dt: SsdOperand;
  /** (b, L, G, N) */
  B: SsdOperand;
  /** (b, L, G, N) */
  C: SsdOperand;
  /** (H); A = -exp(A_log). */
  aLog: TensorLike;
  /** (H), added to Δ before the softplus. */
  dtBias?: TensorLike;
  /** (H), the skip connection. */
  D?: TensorLike;
  /**
   * (b, H, P, N) f32: read as the initial state and overwritten with the final state.
   * Without it the scan starts from zero and a new final-state tensor is returned.
   */
  state?: TensorLike;
}

/**
 * Chunked SSD prefill (the five kernels in order). Returns y (b, L, H, P) and the
 * final state (b, H, P, N): `inputs.state` itself when given.
 *
 * @example
 * ```ts
 * const shape = { batch: 1, seqlen: 4096, heads: 24, headDim: 64, dState: 128, groups: 1, chunkSize: 256 };
 * const { y, state } = ssdChunked(rt, { x, dt, B, C, aLog, dtBias, D }, shape, { dtLimit: [0, Infinity] });
 * ```
 */
export function ssdChunked(runtime: Runtime, inputs: SsdInputs, shape: SsdShape, attrs: SsdDtAttrs & { out?: Tensor } = {}): { y: Tensor; state: TensorLike } {
  const op = 'ssdChunked';
  validateSsdShape(op, shape);
  const { batch: b, heads: H, headDim: P, dState: N } = shape;
  let state: TensorLike;
  if (inputs.state) {
    assertShape(op, 'state', inputs.state.shape, { batch: b, heads: H, headDim: P, dState: N });
    state = inputs.state;
  } else {
    state = runtime.empty([b, H, P, N], 'f32', 'ssd.state');
  }
  const { dt, dACumsum } = ssdChunkCumsum(runtime, inputs.dt, inputs.aLog, inputs.dtBias, shape, attrs);
  const states = ssdChunkState(runtime, inputs.x, inputs.B, dt, dACumsum, shape);
  ssdStatePassing(runtime, states, dACumsum, state, shape, { hasInitial: !!inputs.state });
  const cb = ssdBmm(runtime, inputs.C, inputs.B, shape);
  const y = ssdChunkScan(runtime, inputs.x, inputs.C, dt, dACumsum, cb, states, inputs.D, shape, { out: attrs.out });
  // Buffers return to the pool now; later dispatches that reuse them run after these in queue order.
  for (const t of [dt, dACumsum, states, cb]) t.dispose();
  return { y, state };
}

/** CPU inputs of the SSD references (contiguous, paper letters). */
export interface SsdReferenceInputs {
  /** (b, L, H, P) */
  x: Float32Array;
  /** Raw Δ (b, L, H). */
  dt: Float32Array;
  /** Per-head decay A = -exp(A_log), (H). */
  A: Float32Array;
  /** (b, L, G, N) */
  B: Float32Array;
  /** (b, L, G, N) */
  C: Float32Array;
  dtBias?: Float32Array;
  D?: Float32Array;
  /** (b, H, P, N) */
  initialState?: Float32Array;
}

/**
 * The sequential recurrence (what the decode step does token by token), in f64:
 * S_l = exp(dt_l·A)·S_{l−1} + dt_l·x_l ⊗ B_l, y_l = S_l·C_l + D·x_l.
 * Returns y (b, L, H, P) and the final state (b, H, P, N). `shape.chunkSize` is ignored.
 *
 * @example
 * ```ts
 * const { y, state } = ssdRecurrentReference({ x, dt: dtRaw, A, B, C, dtBias, D }, shape, { dtLimit: [0, Infinity] });
 * expect(relError(await rt.read(gpu.y), y)).toBeLessThan(1e-4);
 * ```
 */
export function ssdRecurrentReference(inputs: SsdReferenceInputs, shape: SsdShape, attrs: SsdDtAttrs = {}): { y: Float32Array; state: Float32Array } {
  const { batch: nb, seqlen: L, heads: H, headDim: P, dState: N, groups: G } = shape;
  const { x, dt, A, B, C, dtBias, D, initialState } = inputs;
  const y = new Float32Array(nb * L * H * P);
  const out = new Float32Array(nb * H * P * N);
  const S = new Float64Array(P * N);
  for (let b = 0; b < nb; b++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / G));
      S.fill(0);
      if (initialState) for (let e = 0; e < P * N; e++) S[e] = initialState[(b * H + h) * P * N + e];
      for (let l = 0; l < L; l++) {
        const d = ssdDtReference(dt[(b * L + l) * H + h], dtBias ? dtBias[h] : 0, attrs);
        const decay = Math.exp(d * A[h]);
        const bRow = ((b * L + l) * G + g) * N;
        for (let p = 0; p < P; p++) {
          const xv = x[((b * L + l) * H + h) * P + p];
          let acc = 0;
          for (let n = 0; n < N; n++) {
            const s = decay * S[p * N + n] + d * xv * B[bRow + n];
            S[p * N + n] = s;
            acc += s * C[bRow + n];
          }
          y[((b * L + l) * H + h) * P + p] = acc + (D ? D[h] * xv : 0);
        }
      }
      out.set(S, (b * H + h) * P * N);
    }
  }
  return { y, state: out };
}

/**
 * The quadratic "attention form" of SSD (paper section 3): y = M·x with the full
 * masked semiseparable matrix M[l, s] = (C_l·B_s)·exp(cs_l − cs_s)·dt_s for s ≤ l
 * (cs the cumulative sum of dt·A over the whole sequence), plus D·x and the
 * initial state's contribution exp(cs_l)·C_l·S_0. O(L²): for small sizes only.
 * Returns y (b, L, H, P). `shape.chunkSize` is ignored.
 *
 * @example
 * ```ts
 * const y = ssdQuadraticReference({ x, dt: dtRaw, A, B, C, dtBias, D }, shape); // equals ssdRecurrentReference's y
 * ```
 */
export function ssdQuadraticReference(inputs: SsdReferenceInputs, shape: SsdShape, attrs: SsdDtAttrs = {}): Float32Array {
  const { batch: nb, seqlen: L, heads: H, headDim: P, dState: N, groups: G } = shape;
  const { x, dt, A, B, C, dtBias, D, initialState } = inputs;
  const y = new Float32Array(nb * L * H * P);
  const dts = new Float64Array(L);
  const cs = new Float64Array(L);
  const M = new Float64Array(L * L);
  for (let b = 0; b < nb; b++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / G));
      let run = 0;
      for (let l = 0; l < L; l++) {
        dts[l] = ssdDtReference(dt[(b * L + l) * H + h], dtBias ? dtBias[h] : 0, attrs);
        run += dts[l] * A[h];
        cs[l] = run;
      }
      for (let l = 0; l < L; l++) {
        for (let s = 0; s <= l; s++) {
          let cb = 0;
          for (let n = 0; n < N; n++) cb += C[((b * L + l) * G + g) * N + n] * B[((b * L + s) * G + g) * N + n];
          M[l * L + s] = cb * Math.exp(cs[l] - cs[s]) * dts[s];
        }
      }
      for (let l = 0; l < L; l++) {
        for (let p = 0; p < P; p++) {
          let acc = 0;
          for (let s = 0; s <= l; s++) acc += M[l * L + s] * x[((b * L + s) * H + h) * P + p];
          if (initialState) {
            let cs0 = 0;
            for (let n = 0; n < N; n++) cs0 += C[((b * L + l) * G + g) * N + n] * initialState[((b * H + h) * P + p) * N + n];
            acc += Math.exp(cs[l]) * cs0;
          }
          const xv = x[((b * L + l) * H + h) * P + p];
          y[((b * L + l) * H + h) * P + p] = acc + (D ? D[h] * xv : 0);
        }
      }
    }
  }
  return y;
}
