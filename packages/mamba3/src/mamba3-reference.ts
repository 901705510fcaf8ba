/**
 * Plain sequential CPU references of the Mamba-3 layer (state-spaces/mamba `mamba_ssm/modules/mamba3.py`), in f64:
 * the scan from in_proj's output ({@link mamba3ScanReference}), the output norm, and the whole mixer
 * ({@link mamba3MixerReference}). Imported from `@statespace/mamba3/testing`.
 *
 * The recurrence (Mamba-3 paper: trapezoidal discretisation, section 3; MIMO, section 4), per token t and head h:
 *
 *   Δ = softplus(dd_dt + dt_bias), A = min(−softplus(dd_A), −A_floor), λ = sigmoid(trap)
 *   α = exp(A·Δ), β = (1 − λ)·Δ·α, γ = λ·Δ
 *   θ ← θ + π·tanh(angles)·Δ                               (`angles` angles per head, mod 2π)
 *   q_r = rot(rms(C_r)·w_C + C_bias[h, r], θ), k_r = rot(rms(B_r)·w_B + B_bias[h, r], θ)
 *   v_r = x·mimo_x[h, r]                                     (SISO: v = x)
 *   S ← α·S + β·Σ_r v_{t−1,r} ⊗ k_{t−1,r} + γ·Σ_r v_r ⊗ k_r       S (P, N) per head
 *   y_r = S·q_r + D[h]·v_r
 *   y_r ← y_r·silu(z·mimo_z[h, r])  and  y = Σ_r mimo_o[h, r]·y_r     (without the output norm)
 *   y_r ← rms_P(y_r)·w_norm·silu(z·mimo_z[h, r]), y = Σ_r mimo_o[h, r]·y_r   (with it: groups of P, norm before gate)
 *
 * rot pairs (2i, 2i+1) for SISO and (i, i + N/2) for MIMO, i < angles; the other entries pass through.
 * The state is (θ, S, k_{t−1}, v_{t−1}): mamba3.py's angle_dt_state, ssm_state, k_state, v_state.
 *
 * Shape glossary (mamba3-shape.ts): B batch, L seqlen, D d_model, H heads, P head dim, I = H·P, N d_state,
 * G groups, rank (MIMO rank; 1 for SISO), angles (rotary angles, num_rope_angles), W in_proj width.
 */
import { mamba3StateStride, mamba3Tiles } from './mamba3-scan.js';
import { type Mamba3Config, type Mamba3Dims, mamba3Dims } from './mamba3-shape.js';

/** Host copies of a Mamba-3 layer's small parameters (mamba_ssm's names in the comments). */
export interface Mamba3HostParams {
  /** (H) dt_bias */
  dtBias: ArrayLike<number>;
  /** (H, rank, N) B_bias */
  bBias: ArrayLike<number>;
  /** (H, rank, N) C_bias */
  cBias: ArrayLike<number>;
  /** (N) B_norm.weight */
  bNorm: ArrayLike<number>;
  /** (N) C_norm.weight */
  cNorm: ArrayLike<number>;
  /** (H) D */
  D: ArrayLike<number>;
  /** (H, rank, P) mimo_x, mimo_z, mimo_o (MIMO only) */
  mimoX?: ArrayLike<number>;
  mimoZ?: ArrayLike<number>;
  mimoO?: ArrayLike<number>;
  /** (I) norm.weight (outProjNorm only) */
  norm?: ArrayLike<number>;
  aFloor: number;
}

/** A Mamba-3 layer's state on the host, in f64. */
export interface Mamba3HostState {
  /** (B, H, angles) θ */
  theta: Float64Array;
  /** (B, H, P, N) S */
  ssm: Float64Array;
  /** (B, H, rank, N) k of the previous token (biased, normed, rotated) */
  kPrev: Float64Array;
  /** (B, H, rank, P) v of the previous token */
  vPrev: Float64Array;
}

/**
 * A zero state (the state of an empty prefix).
 *
 * @example
 * ```ts
 * const state = mamba3ZeroHostState(d, 2);
 * ```
 */
export function mamba3ZeroHostState(d: Mamba3Dims, B: number): Mamba3HostState {
  return {
    theta: new Float64Array(B * d.H * d.angles),
    ssm: new Float64Array(B * d.H * d.P * d.N),
    kPrev: new Float64Array(B * d.H * d.rank * d.N),
    vPrev: new Float64Array(B * d.H * d.rank * d.P),
  };
}

const softplus = (x: number) => (x > 20 ? x : Math.log1p(Math.exp(x)));
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const silu = (x: number) => x * sigmoid(x);
const TWO_PI = 2 * Math.PI;

/**
 * The scan over in_proj's output zxbcdt (B, L, W), from `state` (zero when left out; not modified).
 *
 * @param attrs.perRank true: y (B, L, rank, I) of S·q_r + D·v_r, ungated (the output norm's input); false: y (B, L, I)
 *   gated by silu(z·mimo_z) and summed with mimo_o.
 * @returns y and the state after the L tokens.
 * @example
 * ```ts
 * const { y, state } = mamba3ScanReference(zxbcdt, params, d, 1, 37, { perRank: false });
 * ```
 */
export function mamba3ScanReference(
  zxbcdt: ArrayLike<number>,
  p: Mamba3HostParams,
  d: Mamba3Dims,
  B: number,
  L: number,
  attrs: { perRank: boolean },
  start?: Mamba3HostState,
): { y: Float64Array; state: Mamba3HostState } {
  const { H, P, I, N, G, rank, angles, W } = d;
  const st = start ? { theta: start.theta.slice(), ssm: start.ssm.slice(), kPrev: start.kPrev.slice(), vPrev: start.vPrev.slice() } : mamba3ZeroHostState(d, B);
  const y = new Float64Array(B * L * (attrs.perRank ? rank : 1) * I);
  const q = new Float64Array(rank * N);
  const k = new Float64Array(rank * N);
  const v = new Float64Array(rank * P);
  const bc = new Float64Array(N);
  const rep = H / G;
  const one = (a: ArrayLike<number> | undefined, i: number) => (a ? a[i] : 1);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < L; t++) {
      const row = (b * L + t) * W;
      for (let h = 0; h < H; h++) {
        const g = Math.floor(h / rep);
        const dt = softplus(zxbcdt[row + d.dtOff + h] + p.dtBias[h]);
        const A = Math.min(-softplus(zxbcdt[row + d.aOff + h]), -p.aFloor);
        const lam = sigmoid(zxbcdt[row + d.trapOff + h]);
        const alpha = Math.exp(A * dt);
        const beta = (1 - lam) * dt * alpha;
        const gamma = lam * dt;
        const th = st.theta.subarray((b * H + h) * angles, (b * H + h + 1) * angles);
        for (let s = 0; s < angles; s++) {
          th[s] += Math.PI * Math.tanh(zxbcdt[row + d.angOff + s]) * dt;
          th[s] -= TWO_PI * Math.floor(th[s] / TWO_PI);
        }
        for (let r = 0; r < rank; r++) {
          for (const [out, off, w, bias] of [
            [q, d.cOff, p.cNorm, p.cBias],
            [k, d.bOff, p.bNorm, p.bBias],
          ] as const) {
            const base = row + off + (r * G + g) * N;
            let ss = 0;
            for (let n = 0; n < N; n++) ss += zxbcdt[base + n] ** 2;
            const inv = 1 / Math.sqrt(ss / N + d.eps);
            for (let n = 0; n < N; n++) bc[n] = zxbcdt[base + n] * inv * w[n] + bias[(h * rank + r) * N + n];
            for (let n = 0; n < N; n++) out[r * N + n] = bc[n];
            for (let s = 0; s < angles; s++) {
              const [i, j] = d.pairwise ? [2 * s, 2 * s + 1] : [s, s + N / 2];
              const c = Math.cos(th[s]);
              const sn = Math.sin(th[s]);
              out[r * N + i] = bc[i] * c - bc[j] * sn;
              out[r * N + j] = bc[i] * sn + bc[j] * c;
            }
          }
          for (let pp = 0; pp < P; pp++) v[r * P + pp] = zxbcdt[row + d.xOff + h * P + pp] * one(p.mimoX, (h * rank + r) * P + pp);
        }
        const ssm = st.ssm.subarray((b * H + h) * P * N, (b * H + h + 1) * P * N);
        const kp = st.kPrev.subarray((b * H + h) * rank * N, (b * H + h + 1) * rank * N);
        const vp = st.vPrev.subarray((b * H + h) * rank * P, (b * H + h + 1) * rank * P);
        for (let pp = 0; pp < P; pp++) {
          for (let n = 0; n < N; n++) {
            let upd = 0;
            for (let r = 0; r < rank; r++) upd += beta * vp[r * P + pp] * kp[r * N + n] + gamma * v[r * P + pp] * k[r * N + n];
            ssm[pp * N + n] = alpha * ssm[pp * N + n] + upd;
          }
        }
        for (let pp = 0; pp < P; pp++) {
          let acc = 0;
          for (let r = 0; r < rank; r++) {
            let yr = p.D[h] * v[r * P + pp];
            for (let n = 0; n < N; n++) yr += ssm[pp * N + n] * q[r * N + n];
            if (attrs.perRank) {
              y[((b * L + t) * rank + r) * I + h * P + pp] = yr;
            } else {
              const z = zxbcdt[row + h * P + pp] * one(p.mimoZ, (h * rank + r) * P + pp);
              acc += one(p.mimoO, (h * rank + r) * P + pp) * yr * silu(z);
            }
          }
          if (!attrs.perRank) y[(b * L + t) * I + h * P + pp] = acc;
        }
        kp.set(k);
        vp.set(v);
      }
    }
  }
  return { y, state: st };
}

/**
 * The output norm of `is_outproj_norm` over the per-rank scan output yr (T, rank, I): each rank's head group of P
 * RMS-normalised, times norm.weight and silu(z·mimo_z), summed with mimo_o (SISO: rank = 1, no MIMO weights).
 *
 * @returns (T, I)
 * @example
 * ```ts
 * const out = mamba3OutNormReference(y, zxbcdt, params, d, 37);
 * ```
 */
export function mamba3OutNormReference(yr: ArrayLike<number>, zxbcdt: ArrayLike<number>, p: Mamba3HostParams, d: Mamba3Dims, T: number): Float64Array {
  const { H, P, I, rank, W } = d;
  const out = new Float64Array(T * I);
  const one = (a: ArrayLike<number> | undefined, i: number) => (a ? a[i] : 1);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < H; h++) {
      for (let r = 0; r < rank; r++) {
        const base = (t * rank + r) * I + h * P;
        let ss = 0;
        for (let pp = 0; pp < P; pp++) ss += yr[base + pp] ** 2;
        const inv = 1 / Math.sqrt(ss / P + d.eps);
        for (let pp = 0; pp < P; pp++) {
          const m = (h * rank + r) * P + pp;
          const z = zxbcdt[t * W + h * P + pp] * one(p.mimoZ, m);
          out[t * I + h * P + pp] += one(p.mimoO, m) * yr[base + pp] * inv * p.norm![h * P + pp] * silu(z);
        }
      }
    }
  }
  return out;
}

/** y (M, N) = x (M, K) · wᵀ, w (N, K). */
function matmulT(x: ArrayLike<number>, w: ArrayLike<number>, M: number, K: number, N: number): Float64Array {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x[m * K + k] * w[n * K + k];
      y[m * N + n] = s;
    }
  }
  return y;
}

/**
 * The host parameters of a layer from its weights keyed by mamba_ssm's names (see {@link Mamba3Mixer.expectedWeights}).
 *
 * @example
 * ```ts
 * const params = mamba3HostParams(config, weights); // weights['dt_bias'], weights['B_bias'], ...
 * ```
 */
export function mamba3HostParams(config: Mamba3Config, w: Readonly<Record<string, ArrayLike<number>>>): Mamba3HostParams {
  return {
    dtBias: w['dt_bias'],
    bBias: w['B_bias'],
    cBias: w['C_bias'],
    bNorm: w['B_norm.weight'],
    cNorm: w['C_norm.weight'],
    D: w['D'],
    mimoX: config.mimo ? w['mimo_x'] : undefined,
    mimoZ: config.mimo ? w['mimo_z'] : undefined,
    mimoO: config.mimo ? w['mimo_o'] : undefined,
    norm: config.outProjNorm ? w['norm.weight'] : undefined,
    aFloor: config.aFloor,
  };
}

/**
 * The whole mixer on the host: in_proj, the scan, the output norm (when configured), out_proj.
 *
 * @param u (B, L, D)
 * @returns out (B, L, D) and the state after the L tokens.
 * @example
 * ```ts
 * const { out, state } = mamba3MixerReference(u, weights, config, 1, 37);
 * const next = mamba3MixerReference(u1, weights, config, 1, 1, state); // one decode step
 * ```
 */
export function mamba3MixerReference(
  u: ArrayLike<number>,
  w: Readonly<Record<string, ArrayLike<number>>>,
  config: Mamba3Config,
  B: number,
  L: number,
  start?: Mamba3HostState,
): { out: Float64Array; state: Mamba3HostState } {
  const d = mamba3Dims(config);
  const p = mamba3HostParams(config, w);
  const zxbcdt = matmulT(u, w['in_proj.weight'], B * L, d.D, d.W);
  const { y, state } = mamba3ScanReference(zxbcdt, p, d, B, L, { perRank: config.outProjNorm }, start);
  const yn = config.outProjNorm ? mamba3OutNormReference(y, zxbcdt, p, d, B * L) : y;
  return { out: matmulT(yn, w['out_proj.weight'], B * L, d.I, d.D), state };
}

/**
 * A host state in the GPU layout (B, H, {@link mamba3StateStride}): S, v_prev, then each P-tile's copy of k_prev
 * and θ.
 *
 * @example
 * ```ts
 * rt.write(state.ssm, packMamba3State(d, 1, hostState));
 * ```
 */
export function packMamba3State(d: Mamba3Dims, B: number, st: Mamba3HostState): Float32Array {
  const { H, P, N, rank, angles } = d;
  const stride = mamba3StateStride(d);
  const out = new Float32Array(B * H * stride);
  for (let bh = 0; bh < B * H; bh++) {
    const o = bh * stride;
    out.set(st.ssm.subarray(bh * P * N, (bh + 1) * P * N), o);
    out.set(st.vPrev.subarray(bh * rank * P, (bh + 1) * rank * P), o + P * N);
    for (let tile = 0; tile < mamba3Tiles(d); tile++) {
      const to = o + P * N + rank * P + tile * (rank * N + angles);
      out.set(st.kPrev.subarray(bh * rank * N, (bh + 1) * rank * N), to);
      out.set(st.theta.subarray(bh * angles, (bh + 1) * angles), to + rank * N);
    }
  }
  return out;
}

/**
 * Reads a GPU-layout state back, one host state per P-tile's copy of k_prev and θ (they must all agree).
 *
 * @example
 * ```ts
 * const tiles = unpackMamba3State(d, 1, await rt.readFloat(state.ssm)); // tiles[0].ssm, tiles[0].theta, ...
 * ```
 */
export function unpackMamba3State(d: Mamba3Dims, B: number, data: ArrayLike<number>): Mamba3HostState[] {
  const { H, P, N, rank, angles } = d;
  const stride = mamba3StateStride(d);
  const out: Mamba3HostState[] = [];
  for (let tile = 0; tile < mamba3Tiles(d); tile++) {
    const st = mamba3ZeroHostState(d, B);
    for (let bh = 0; bh < B * H; bh++) {
      const o = bh * stride;
      const to = o + P * N + rank * P + tile * (rank * N + angles);
      for (let i = 0; i < P * N; i++) st.ssm[bh * P * N + i] = data[o + i];
      for (let i = 0; i < rank * P; i++) st.vPrev[bh * rank * P + i] = data[o + P * N + i];
      for (let i = 0; i < rank * N; i++) st.kPrev[bh * rank * N + i] = data[to + i];
      for (let i = 0; i < angles; i++) st.theta[bh * angles + i] = data[to + rank * N + i];
    }
    out.push(st);
  }
  return out;
}
