/**
 * Mamba-3's output norm (`is_outproj_norm`; mamba3.py's `RMSNormGated(d_inner, group_size=headdim,
 * norm_before_gate=True)`), fused with MIMO's down-projection:
 *
 *   out[t, h, p] = Σ_r mimo_o[h, r, p] · rms_P(y_r[t, h, :])[p] · w[h·P + p] · silu(z[t, h, p] · mimo_z[h, r, p])
 *
 * where rms_P normalises each head's P features of each rank (SISO: rank = 1 and no MIMO weights). One workgroup
 * per (token, head): a tree reduction per rank over P, then each thread writes its features.
 *
 * Shape glossary (mamba3-shape.ts): T tokens (B·L), H heads, P head dim, I = H·P, rank (MIMO rank; 1 for SISO), W in_proj width.
 */
import {
  type KernelDescriptor,
  type Runtime,
  StatespaceError,
  type Tensor,
  type TensorLike,
  type UniformLayout,
  WGSL_BUILTINS,
  WGSL_LINEAR_WORKGROUP,
  linearDispatch,
  memoWgsl,
  wgslActivations,
  wgslBindings,
} from '@statespace/core';
import type { Mamba3Dims } from './mamba3-shape.js';

const THREADS = 64;
const layout = { T: 'u32', H: 'u32', P: 'u32', I: 'u32', W: 'u32', eps: 'f32' } as const satisfies UniformLayout;

/**
 * Builds the output-norm kernel.
 *
 * @example
 * ```ts
 * const kernel = createMamba3OutNormKernel({ T: 37, H: 7, P: 16, W: 285 }, { rank: 1, mimo: false }, 1e-5);
 * ```
 */
export function createMamba3OutNormKernel(shape: { T: number; H: number; P: number; W: number }, attrs: { rank: number; mimo: boolean }, eps: number): KernelDescriptor {
  const { rank, mimo } = attrs;
  const bindings = [
    { name: 'yr', type: 'f32', access: 'read' }, // (T, rank, I)
    { name: 'zx', type: 'f32', access: 'read' }, // (T, W): z is its first I columns
    { name: 'w', type: 'f32', access: 'read' }, // (I)
    ...(mimo ? [{ name: 'mimoZ', type: 'f32', access: 'read' } as const, { name: 'mimoO', type: 'f32', access: 'read' } as const] : []), // (H, rank, P)
    { name: 'out', type: 'f32', access: 'read_write' }, // (T, I)
  ] as const;
  const cacheKey = `rank${rank}_${mimo ? 'mimo' : 'siso'}`;
  const wgsl = memoWgsl('mamba3_out_norm', cacheKey, () => `${wgslBindings(layout, bindings)}
${wgslActivations()}
const rank = ${rank}u;
var<workgroup> red: array<f32, ${THREADS}>;
var<workgroup> inv: array<f32, ${rank}>;

@compute @workgroup_size(${THREADS})
fn main(${WGSL_BUILTINS}) {
  let k = ${WGSL_LINEAR_WORKGROUP};
  if (k >= u.T * u.H) { return; }
  let h = k % u.H;
  let t = k / u.H;
  let I = u.I;
  for (var r = 0u; r < rank; r++) {
    var ss = 0.0;
    for (var p = li; p < u.P; p += ${THREADS}u) { let v = yr[(t * rank + r) * I + h * u.P + p]; ss += v * v; }
    red[li] = ss;
    workgroupBarrier();
    for (var w2 = ${THREADS / 2}u; w2 > 0u; w2 /= 2u) {
      if (li < w2) { red[li] += red[li + w2]; }
      workgroupBarrier();
    }
    if (li == 0u) { inv[r] = inverseSqrt(red[0] / f32(u.P) + u.eps); }
    workgroupBarrier();
  }
  for (var p = li; p < u.P; p += ${THREADS}u) {
    let z = zx[t * u.W + h * u.P + p];
    var acc = 0.0;
    for (var r = 0u; r < rank; r++) {
      let m = (h * rank + r) * u.P + p;
      acc += ${mimo ? 'mimoO[m] * ' : ''}yr[(t * rank + r) * I + h * u.P + p] * inv[r] * w[h * u.P + p] * silu_(z${mimo ? ' * mimoZ[m]' : ''});
    }
    out[t * I + h * u.P + p] = acc;
  }
}`);
  return {
    name: 'mamba3_out_norm',
    cacheKey,
    wgsl,
    workgroupSize: [THREADS, 1, 1],
    dispatch: linearDispatch(shape.T * shape.H),
    bindings,
    uniformLayout: layout,
    uniforms: { T: shape.T, H: shape.H, P: shape.P, I: shape.H * shape.P, W: shape.W, eps },
  };
}

/**
 * The output norm of the per-rank scan output yr (B, L, rank, I) with z from zxbcdt (B, L, W).
 *
 * @returns (B, L, I)
 * @throws StatespaceError `SHAPE_MISMATCH` / `DTYPE_MISMATCH` / `MISSING_WEIGHT` naming the input.
 * @example
 * ```ts
 * const y = mamba3OutNorm(rt, yr, zxbcdt, w['norm.weight'], d, { mimoZ, mimoO });
 * ```
 */
export function mamba3OutNorm(
  runtime: Runtime,
  yr: TensorLike,
  zxbcdt: TensorLike,
  weight: TensorLike,
  d: Mamba3Dims,
  mimo?: { mimoZ: TensorLike; mimoO: TensorLike },
): Tensor {
  const op = 'mamba3OutNorm';
  const [B, L] = zxbcdt.shape;
  const want = [B, L, d.rank, d.I];
  if (yr.shape.length !== 4 || yr.shape.some((v, i) => v !== want[i])) throw new StatespaceError('SHAPE_MISMATCH', `${op}: yr has shape [${yr.shape.join(',')}], expected [batch=${B}, seqlen=${L}, rank=${d.rank}, I=${d.I}]`);
  if (zxbcdt.shape.length !== 3 || zxbcdt.shape[2] !== d.W) throw new StatespaceError('SHAPE_MISMATCH', `${op}: zxbcdt has shape [${zxbcdt.shape.join(',')}], expected [batch, seqlen, W=${d.W}]`);
  if (weight.shape.length !== 1 || weight.shape[0] !== d.I) throw new StatespaceError('SHAPE_MISMATCH', `${op}: norm weight has shape [${weight.shape.join(',')}], expected [I=${d.I}]`);
  if (d.rank > 1 && !mimo) throw new StatespaceError('MISSING_WEIGHT', `${op}: rank ${d.rank} needs mimo_z and mimo_o`);
  for (const [name, t] of [['yr', yr], ['zxbcdt', zxbcdt], ['norm weight', weight], ...(mimo ? [['mimoZ', mimo.mimoZ], ['mimoO', mimo.mimoO]] : [])] as [string, TensorLike][]) {
    if (t.dtype !== 'f32') throw new StatespaceError('DTYPE_MISMATCH', `${op}: ${name} must be f32, got ${t.dtype}`);
  }
  const out = runtime.empty([B, L, d.I], 'f32', 'mamba3.outNorm');
  const kernel = createMamba3OutNormKernel({ T: B * L, H: d.H, P: d.P, W: d.W }, { rank: d.rank, mimo: !!mimo }, d.eps);
  runtime.run(kernel, [yr, zxbcdt, weight, ...(mimo ? [mimo.mimoZ, mimo.mimoO] : []), out]);
  return out;
}
