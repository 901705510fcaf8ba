/**
 * The chunked (WY) form of the gated delta rule for prefill: Gated DeltaNet paper
 * (Yang, Kautz, Hatamizadeh 2024) section 3.3, the same algebra as transformers'
 * `torch_chunk_gated_delta_rule`.
 *
 * Shape glossary: see ./delta-rule-shape.ts (B, L, Hk, Hv, dk, dv, S), plus
 *   C   chunk size (≤ 64)            n   tokens in the current chunk (C, or fewer in the last one)
 *   γ   within-chunk cumulative log decay, γ_t = Σ_{s≤t} g_s
 *
 * Inside a chunk, with k̂, q̂ the normalised (and scaled) keys and queries:
 *   Lw[t,s] = β_t (k̂_t·k̂_s) exp(γ_t − γ_s)   for s < t    (strictly lower triangular)
 *   U = (I + Lw)⁻¹ (β ⊙ V),   W = (I + Lw)⁻¹ (β exp(γ) ⊙ K̂)     (forward substitution, the WY representation)
 *   Aqk[t,s] = (q̂_t·k̂_s) exp(γ_t − γ_s)        for s ≤ t
 * and across chunks, carrying S:
 *   V' = U − W S;   O = exp(γ) ⊙ (Q̂ S) + Aqk V';   S ← exp(γ_n) S + (exp(γ_n − γ) ⊙ K̂)ᵀ V'
 *
 * Two kernels:
 *  1. prepare: one workgroup per (chunk, value head, batch), all chunks in parallel; Lw lives in
 *     workgroup memory (packed lower triangle, ≤ 8 KB) and writes [U | W] (B, Hv, Ls, dv + dk),
 *     Aqk (B, Hv, Ls, C) and per-token scales (B, Hv, Ls, 3).
 *  2. scan: one workgroup per (dv tile, value head, batch) walking the chunks in order; each thread
 *     owns one column of S (dk registers), so no chunk states are stored.
 * The dispatcher runs them over segments of the sequence (a multiple of C tokens), so the work
 * buffers stay bounded however long the prompt is; memory is linear in L only through the output.
 */
import { type KernelDescriptor, type UniformLayout, wgslBindings } from '@statespace/core';
import {
  type DeltaRuleAttrs,
  type DeltaRuleShape,
  L2NORM_EPS,
  WGSL_QK_ACCESS,
  WGSL_V_ACCESS,
  deltaRuleLayout,
  deltaRuleUniforms,
} from './delta-rule-shape.js';

/** Largest chunk size (the prepare kernel's triangle must fit 16 KB of workgroup memory). */
export const MAX_CHUNK_SIZE = 64;
/** Threads of the prepare kernel. */
export const CHUNK_PREPARE_THREADS = 256;
/** Value columns (threads) per workgroup of the scan kernel. */
export const CHUNK_SCAN_TILE_V = 32;
/** Floats per token in the `aux` work buffer: q scale, k scale to the chunk end, chunk log decay. */
export const CHUNK_AUX_WIDTH = 3;

/** A segment of the sequence processed by one prepare + scan pair. */
export interface ChunkSegment {
  /** Chunk size C. */
  chunkSize: number;
  /** First token of the segment. */
  start: number;
  /** Tokens in the segment (a multiple of C unless it is the last one). */
  length: number;
}

const chunkLayout = { ...deltaRuleLayout, C: 'u32', t0: 'u32', Ls: 'u32' } as const satisfies UniformLayout;

function chunkUniforms(shape: DeltaRuleShape, attrs: DeltaRuleAttrs, segment: ChunkSegment): Record<string, number> {
  return { ...deltaRuleUniforms(shape, attrs), C: segment.chunkSize, t0: segment.start, Ls: segment.length };
}

/**
 * Builds the chunk-parallel half of the chunked gated delta rule. Bindings, in order:
 * q, k, v (strided, see {@link DeltaRuleShape}), g (B, L, Hv), beta (B, L, Hv),
 * wu (B, Hv, Ls, dv + dk) = [U | W], aqk (B, Hv, Ls, C), aux (B, Hv, Ls, 3).
 *
 * @example
 * ```ts
 * const k1 = createChunkGatedDeltaRulePrepareKernel(shape, {}, { chunkSize: 64, start: 0, length: L });
 * runtime.run(k1, [q, k, v, g, beta, wu, aqk, aux]);
 * ```
 */
export function createChunkGatedDeltaRulePrepareKernel(shape: DeltaRuleShape, attrs: DeltaRuleAttrs, segment: ChunkSegment): KernelDescriptor {
  const DK = shape.headKDim;
  const T = CHUNK_PREPARE_THREADS;
  const CM = MAX_CHUNK_SIZE;
  const bindings = [
    { name: 'q', type: 'f32', access: 'read' }, // (B, L, ·) strided, Hk heads of dk
    { name: 'k', type: 'f32', access: 'read' }, // (B, L, ·) strided, Hk heads of dk
    { name: 'v', type: 'f32', access: 'read' }, // (B, L, ·) strided, Hv heads of dv
    { name: 'g', type: 'f32', access: 'read' }, // (B, L, Hv)
    { name: 'beta', type: 'f32', access: 'read' }, // (B, L, Hv)
    { name: 'wu', type: 'f32', access: 'read_write' }, // (B, Hv, Ls, dv + dk)
    { name: 'aqk', type: 'f32', access: 'read_write' }, // (B, Hv, Ls, C)
    { name: 'aux', type: 'f32', access: 'read_write' }, // (B, Hv, Ls, 3)
  ] as const;
  const wgsl = `${wgslBindings(chunkLayout, bindings)}
const DK = ${DK}u;
const T = ${T}u;
${WGSL_QK_ACCESS}${WGSL_V_ACCESS}
var<workgroup> lw: array<f32, ${(CM * (CM - 1)) / 2}>; // strictly lower triangle of Lw, (t, s<t) at t(t−1)/2 + s
var<workgroup> gam: array<f32, ${CM}>; // γ
var<workgroup> bet: array<f32, ${CM}>; // β
var<workgroup> qsc: array<f32, ${CM}>; // 1/‖q_t‖ · scale
var<workgroup> ksc: array<f32, ${CM}>; // 1/‖k_t‖

@compute @workgroup_size(${T})
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let h = wid.y;
  let b = wid.z;
  let hk = h / u.rep;
  let c0 = u.t0 + wid.x * u.C;
  let n = min(u.C, u.t0 + u.Ls - c0);
  let r0 = (b * u.Hv + h) * u.Ls + (c0 - u.t0);
  if (li < n) {
    var s = 0.0;
    for (var m = 0u; m <= li; m++) { s += g[(b * u.L + c0 + m) * u.Hv + h]; }
    gam[li] = s;
    bet[li] = beta[(b * u.L + c0 + li) * u.Hv + h];
    var qq = 0.0;
    var kk = 0.0;
    for (var i = 0u; i < DK; i++) {
      let qv = qAt(b, c0 + li, hk, i);
      let kv = kAt(b, c0 + li, hk, i);
      qq += qv * qv;
      kk += kv * kv;
    }
    var qn = u.scale;
    var kn = 1.0;
    if (u.l2norm != 0u) {
      qn = inverseSqrt(qq + ${L2NORM_EPS}) * u.scale;
      kn = inverseSqrt(kk + ${L2NORM_EPS});
    }
    qsc[li] = qn;
    ksc[li] = kn;
  }
  workgroupBarrier();
  if (li < n) {
    let a = (r0 + li) * ${CHUNK_AUX_WIDTH}u;
    aux[a] = qsc[li] * exp(gam[li]);
    aux[a + 1u] = ksc[li] * exp(gam[n - 1u] - gam[li]);
    aux[a + 2u] = gam[n - 1u];
  }
  for (var e = li; e < n * n; e += T) {
    let t = e / n;
    let s = e % n;
    if (s > t) { continue; }
    var kk = 0.0;
    var qk = 0.0;
    for (var i = 0u; i < DK; i++) {
      let ks = kAt(b, c0 + s, hk, i);
      kk += kAt(b, c0 + t, hk, i) * ks;
      qk += qAt(b, c0 + t, hk, i) * ks;
    }
    let decay = exp(gam[t] - gam[s]);
    aqk[(r0 + t) * u.C + s] = qk * qsc[t] * ksc[s] * decay;
    if (s < t) { lw[(t * (t - 1u)) / 2u + s] = bet[t] * ksc[t] * ksc[s] * kk * decay; }
  }
  workgroupBarrier();
  // Forward substitution (I + Lw) X = R, one column of [U | W] per thread.
  let width = u.dv + DK;
  for (var col = li; col < width; col += T) {
    var x: array<f32, ${CM}>;
    for (var t = 0u; t < n; t++) {
      var acc: f32;
      if (col < u.dv) {
        acc = vAt(b, c0 + t, h, col) * bet[t];
      } else {
        acc = kAt(b, c0 + t, hk, col - u.dv) * ksc[t] * bet[t] * exp(gam[t]);
      }
      let row = (t * (t - 1u)) / 2u;
      for (var s = 0u; s < t; s++) { acc -= lw[row + s] * x[s]; }
      x[t] = acc;
      wu[(r0 + t) * width + col] = acc;
    }
  }
}`;
  return {
    name: 'gated_delta_rule_chunk_prepare',
    cacheKey: `dk${DK}|t${T}`,
    wgsl,
    workgroupSize: [T, 1, 1],
    dispatch: [Math.ceil(segment.length / segment.chunkSize), shape.numValueHeads, shape.batch],
    bindings,
    uniformLayout: chunkLayout,
    uniforms: chunkUniforms(shape, attrs, segment),
  };
}

/**
 * Builds the sequential half of the chunked gated delta rule: walks the chunks of a segment,
 * carrying S. Bindings, in order: q, k (strided), wu, aqk, aux (from the prepare kernel),
 * state (B, Hv, dk, dv) read and written in place, out (B, L, Hv, dv).
 *
 * @example
 * ```ts
 * const k2 = createChunkGatedDeltaRuleScanKernel(shape, {}, { chunkSize: 64, start: 0, length: L });
 * runtime.run(k2, [q, k, wu, aqk, aux, state, out]);
 * ```
 */
export function createChunkGatedDeltaRuleScanKernel(shape: DeltaRuleShape, attrs: DeltaRuleAttrs, segment: ChunkSegment): KernelDescriptor {
  const DK = shape.headKDim;
  const TV = CHUNK_SCAN_TILE_V;
  const CM = MAX_CHUNK_SIZE;
  const bindings = [
    { name: 'q', type: 'f32', access: 'read' }, // (B, L, ·) strided, Hk heads of dk
    { name: 'k', type: 'f32', access: 'read' }, // (B, L, ·) strided, Hk heads of dk
    { name: 'wu', type: 'f32', access: 'read' }, // (B, Hv, Ls, dv + dk)
    { name: 'aqk', type: 'f32', access: 'read' }, // (B, Hv, Ls, C)
    { name: 'aux', type: 'f32', access: 'read' }, // (B, Hv, Ls, 3)
    { name: 'state', type: 'f32', access: 'read_write' }, // (B, Hv, dk, dv)
    { name: 'out', type: 'f32', access: 'read_write' }, // (B, L, Hv, dv)
  ] as const;
  const wgsl = `${wgslBindings(chunkLayout, bindings)}
const DK = ${DK}u;
const TV = ${TV}u;
${WGSL_QK_ACCESS}

@compute @workgroup_size(${TV})
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let h = wid.y;
  let b = wid.z;
  let hk = h / u.rep;
  let j = wid.x * TV + li;
  let inRange = j < u.dv;
  let jj = min(j, u.dv - 1u);
  let width = u.dv + DK;
  let sBase = (b * u.Hv + h) * DK * u.dv + jj;
  var S: array<f32, ${DK}>; // column jj of the state
  for (var i = 0u; i < DK; i++) { S[i] = state[sBase + i * u.dv]; }
  var vn: array<f32, ${CM}>; // column jj of V' = U − W S
  let chunks = (u.Ls + u.C - 1u) / u.C;
  for (var c = 0u; c < chunks; c++) {
    let c0 = u.t0 + c * u.C;
    let n = min(u.C, u.t0 + u.Ls - c0);
    let r0 = (b * u.Hv + h) * u.Ls + c * u.C;
    for (var t = 0u; t < n; t++) {
      let row = (r0 + t) * width;
      var acc = wu[row + jj];
      for (var i = 0u; i < DK; i++) { acc -= wu[row + u.dv + i] * S[i]; }
      vn[t] = acc;
    }
    for (var t = 0u; t < n; t++) {
      var acc = 0.0;
      for (var i = 0u; i < DK; i++) { acc += qAt(b, c0 + t, hk, i) * S[i]; }
      acc *= aux[(r0 + t) * ${CHUNK_AUX_WIDTH}u];
      let arow = (r0 + t) * u.C;
      for (var s = 0u; s <= t; s++) { acc += aqk[arow + s] * vn[s]; }
      if (inRange) { out[((b * u.L + c0 + t) * u.Hv + h) * u.dv + j] = acc; }
    }
    let decay = exp(aux[r0 * ${CHUNK_AUX_WIDTH}u + 2u]);
    for (var i = 0u; i < DK; i++) { S[i] *= decay; }
    for (var t = 0u; t < n; t++) {
      let w = aux[(r0 + t) * ${CHUNK_AUX_WIDTH}u + 1u] * vn[t];
      for (var i = 0u; i < DK; i++) { S[i] += kAt(b, c0 + t, hk, i) * w; }
    }
  }
  if (inRange) {
    for (var i = 0u; i < DK; i++) { state[sBase + i * u.dv] = S[i]; }
  }
}`;
  return {
    name: 'gated_delta_rule_chunk_scan',
    cacheKey: `dk${DK}|tv${TV}`,
    wgsl,
    workgroupSize: [TV, 1, 1],
    dispatch: [Math.ceil(shape.headVDim / TV), shape.numValueHeads, shape.batch],
    bindings,
    uniformLayout: chunkLayout,
    uniforms: chunkUniforms(shape, attrs, segment),
  };
}

/** Dimensions of the CPU references (q, k (B, L, Hk, dk); v (B, L, Hv, dv); g, beta (B, L, Hv); state (B, Hv, dk, dv)). */
export interface DeltaRuleDims {
  batch: number;
  seqlen: number;
  numKeyHeads: number;
  numValueHeads: number;
  headKDim: number;
  headVDim: number;
}

/**
 * CPU reference of the chunked form, a transcription of transformers' `torch_chunk_gated_delta_rule`
 * (explicit (I + Lw)⁻¹ by row recursion, padding the last chunk), in f64. Returns the output
 * (B, L, Hv, dv) and the final state (B, Hv, dk, dv). Useful to check the chunk algebra itself.
 *
 * @example
 * ```ts
 * const { out, state } = chunkGatedDeltaRuleReference(q, k, v, g, beta, undefined, dims, 64);
 * ```
 */
export function chunkGatedDeltaRuleReference(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  g: Float32Array,
  beta: Float32Array,
  initialState: Float32Array | undefined,
  dims: DeltaRuleDims,
  chunkSize = 64,
  attrs: DeltaRuleAttrs = {},
): { out: Float32Array; state: Float32Array } {
  const { batch: B, seqlen: L, numKeyHeads: Hk, numValueHeads: Hv, headKDim: dk, headVDim: dv } = dims;
  const rep = Hv / Hk;
  const C = chunkSize;
  const scale = attrs.scale ?? 1 / Math.sqrt(dk);
  const norm = attrs.useQkL2Norm ?? true;
  const out = new Float32Array(B * L * Hv * dv);
  const stateOut = new Float32Array(B * Hv * dk * dv);
  const chunks = Math.ceil(L / C);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hv; h++) {
      const hk = Math.floor(h / rep);
      const S = new Float64Array(dk * dv);
      if (initialState) for (let e = 0; e < dk * dv; e++) S[e] = initialState[(b * Hv + h) * dk * dv + e];
      for (let c = 0; c < chunks; c++) {
        // padded chunk: zeros beyond L
        const Q = new Float64Array(C * dk);
        const K = new Float64Array(C * dk);
        const V = new Float64Array(C * dv);
        const G = new Float64Array(C);
        const Bt = new Float64Array(C);
        for (let t = 0; t < C; t++) {
          const tt = c * C + t;
          if (tt >= L) continue;
          let qq = 0;
          let kk = 0;
          for (let i = 0; i < dk; i++) {
            const qi = q[((b * L + tt) * Hk + hk) * dk + i];
            const ki = k[((b * L + tt) * Hk + hk) * dk + i];
            qq += qi * qi;
            kk += ki * ki;
          }
          const qn = norm ? 1 / Math.sqrt(qq + L2NORM_EPS) : 1;
          const kn = norm ? 1 / Math.sqrt(kk + L2NORM_EPS) : 1;
          for (let i = 0; i < dk; i++) {
            Q[t * dk + i] = q[((b * L + tt) * Hk + hk) * dk + i] * qn * scale;
            K[t * dk + i] = k[((b * L + tt) * Hk + hk) * dk + i] * kn;
          }
          for (let j = 0; j < dv; j++) V[t * dv + j] = v[((b * L + tt) * Hv + h) * dv + j];
          G[t] = g[(b * L + tt) * Hv + h];
          Bt[t] = beta[(b * L + tt) * Hv + h];
        }
        for (let t = 1; t < C; t++) G[t] += G[t - 1];
        // attn = -(k_beta kᵀ ⊙ decay), strictly lower; then the row recursion; then + I
        const A = new Float64Array(C * C);
        for (let t = 0; t < C; t++) {
          for (let s = 0; s < t; s++) {
            let d = 0;
            for (let i = 0; i < dk; i++) d += K[t * dk + i] * K[s * dk + i];
            A[t * C + s] = -Bt[t] * d * Math.exp(G[t] - G[s]);
          }
        }
        for (let t = 1; t < C; t++) {
          const row = A.slice(t * C, t * C + t);
          for (let s = 0; s < t; s++) {
            let acc = 0;
            for (let m = 0; m < t; m++) acc += row[m] * A[m * C + s];
            A[t * C + s] = row[s] + acc;
          }
        }
        for (let t = 0; t < C; t++) A[t * C + t] = 1;
        const U = new Float64Array(C * dv);
        const W = new Float64Array(C * dk);
        for (let t = 0; t < C; t++) {
          for (let s = 0; s <= t; s++) {
            const a = A[t * C + s];
            for (let j = 0; j < dv; j++) U[t * dv + j] += a * V[s * dv + j] * Bt[s];
            for (let i = 0; i < dk; i++) W[t * dk + i] += a * K[s * dk + i] * Bt[s] * Math.exp(G[s]);
          }
        }
        const Vn = new Float64Array(C * dv);
        for (let t = 0; t < C; t++) {
          for (let j = 0; j < dv; j++) {
            let acc = U[t * dv + j];
            for (let i = 0; i < dk; i++) acc -= W[t * dk + i] * S[i * dv + j];
            Vn[t * dv + j] = acc;
          }
        }
        for (let t = 0; t < C; t++) {
          const tt = c * C + t;
          if (tt >= L) continue;
          for (let j = 0; j < dv; j++) {
            let acc = 0;
            for (let i = 0; i < dk; i++) acc += Q[t * dk + i] * Math.exp(G[t]) * S[i * dv + j];
            for (let s = 0; s <= t; s++) {
              let d = 0;
              for (let i = 0; i < dk; i++) d += Q[t * dk + i] * K[s * dk + i];
              acc += d * Math.exp(G[t] - G[s]) * Vn[s * dv + j];
            }
            out[((b * L + tt) * Hv + h) * dv + j] = acc;
          }
        }
        const gl = G[C - 1];
        for (let e = 0; e < dk * dv; e++) S[e] *= Math.exp(gl);
        for (let t = 0; t < C; t++) {
          const w = Math.exp(gl - G[t]);
          for (let i = 0; i < dk; i++) {
            const ki = K[t * dk + i] * w;
            for (let j = 0; j < dv; j++) S[i * dv + j] += ki * Vn[t * dv + j];
          }
        }
      }
      for (let e = 0; e < dk * dv; e++) stateOut[(b * Hv + h) * dk * dv + e] = S[e];
    }
  }
  return { out, state: stateOut };
}
