/**
 * Shapes shared by the gated delta rule kernels (recurrent and chunked).
 *
 * Shape glossary (Gated DeltaNet paper, Yang et al. 2024, and transformers' Qwen3NextGatedDeltaNet):
 *   B   batch                      L   sequence length (tokens)
 *   Hk  key/query heads            Hv  value heads (a multiple of Hk; value head h reads key head h / (Hv / Hk))
 *   dk  key head dimension         dv  value head dimension
 *   S   state (B, Hv, dk, dv), f32: o_t = S_tᵀ q_t with S_t = a_t (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ
 *
 * q, k and v are read from buffers through a row stride and an offset, so the kernels read
 * them straight out of the causal conv's packed (B, L, 2·Hk·dk + Hv·dv) output, or from three
 * separate (B, L, heads, dim) tensors. Element i of head h of token (b, t) of q is at
 * `(b·L + t)·qkStride + qOffset + h·dk + i`.
 */
import type { UniformLayout } from '@statespace/core';

/** Sizes and the q/k/v addressing of one gated delta rule call. */
export interface DeltaRuleShape {
  batch: number;
  seqlen: number;
  numKeyHeads: number;
  numValueHeads: number;
  headKDim: number;
  headVDim: number;
  /** Element offset of q (and of k, v) inside a token row of its buffer. */
  qOffset: number;
  kOffset: number;
  vOffset: number;
  /** Elements between consecutive tokens of q and k (the same buffer layout for both). */
  qkStride: number;
  /** Elements between consecutive tokens of v. */
  vStride: number;
}

/** Attributes of the delta rule kernels. */
export interface DeltaRuleAttrs {
  /** L2-normalise q and k per head (transformers' `use_qk_l2norm_in_kernel`, eps 1e-6). Default true. */
  useQkL2Norm?: boolean;
  /** Query scale; default 1/sqrt(dk). */
  scale?: number;
}

/** Largest head_k_dim the kernels hold in per-thread state columns. */
export const MAX_HEAD_K_DIM = 256;

/** L2 norm epsilon of transformers' `l2norm` (aligned with the FLA library). */
export const L2NORM_EPS = 1e-6;

export const deltaRuleLayout = {
  B: 'u32',
  L: 'u32',
  Hv: 'u32',
  rep: 'u32',
  dv: 'u32',
  qOff: 'u32',
  kOff: 'u32',
  vOff: 'u32',
  qkStride: 'u32',
  vStride: 'u32',
  scale: 'f32',
  l2norm: 'u32',
} as const satisfies UniformLayout;

/** Uniform values common to every delta rule kernel. */
export function deltaRuleUniforms(shape: DeltaRuleShape, attrs: DeltaRuleAttrs): Record<keyof typeof deltaRuleLayout, number> {
  return {
    B: shape.batch,
    L: shape.seqlen,
    Hv: shape.numValueHeads,
    rep: shape.numValueHeads / shape.numKeyHeads,
    dv: shape.headVDim,
    qOff: shape.qOffset,
    kOff: shape.kOffset,
    vOff: shape.vOffset,
    qkStride: shape.qkStride,
    vStride: shape.vStride,
    scale: attrs.scale ?? 1 / Math.sqrt(shape.headKDim),
    l2norm: attrs.useQkL2Norm ?? true ? 1 : 0,
  };
}

/**
 * WGSL helpers reading q and k through the strided layout: `qAt(b, t, hk, i)`, `kAt(b, t, hk, i)`.
 * Expects bindings named `q`, `k` and the constant `DK`.
 */
export const WGSL_QK_ACCESS = `
fn qAt(b: u32, t: u32, hk: u32, i: u32) -> f32 { return q[(b * u.L + t) * u.qkStride + u.qOff + hk * DK + i]; }
fn kAt(b: u32, t: u32, hk: u32, i: u32) -> f32 { return k[(b * u.L + t) * u.qkStride + u.kOff + hk * DK + i]; }
`;

/** WGSL helper reading v through the strided layout: `vAt(b, t, h, j)`. Expects a binding named `v`. */
export const WGSL_V_ACCESS = `
fn vAt(b: u32, t: u32, h: u32, j: u32) -> f32 { return v[(b * u.L + t) * u.vStride + u.vOff + h * u.dv + j]; }
`;
