/**
 * CPU reference of a whole Qwen3NextGatedDeltaNet layer, transcribed from transformers 5.17's
 * `Qwen3NextGatedDeltaNet.forward` (no attention mask), continued from a given state like the
 * cached decode path. Slow and plain: for tests.
 */
import type { GatedDeltaNetConfig } from './gated-deltanet-mixer.js';
import { gatedDeltaRuleReference } from './gated-delta-rule.js';

/** Host copies of a layer's weights, keyed like {@link GatedDeltaNetMixer}'s (all f32). */
export type GatedDeltaNetHostWeights = Readonly<Record<string, Float32Array>>;

/** Host copies of a layer state: conv (B, convDim, k−1) and ssm (B, Hv, dk, dv). */
export interface GatedDeltaNetHostState {
  conv: Float32Array;
  ssm: Float32Array;
}

function linear(x: Float32Array, w: Float32Array, rows: number, out: number, inp: number): Float64Array {
  const y = new Float64Array(rows * out);
  for (let m = 0; m < rows; m++) {
    for (let n = 0; n < out; n++) {
      let s = 0;
      for (let k = 0; k < inp; k++) s += x[m * inp + k] * w[n * inp + k];
      y[m * out + n] = s;
    }
  }
  return y;
}

const silu = (v: number) => v / (1 + Math.exp(-v));
const softplus = (v: number) => (v > 20 ? v : Math.log1p(Math.exp(v)));

/**
 * Runs the layer on x (B, L, hidden) from `state` (zeros when omitted). Returns y (B, L, hidden)
 * and the new state.
 *
 * @example
 * ```ts
 * const { y, state } = gatedDeltaNetReference(x, hostWeights, config, 1, 37);
 * ```
 */
export function gatedDeltaNetReference(
  x: Float32Array,
  weights: GatedDeltaNetHostWeights,
  config: GatedDeltaNetConfig,
  batch: number,
  seqlen: number,
  state?: GatedDeltaNetHostState,
): { y: Float32Array; state: GatedDeltaNetHostState } {
  const { hiddenSize: D, numKeyHeads: Hk, numValueHeads: Hv, headKDim: dk, headVDim: dv, convKernel: K, normEps } = config;
  const B = batch;
  const L = seqlen;
  const N = B * L;
  const r = Hv / Hk;
  const keyDim = Hk * dk;
  const valueDim = Hv * dv;
  const convDim = 2 * keyDim + valueDim;
  // projections, then fix_query_key_value_ordering: view (N, Hk, 2dk + 2r·dv) and split
  const P = 2 * keyDim + 2 * valueDim;
  const qkvz = linear(x, weights['in_proj_qkvz.weight'], N, P, D);
  const ba = linear(x, weights['in_proj_ba.weight'], N, 2 * Hv, D);
  const per = 2 * dk + 2 * r * dv;
  const mixed = new Float64Array(N * convDim); // cat(q, k, v) with heads flattened
  const z = new Float64Array(N * valueDim);
  const bRaw = new Float64Array(N * Hv);
  const aRaw = new Float64Array(N * Hv);
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < Hk; g++) {
      const o = n * P + g * per;
      for (let i = 0; i < dk; i++) mixed[n * convDim + g * dk + i] = qkvz[o + i];
      for (let i = 0; i < dk; i++) mixed[n * convDim + keyDim + g * dk + i] = qkvz[o + dk + i];
      for (let j = 0; j < r * dv; j++) mixed[n * convDim + 2 * keyDim + g * r * dv + j] = qkvz[o + 2 * dk + j];
      for (let j = 0; j < r * dv; j++) z[n * valueDim + g * r * dv + j] = qkvz[o + 2 * dk + r * dv + j];
      for (let i = 0; i < r; i++) {
        bRaw[n * Hv + g * r + i] = ba[n * 2 * Hv + g * 2 * r + i];
        aRaw[n * Hv + g * r + i] = ba[n * 2 * Hv + g * 2 * r + r + i];
      }
    }
  }
  // depthwise causal conv (padding k−1, first L outputs) continuing from the state, then silu
  const convW = weights['conv1d.weight']; // (convDim, 1, K)
  const convState = new Float32Array(B * convDim * (K - 1));
  const conv = new Float32Array(N * convDim);
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < convDim; c++) {
      const seq: number[] = [];
      for (let j = 0; j < K - 1; j++) seq.push(state ? state.conv[(b * convDim + c) * (K - 1) + j] : 0);
      for (let t = 0; t < L; t++) seq.push(mixed[(b * L + t) * convDim + c]);
      for (let t = 0; t < L; t++) {
        let acc = 0;
        for (let j = 0; j < K; j++) acc += convW[c * K + j] * seq[t + j];
        conv[(b * L + t) * convDim + c] = silu(acc);
      }
      for (let j = 0; j < K - 1; j++) convState[(b * convDim + c) * (K - 1) + j] = seq[L + j];
    }
  }
  const q = new Float32Array(N * keyDim);
  const k = new Float32Array(N * keyDim);
  const v = new Float32Array(N * valueDim);
  for (let n = 0; n < N; n++) {
    q.set(conv.subarray(n * convDim, n * convDim + keyDim), n * keyDim);
    k.set(conv.subarray(n * convDim + keyDim, n * convDim + 2 * keyDim), n * keyDim);
    v.set(conv.subarray(n * convDim + 2 * keyDim, (n + 1) * convDim), n * valueDim);
  }
  const beta = new Float32Array(N * Hv);
  const g = new Float32Array(N * Hv);
  const aLog = weights['A_log'];
  const dtBias = weights['dt_bias'];
  for (let n = 0; n < N; n++) {
    for (let h = 0; h < Hv; h++) {
      beta[n * Hv + h] = 1 / (1 + Math.exp(-bRaw[n * Hv + h]));
      g[n * Hv + h] = -Math.exp(aLog[h]) * softplus(aRaw[n * Hv + h] + dtBias[h]);
    }
  }
  // the delta rule (q, k repeated over value heads inside; l2norm and 1/sqrt(dk) scaling inside)
  const dims = { batch: B, seqlen: L, numKeyHeads: Hk, numValueHeads: Hv, headKDim: dk, headVDim: dv };
  const rule = gatedDeltaRuleReference(q, k, v, g, beta, state?.ssm, dims, { useQkL2Norm: true });
  // Qwen3NextRMSNormGated per value head: weight * (x * rsqrt(mean(x²) + eps)) * silu(z)
  const normW = weights['norm.weight'];
  const normed = new Float32Array(N * valueDim);
  for (let row = 0; row < N * Hv; row++) {
    let s = 0;
    for (let j = 0; j < dv; j++) s += rule.out[row * dv + j] ** 2;
    const inv = 1 / Math.sqrt(s / dv + normEps);
    for (let j = 0; j < dv; j++) {
      normed[row * dv + j] = normW[j] * (rule.out[row * dv + j] * inv) * silu(z[row * dv + j]);
    }
  }
  const y = Float32Array.from(linear(normed, weights['out_proj.weight'], N, D, valueDim));
  return { y, state: { conv: convState, ssm: rule.state } };
}
