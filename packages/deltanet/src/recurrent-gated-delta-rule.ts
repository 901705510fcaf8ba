/**
 * The recurrent form of the gated delta rule: one token after another, the decode path
 * (transformers' `torch_recurrent_gated_delta_rule`, FLA's `fused_recurrent_gated_delta_rule`).
 *
 * Shape glossary: see ./delta-rule-shape.ts (B, L, Hk, Hv, dk, dv, S).
 *
 * Per token t and value head h (Gated DeltaNet paper, eq. 10):
 *   q̂ = l2norm(q_t)·scale, k̂ = l2norm(k_t)
 *   S ← exp(g_t)·S;  δ = β_t (v_t − Sᵀ k̂);  S ← S + k̂ δᵀ;  o_t = Sᵀ q̂
 *
 * One workgroup per (dv tile, value head, batch); each thread owns one column j of S (dk values
 * in registers), so the update needs no reduction across threads. q_t and k_t of the key head
 * are staged in workgroup memory and shared by the tile. One dispatch covers all L tokens,
 * so decode is one fused kernel per token.
 */
import { type KernelDescriptor, wgslBindings,
  memoWgsl,
} from '@statespace/core';
import {
  type DeltaRuleAttrs,
  type DeltaRuleShape,
  L2NORM_EPS,
  WGSL_QK_ACCESS,
  WGSL_V_ACCESS,
  deltaRuleLayout,
  deltaRuleUniforms,
} from './delta-rule-shape.js';

/** Value columns (threads) per workgroup of the recurrent kernel. */
export const RECURRENT_TILE_V = 32;

/**
 * Builds the recurrent gated delta rule kernel. Bindings, in order:
 * q, k, v (strided, see {@link DeltaRuleShape}), g (B, L, Hv), beta (B, L, Hv),
 * state (B, Hv, dk, dv) read and written in place, out (B, L, Hv, dv).
 *
 * @example
 * ```ts
 * const kernel = createRecurrentGatedDeltaRuleKernel(shape, { useQkL2Norm: true });
 * runtime.run(kernel, [q, k, v, g, beta, state, out]);
 * ```
 */
export function createRecurrentGatedDeltaRuleKernel(shape: DeltaRuleShape, attrs: DeltaRuleAttrs = {}): KernelDescriptor {
  const DK = shape.headKDim;
  const TV = RECURRENT_TILE_V;
  const bindings = [
    { name: 'q', type: 'f32', access: 'read' }, // (B, L, ·) strided, Hk heads of dk
    { name: 'k', type: 'f32', access: 'read' }, // (B, L, ·) strided, Hk heads of dk
    { name: 'v', type: 'f32', access: 'read' }, // (B, L, ·) strided, Hv heads of dv
    { name: 'g', type: 'f32', access: 'read' }, // (B, L, Hv) log decay
    { name: 'beta', type: 'f32', access: 'read' }, // (B, L, Hv)
    { name: 'state', type: 'f32', access: 'read_write' }, // (B, Hv, dk, dv)
    { name: 'out', type: 'f32', access: 'read_write' }, // (B, L, Hv, dv)
  ] as const;
  const wgsl = memoWgsl('gated_delta_rule_recurrent', `dk${DK}|tv${TV}`, () => `${wgslBindings(deltaRuleLayout, bindings)}
const DK = ${DK}u;
const TV = ${TV}u;
${WGSL_QK_ACCESS}${WGSL_V_ACCESS}
var<workgroup> qs: array<f32, ${DK}>;
var<workgroup> ks: array<f32, ${DK}>;

@compute @workgroup_size(${TV})
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let h = wid.y;
  let b = wid.z;
  let hk = h / u.rep;
  let j = wid.x * TV + li;
  let inRange = j < u.dv;
  let jj = min(j, u.dv - 1u);
  let sBase = (b * u.Hv + h) * DK * u.dv + jj;
  var S: array<f32, ${DK}>; // column jj of the state
  for (var i = 0u; i < DK; i++) { S[i] = state[sBase + i * u.dv]; }
  for (var t = 0u; t < u.L; t++) {
    for (var i = li; i < DK; i += TV) {
      qs[i] = qAt(b, t, hk, i);
      ks[i] = kAt(b, t, hk, i);
    }
    workgroupBarrier();
    var qq = 0.0;
    var kk = 0.0;
    for (var i = 0u; i < DK; i++) { qq += qs[i] * qs[i]; kk += ks[i] * ks[i]; }
    var qn = u.scale;
    var kn = 1.0;
    if (u.l2norm != 0u) {
      qn = inverseSqrt(qq + ${L2NORM_EPS}) * u.scale;
      kn = inverseSqrt(kk + ${L2NORM_EPS});
    }
    let gi = (b * u.L + t) * u.Hv + h;
    let decay = exp(g[gi]);
    var kv = 0.0;
    for (var i = 0u; i < DK; i++) {
      S[i] *= decay;
      kv += S[i] * ks[i];
    }
    let delta = (vAt(b, t, h, jj) - kv * kn) * beta[gi];
    let kd = delta * kn;
    var o = 0.0;
    for (var i = 0u; i < DK; i++) {
      S[i] += ks[i] * kd;
      o += S[i] * qs[i];
    }
    if (inRange) { out[gi * u.dv + j] = o * qn; }
    workgroupBarrier();
  }
  if (inRange) {
    for (var i = 0u; i < DK; i++) { state[sBase + i * u.dv] = S[i]; }
  }
}`);
  return {
    name: 'gated_delta_rule_recurrent',
    cacheKey: `dk${DK}|tv${TV}`,
    wgsl,
    workgroupSize: [TV, 1, 1],
    dispatch: [Math.ceil(shape.headVDim / TV), shape.numValueHeads, shape.batch],
    bindings,
    uniformLayout: deltaRuleLayout,
    uniforms: deltaRuleUniforms(shape, attrs),
  };
}
