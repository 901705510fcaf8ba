/**
 * Plain sequential CPU references of the S4D kernels and layer, in f64: the Vandermonde kernel, the direct
 * convolution, the recurrence, the state's response, and the whole layer of state-spaces/s4 `models/s4/s4d.py`
 * (conv, + D·u, GELU, Conv1d(H, 2H, 1), GLU). Imported from `@statespace/s4d/testing`.
 *
 * Shape glossary (packages/core/README.md, and s4d-params.ts): B batch, L seqlen, H channels, modes = N/2,
 * channels 1 or 2 (bidirectional). Layouts as on the GPU: u, y (B, L, H); K (channels, L, H);
 * state (B, H, modes, 2); C (channels, H, modes, 2).
 */
import { unaryReference } from '@statespace/core';

/** Host copies of an S4D layer's SSM parameters and their sizes. */
export interface S4DHostParams {
  /** (H) */
  logDt: ArrayLike<number>;
  /** (H, modes) */
  logAReal: ArrayLike<number>;
  /** (H, modes) */
  AImag: ArrayLike<number>;
  /** (channels, H, modes, 2) */
  C: ArrayLike<number>;
  H: number;
  modes: number;
  channels: 1 | 2;
}

interface Mode {
  /** dt·A */
  dtA: [number, number];
  /** exp(dt·A) */
  dA: [number, number];
  /** (exp(dt·A) − 1)/A */
  dB: [number, number];
}

function cmul(a: readonly [number, number], b: readonly [number, number]): [number, number] {
  return [a[0] * b[0] - a[1] * b[1], a[0] * b[1] + a[1] * b[0]];
}
function cexp(re: number, im: number): [number, number] {
  const m = Math.exp(re);
  return [m * Math.cos(im), m * Math.sin(im)];
}
function mode(p: S4DHostParams, h: number, n: number): Mode {
  const dt = Math.exp(p.logDt[h]);
  const a: [number, number] = [-Math.exp(p.logAReal[h * p.modes + n]), p.AImag[h * p.modes + n]];
  const dtA: [number, number] = [a[0] * dt, a[1] * dt];
  const dA = cexp(dtA[0], dtA[1]);
  const num: [number, number] = [dA[0] - 1, dA[1]];
  const d = a[0] * a[0] + a[1] * a[1];
  const dB: [number, number] = [(num[0] * a[0] + num[1] * a[1]) / d, (num[1] * a[0] - num[0] * a[1]) / d];
  return { dtA, dA, dB };
}
function cOf(p: S4DHostParams, c: number, h: number, n: number): [number, number] {
  const i = ((c * p.H + h) * p.modes + n) * 2;
  return [p.C[i], p.C[i + 1]];
}

/**
 * K (channels, L, H) = 2·Re(Σ_n C·(exp(dtA) − 1)/A·exp(dtA·l)).
 *
 * @example
 * ```ts
 * const K = s4dKernelReference(host, 37); // Float64Array of channels·37·H
 * ```
 */
export function s4dKernelReference(p: S4DHostParams, L: number): Float64Array {
  const K = new Float64Array(p.channels * L * p.H);
  for (let c = 0; c < p.channels; c++) {
    for (let h = 0; h < p.H; h++) {
      for (let n = 0; n < p.modes; n++) {
        const m = mode(p, h, n);
        const cb = cmul(cOf(p, c, h, n), m.dB);
        for (let l = 0; l < L; l++) {
          const z = cexp(m.dtA[0] * l, m.dtA[1] * l);
          K[(c * L + l) * p.H + h] += 2 * (cb[0] * z[0] - cb[1] * z[1]);
        }
      }
    }
  }
  return K;
}

/** Options of the references (as the GPU kernels'). */
export interface S4DReferenceAttrs {
  /** (H) skip D·u. */
  D?: ArrayLike<number>;
  /** (B, L, H) added before the activation. */
  add?: ArrayLike<number>;
  activation?: 'gelu' | 'none';
}

function finish(v: number, attrs: S4DReferenceAttrs, o: number, h: number, uv: number): number {
  let x = v + (attrs.D ? attrs.D[h] * uv : 0) + (attrs.add ? attrs.add[o] : 0);
  if (attrs.activation === 'gelu') x = unaryReference('gelu', x);
  return x;
}

/**
 * The direct convolution of u (B, L, H) with K (channels, Lk, H): causal, plus the backward half
 * Σ_{s>t} K[1, s−t−1]·u[s] when K has two channels.
 *
 * @example
 * ```ts
 * const y = s4dConvReference(u, K, { B: 2, L: 37, H: 24, Lk: 37, channels: 1 }, { D, activation: 'gelu' });
 * ```
 */
export function s4dConvReference(
  u: ArrayLike<number>,
  K: ArrayLike<number>,
  shape: { B: number; L: number; H: number; Lk: number; channels: 1 | 2 },
  attrs: S4DReferenceAttrs = {},
): Float64Array {
  const { B, L, H, Lk, channels } = shape;
  const y = new Float64Array(B * L * H);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < L; t++) {
      for (let h = 0; h < H; h++) {
        let acc = 0;
        for (let s = 0; s <= t; s++) acc += K[(t - s) * H + h] * u[(b * L + s) * H + h];
        if (channels === 2) for (let s = t + 1; s < L; s++) acc += K[(Lk + s - t - 1) * H + h] * u[(b * L + s) * H + h];
        const o = (b * L + t) * H + h;
        y[o] = finish(acc, attrs, o, h, u[o]);
      }
    }
  }
  return y;
}

/**
 * The recurrence x ← exp(dtA)·x + (exp(dtA) − 1)/A·u, y = 2·Re(C·x) token by token from `state0`
 * (B, H, modes, 2; zeros if omitted).
 *
 * @returns y (B, L, H) and the final state (B, H, modes, 2).
 * @example
 * ```ts
 * const { y, state } = s4dRecurrenceReference(u, host, 2, 37, undefined, { D, activation: 'gelu' });
 * ```
 */
export function s4dRecurrenceReference(
  u: ArrayLike<number>,
  p: S4DHostParams,
  B: number,
  L: number,
  state0?: ArrayLike<number>,
  attrs: S4DReferenceAttrs = {},
): { y: Float64Array; state: Float64Array } {
  const { H, modes } = p;
  const state = new Float64Array(B * H * modes * 2);
  if (state0) state.set(Array.from(state0));
  const y = new Float64Array(B * L * H);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const ms = Array.from({ length: modes }, (_, n) => mode(p, h, n));
      for (let t = 0; t < L; t++) {
        const o = (b * L + t) * H + h;
        let acc = 0;
        for (let n = 0; n < modes; n++) {
          const si = ((b * H + h) * modes + n) * 2;
          const x = cmul(ms[n].dA, [state[si], state[si + 1]]);
          x[0] += ms[n].dB[0] * u[o];
          x[1] += ms[n].dB[1] * u[o];
          state[si] = x[0];
          state[si + 1] = x[1];
          const c = cOf(p, 0, h, n);
          acc += 2 * (c[0] * x[0] - c[1] * x[1]);
        }
        y[o] = finish(acc, attrs, o, h, u[o]);
      }
    }
  }
  return { y, state };
}

/**
 * y0 (B, L, H) = 2·Re(Σ_n C·exp(dtA·(t+1))·x): what `state` alone contributes to the next L outputs.
 *
 * @example
 * ```ts
 * const y0 = s4dStateOutputReference(host, state, 2, 37);
 * ```
 */
export function s4dStateOutputReference(p: S4DHostParams, state: ArrayLike<number>, B: number, L: number): Float64Array {
  const { H, modes } = p;
  const y = new Float64Array(B * L * H);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let n = 0; n < modes; n++) {
        const m = mode(p, h, n);
        const si = ((b * H + h) * modes + n) * 2;
        const cx = cmul(cOf(p, 0, h, n), [state[si], state[si + 1]]);
        for (let t = 0; t < L; t++) {
          const z = cexp(m.dtA[0] * (t + 1), m.dtA[1] * (t + 1));
          y[(b * L + t) * H + h] += 2 * (cx[0] * z[0] - cx[1] * z[1]);
        }
      }
    }
  }
  return y;
}

/**
 * The whole S4D layer (state-spaces/s4 `S4D.forward` with `transposed=False`, eval mode) on x (B, L, H) from a zero
 * state: conv (two-sided when bidirectional), + D·x, GELU, W (2H, H)·y + bias, GLU (first half · sigmoid(second)).
 *
 * @example
 * ```ts
 * const y = s4dLayerReference(x, host, { D, W, bias }, 2, 37);
 * ```
 */
export function s4dLayerReference(
  x: ArrayLike<number>,
  p: S4DHostParams,
  w: { D: ArrayLike<number>; W: ArrayLike<number>; bias: ArrayLike<number> },
  B: number,
  L: number,
): Float64Array {
  const { H } = p;
  const K = s4dKernelReference(p, L);
  const y = s4dConvReference(x, K, { B, L, H, Lk: L, channels: p.channels }, { D: w.D, activation: 'gelu' });
  const out = new Float64Array(B * L * H);
  for (let r = 0; r < B * L; r++) {
    for (let j = 0; j < H; j++) {
      let a = w.bias[j];
      let g = w.bias[H + j];
      for (let k = 0; k < H; k++) {
        a += w.W[j * H + k] * y[r * H + k];
        g += w.W[(H + j) * H + k] * y[r * H + k];
      }
      out[r * H + j] = a / (1 + Math.exp(-g));
    }
  }
  return out;
}
