/**
 * The gated delta rule (Gated DeltaNet, Yang, Kautz, Hatamizadeh 2024; the linear-attention mixer of
 * Qwen3-Next): dispatchers choosing the recurrent (decode) or chunked (prefill) kernel, and the plain
 * sequential CPU reference.
 *
 * Shape glossary: see ./delta-rule-shape.ts.
 *   q, k   (B, L, Hk, dk)    v, out (B, L, Hv, dv)    g (log decay), beta (B, L, Hv)    state (B, Hv, dk, dv) f32
 *
 * S_t = exp(g_t) S_{t−1} (I − β_t k̂_t k̂_tᵀ) + β_t v_t k̂_tᵀ, o_t = S_t q̂_t (state written transposed, (dk, dv),
 * as transformers keeps it), with k̂ = l2norm(k), q̂ = l2norm(q)/sqrt(dk).
 */
import { type Runtime, StatespaceError, type Tensor, type TensorLike, assertArg, assertShape } from '@statespace/core';
import {
  type ChunkSegment,
  type DeltaRuleDims,
  CHUNK_AUX_WIDTH,
  MAX_CHUNK_SIZE,
  createChunkGatedDeltaRulePrepareKernel,
  createChunkGatedDeltaRuleScanKernel,
} from './chunk-gated-delta-rule.js';
import { type DeltaRuleAttrs, type DeltaRuleShape, L2NORM_EPS, MAX_HEAD_K_DIM } from './delta-rule-shape.js';
import { createRecurrentGatedDeltaRuleKernel } from './recurrent-gated-delta-rule.js';

/** Options of {@link gatedDeltaRule}. */
export interface GatedDeltaRuleOptions extends DeltaRuleAttrs {
  /** `recurrent` (token by token), `chunked` (WY chunks) or `auto` (recurrent for seqlen 1, else chunked). Default `auto`. */
  form?: 'auto' | 'recurrent' | 'chunked';
  /** Chunk size of the chunked form, 1..64. Default 64. */
  chunkSize?: number;
  /** Tokens per prepare/scan pass of the chunked form (rounded down to a multiple of the chunk size); bounds its work buffers. Default 2048. */
  segmentTokens?: number;
  /** Output tensor (B, L, Hv, dv) to write into. */
  out?: Tensor;
}

const DEFAULT_CHUNK = 64;
const DEFAULT_SEGMENT_TOKENS = 2048;

function runDeltaRule(
  runtime: Runtime,
  op: string,
  shape: DeltaRuleShape,
  buffers: { q: TensorLike; k: TensorLike; v: TensorLike; g: TensorLike; beta: TensorLike; state: TensorLike },
  options: GatedDeltaRuleOptions,
): Tensor {
  const { batch: B, seqlen: L, numKeyHeads: Hk, numValueHeads: Hv, headKDim: dk, headVDim: dv } = shape;
  assertArg(Hk > 0 && Hv % Hk === 0, op, `numValueHeads=${Hv} must be a multiple of numKeyHeads=${Hk}`);
  assertArg(dk >= 1 && dk <= MAX_HEAD_K_DIM, op, `headKDim=${dk} must be in 1..${MAX_HEAD_K_DIM}`);
  assertArg(dv >= 1, op, `headVDim=${dv} must be positive`);
  for (const [name, t] of Object.entries(buffers)) {
    if (t.dtype !== 'f32') throw new StatespaceError('DTYPE_MISMATCH', `${op}: ${name} must be f32, got ${t.dtype}`);
  }
  assertShape(op, 'g', buffers.g.shape, { batch: B, seqlen: L, num_v_heads: Hv });
  assertShape(op, 'beta', buffers.beta.shape, { batch: B, seqlen: L, num_v_heads: Hv });
  assertShape(op, 'state', buffers.state.shape, { batch: B, num_v_heads: Hv, head_k_dim: dk, head_v_dim: dv });
  const out = options.out ?? runtime.empty([B, L, Hv, dv], 'f32', `${op}.out`);
  assertShape(op, 'out', out.shape, { batch: B, seqlen: L, num_v_heads: Hv, head_v_dim: dv });
  if (L === 0 || B === 0) return out;
  const form = options.form ?? 'auto';
  const { q, k, v, g, beta, state } = buffers;
  if (form === 'recurrent' || (form === 'auto' && L === 1)) {
    runtime.run(createRecurrentGatedDeltaRuleKernel(shape, options), [q, k, v, g, beta, state, out]);
    return out;
  }
  const C = options.chunkSize ?? DEFAULT_CHUNK;
  assertArg(Number.isInteger(C) && C >= 1 && C <= MAX_CHUNK_SIZE, op, `chunkSize=${C} must be an integer in 1..${MAX_CHUNK_SIZE}`);
  const seg = Math.max(C, Math.floor((options.segmentTokens ?? DEFAULT_SEGMENT_TOKENS) / C) * C);
  const segLen = Math.min(seg, L);
  const wu = runtime.empty([B, Hv, segLen, dv + dk], 'f32', `${op}.wu`);
  const aqk = runtime.empty([B, Hv, segLen, C], 'f32', `${op}.aqk`);
  const aux = runtime.empty([B, Hv, segLen, CHUNK_AUX_WIDTH], 'f32', `${op}.aux`);
  for (let start = 0; start < L; start += seg) {
    const segment: ChunkSegment = { chunkSize: C, start, length: Math.min(seg, L - start) };
    runtime.run(createChunkGatedDeltaRulePrepareKernel(shape, options, segment), [q, k, v, g, beta, wu, aqk, aux]);
    runtime.run(createChunkGatedDeltaRuleScanKernel(shape, options, segment), [q, k, wu, aqk, aux, state, out]);
  }
  wu.dispose();
  aqk.dispose();
  aux.dispose();
  return out;
}

/**
 * Runs the gated delta rule on separate q, k, v tensors, starting from `state` and leaving the
 * final state in it. Returns o (B, L, Hv, dv). Value head h reads key head h / (Hv / Hk)
 * (transformers' `repeat_interleave`). q and k are L2-normalised inside (eps 1e-6) and q is scaled
 * by 1/sqrt(dk) unless the options say otherwise.
 *
 * @param q (B, L, Hk, dk) f32
 * @param k (B, L, Hk, dk) f32
 * @param v (B, L, Hv, dv) f32
 * @param g (B, L, Hv) f32, log decay (≤ 0 in Qwen3-Next: −exp(A_log)·softplus(a + dt_bias))
 * @param beta (B, L, Hv) f32, write strength in (0, 1)
 * @param state (B, Hv, dk, dv) f32, updated in place
 * @example
 * ```ts
 * const state = rt.zeros([1, 4, 16, 16]);
 * const o = gatedDeltaRule(rt, q, k, v, g, beta, state, { chunkSize: 64 }); // prefill
 * const o1 = gatedDeltaRule(rt, q1, k1, v1, g1, beta1, state);             // one token: recurrent kernel
 * ```
 */
export function gatedDeltaRule(
  runtime: Runtime,
  q: TensorLike,
  k: TensorLike,
  v: TensorLike,
  g: TensorLike,
  beta: TensorLike,
  state: TensorLike,
  options: GatedDeltaRuleOptions = {},
): Tensor {
  const op = 'gatedDeltaRule';
  assertArg(q.shape.length === 4, op, `q must be (batch, seqlen, num_k_heads, head_k_dim), got [${q.shape.join(',')}]`);
  assertArg(v.shape.length === 4, op, `v must be (batch, seqlen, num_v_heads, head_v_dim), got [${v.shape.join(',')}]`);
  const [B, L, Hk, dk] = q.shape;
  const [, , Hv, dv] = v.shape;
  assertShape(op, 'k', k.shape, { batch: B, seqlen: L, num_k_heads: Hk, head_k_dim: dk });
  assertShape(op, 'v', v.shape, { batch: B, seqlen: L, num_v_heads: Hv, head_v_dim: dv });
  const shape: DeltaRuleShape = {
    batch: B,
    seqlen: L,
    numKeyHeads: Hk,
    numValueHeads: Hv,
    headKDim: dk,
    headVDim: dv,
    qOffset: 0,
    kOffset: 0,
    vOffset: 0,
    qkStride: Hk * dk,
    vStride: Hv * dv,
  };
  return runDeltaRule(runtime, op, shape, { q, k, v, g, beta, state }, options);
}

/** Head sizes of {@link gatedDeltaRuleQkv}. */
export interface QkvHeads {
  numKeyHeads: number;
  numValueHeads: number;
  headKDim: number;
  headVDim: number;
}

/**
 * The gated delta rule reading q, k and v from one packed tensor (B, L, 2·Hk·dk + Hv·dv) laid out
 * [q | k | v] per token, as the causal conv of Qwen3NextGatedDeltaNet produces it; no split copies.
 * Otherwise as {@link gatedDeltaRule}.
 *
 * @example
 * ```ts
 * const heads = { numKeyHeads: 2, numValueHeads: 4, headKDim: 16, headVDim: 16 };
 * const o = gatedDeltaRuleQkv(rt, mixedQkv, g, beta, state, heads); // (B, L, 4, 16)
 * ```
 */
export function gatedDeltaRuleQkv(
  runtime: Runtime,
  qkv: TensorLike,
  g: TensorLike,
  beta: TensorLike,
  state: TensorLike,
  heads: QkvHeads,
  options: GatedDeltaRuleOptions = {},
): Tensor {
  const op = 'gatedDeltaRuleQkv';
  const { numKeyHeads: Hk, numValueHeads: Hv, headKDim: dk, headVDim: dv } = heads;
  const width = 2 * Hk * dk + Hv * dv;
  assertArg(qkv.shape.length === 3, op, `qkv must be (batch, seqlen, ${width}), got [${qkv.shape.join(',')}]`);
  const [B, L] = qkv.shape;
  assertShape(op, 'qkv', qkv.shape, { batch: B, seqlen: L, 'q+k+v': width });
  const shape: DeltaRuleShape = {
    batch: B,
    seqlen: L,
    numKeyHeads: Hk,
    numValueHeads: Hv,
    headKDim: dk,
    headVDim: dv,
    qOffset: 0,
    kOffset: Hk * dk,
    vOffset: 2 * Hk * dk,
    qkStride: width,
    vStride: width,
  };
  return runDeltaRule(runtime, op, shape, { q: qkv, k: qkv, v: qkv, g, beta, state }, options);
}

/**
 * Plain sequential CPU reference (transformers' `torch_recurrent_gated_delta_rule`), in f64.
 * Returns o (B, L, Hv, dv) and the final state (B, Hv, dk, dv).
 *
 * @example
 * ```ts
 * const dims = { batch: 1, seqlen: 7, numKeyHeads: 1, numValueHeads: 2, headKDim: 8, headVDim: 4 };
 * const { out, state } = gatedDeltaRuleReference(q, k, v, g, beta, undefined, dims);
 * ```
 */
export function gatedDeltaRuleReference(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  g: Float32Array,
  beta: Float32Array,
  initialState: Float32Array | undefined,
  dims: DeltaRuleDims,
  attrs: DeltaRuleAttrs = {},
): { out: Float32Array; state: Float32Array } {
  const { batch: B, seqlen: L, numKeyHeads: Hk, numValueHeads: Hv, headKDim: dk, headVDim: dv } = dims;
  const rep = Hv / Hk;
  const scale = attrs.scale ?? 1 / Math.sqrt(dk);
  const norm = attrs.useQkL2Norm ?? true;
  const out = new Float32Array(B * L * Hv * dv);
  const stateOut = new Float32Array(B * Hv * dk * dv);
  const qh = new Float64Array(dk);
  const kh = new Float64Array(dk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hv; h++) {
      const hk = Math.floor(h / rep);
      const S = new Float64Array(dk * dv); // S[i, j], (dk, dv)
      if (initialState) for (let e = 0; e < dk * dv; e++) S[e] = initialState[(b * Hv + h) * dk * dv + e];
      for (let t = 0; t < L; t++) {
        let qq = 0;
        let kk = 0;
        for (let i = 0; i < dk; i++) {
          qh[i] = q[((b * L + t) * Hk + hk) * dk + i];
          kh[i] = k[((b * L + t) * Hk + hk) * dk + i];
          qq += qh[i] * qh[i];
          kk += kh[i] * kh[i];
        }
        const qn = (norm ? 1 / Math.sqrt(qq + L2NORM_EPS) : 1) * scale;
        const kn = norm ? 1 / Math.sqrt(kk + L2NORM_EPS) : 1;
        for (let i = 0; i < dk; i++) {
          qh[i] *= qn;
          kh[i] *= kn;
        }
        const decay = Math.exp(g[(b * L + t) * Hv + h]);
        const bt = beta[(b * L + t) * Hv + h];
        for (let e = 0; e < dk * dv; e++) S[e] *= decay;
        for (let j = 0; j < dv; j++) {
          let kv = 0;
          for (let i = 0; i < dk; i++) kv += S[i * dv + j] * kh[i];
          const delta = (v[((b * L + t) * Hv + h) * dv + j] - kv) * bt;
          let o = 0;
          for (let i = 0; i < dk; i++) {
            S[i * dv + j] += kh[i] * delta;
            o += S[i * dv + j] * qh[i];
          }
          out[((b * L + t) * Hv + h) * dv + j] = o;
        }
      }
      for (let e = 0; e < dk * dv; e++) stateOut[(b * Hv + h) * dk * dv + e] = S[e];
    }
  }
  return { out, state: stateOut };
}
