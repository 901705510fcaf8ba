/**
 * RMSNorm with the gate applied after the norm, Qwen3-Next's `Qwen3NextRMSNormGated`
 * (FLA's `FusedRMSNormGated`): y = w · (x / sqrt(mean(x²) + eps)) · silu(z), over groups of G
 * features (one value head). The weight multiplies as is (initialised to ones, not 1 + w).
 *
 * This differs from core's `gatedRmsNorm` (Mamba-2's norm(x · silu(z)) · w, gate before the norm).
 *
 * Shape glossary:
 *   M  rows (tokens)     D  features per row     G  features per norm group (head_v_dim)
 *
 * One workgroup of {@link RMS_NORM_GATED_THREADS} threads per (row, group); tree reduction of the
 * sum of squares in workgroup memory.
 */
import {
  type DType,
  type KernelDescriptor,
  type Runtime,
  type Tensor,
  type TensorLike,
  type UniformLayout,
  StatespaceError,
  WGSL_BUILTINS,
  WGSL_LINEAR_WORKGROUP,
  linearDispatch,
  wgslBindings,
  wgslLoadFloat,
  wgslStorageType,
  memoWgsl,
} from '@statespace/core';

/** Threads per workgroup (one workgroup per norm group). */
export const RMS_NORM_GATED_THREADS = 64;

const layout = { groups: 'u32', G: 'u32', eps: 'f32' } as const satisfies UniformLayout;

/**
 * Builds the norm-then-gate kernel over `groups` groups of G features. Bindings:
 * x (groups·G), z (groups·G), w (G), y (groups·G).
 *
 * @example
 * ```ts
 * const kernel = createRmsNormGatedKernel({ groups: tokens * numValueHeads, G: headVDim, eps: 1e-6 });
 * ```
 */
export function createRmsNormGatedKernel(shape: { groups: number; G: number; eps: number }, attrs: { weightDtype?: DType } = {}): KernelDescriptor {
  const wDtype = attrs.weightDtype ?? 'f32';
  const T = RMS_NORM_GATED_THREADS;
  const bindings = [
    { name: 'x', type: 'f32', access: 'read' }, // (M, D)
    { name: 'z', type: 'f32', access: 'read' }, // (M, D)
    { name: 'w', type: wgslStorageType(wDtype), access: 'read' }, // (G)
    { name: 'y', type: 'f32', access: 'read_write' }, // (M, D)
  ] as const;
  const wgsl = memoWgsl('rms_norm_gated', `${wDtype}|t${T}`, () => `${wgslBindings(layout, bindings)}
${wgslLoadFloat('loadW', 'w', wDtype)}
const T = ${T}u;
var<workgroup> red: array<f32, ${T}>;
@compute @workgroup_size(${T})
fn main(${WGSL_BUILTINS}) {
  let grp = ${WGSL_LINEAR_WORKGROUP};
  // keep the barriers in uniform control flow: out-of-range workgroups reduce zeros
  let valid = grp < u.groups;
  let base = min(grp, u.groups - 1u) * u.G;
  var s = 0.0;
  for (var j = li; j < u.G; j += T) { let v = x[base + j]; s += v * v; }
  red[li] = s;
  workgroupBarrier();
  for (var stride = T / 2u; stride > 0u; stride >>= 1u) {
    if (li < stride) { red[li] += red[li + stride]; }
    workgroupBarrier();
  }
  let inv = inverseSqrt(red[0] / f32(u.G) + u.eps);
  if (!valid) { return; }
  for (var j = li; j < u.G; j += T) {
    let zv = z[base + j];
    y[base + j] = loadW(j) * (x[base + j] * inv) * (zv / (1.0 + exp(-zv)));
  }
}`);
  return {
    name: 'rms_norm_gated',
    cacheKey: `${wDtype}|t${T}`,
    wgsl,
    workgroupSize: [T, 1, 1],
    dispatch: linearDispatch(shape.groups),
    bindings,
    uniformLayout: layout,
    uniforms: { groups: shape.groups, G: shape.G, eps: shape.eps },
  };
}

/**
 * Qwen3-Next's gated RMSNorm, norm before gate: y = w · x / sqrt(mean(x²) + eps) · silu(z),
 * normalising each group of `weight.size` features (one head) of x.
 *
 * @param x (..., D) f32 with D a multiple of the weight's length
 * @param z (..., D) f32, the gate
 * @param weight (G) f32/f16/bf16
 * @example
 * ```ts
 * const y = rmsNormGated(rt, o, z, weights['norm.weight'], 1e-6); // o, z: (batch, seqlen, Hv * dv)
 * ```
 */
export function rmsNormGated(runtime: Runtime, x: TensorLike, z: TensorLike, weight: TensorLike, eps: number, options: { out?: Tensor } = {}): Tensor {
  const op = 'rmsNormGated';
  const G = weight.size;
  if (x.dtype !== 'f32' || z.dtype !== 'f32') throw new StatespaceError('DTYPE_MISMATCH', `${op}: x and z must be f32`);
  const D = x.shape[x.shape.length - 1];
  if (G === 0 || D % G !== 0) {
    throw new StatespaceError('SHAPE_MISMATCH', `${op}: weight has shape [${weight.shape.join(',')}], expected [G] with G dividing the last dimension of x (${D})`);
  }
  if (z.size !== x.size) throw new StatespaceError('SHAPE_MISMATCH', `${op}: z has shape [${z.shape.join(',')}], expected ${x.size} elements like x [${x.shape.join(',')}]`);
  const y = options.out ?? runtime.empty(x.shape, 'f32', `${op}.y`);
  const groups = x.size / G;
  if (groups > 0) runtime.run(createRmsNormGatedKernel({ groups, G, eps }, { weightDtype: weight.dtype }), [x, z, weight, y]);
  return y;
}

/**
 * CPU reference of {@link rmsNormGated} (f64 sums).
 *
 * @example
 * ```ts
 * const y = rmsNormGatedReference(x, z, w, 1e-6);
 * ```
 */
export function rmsNormGatedReference(x: Float32Array, z: Float32Array, weight: Float32Array, eps: number): Float32Array {
  const G = weight.length;
  const y = new Float32Array(x.length);
  for (let base = 0; base < x.length; base += G) {
    let s = 0;
    for (let j = 0; j < G; j++) s += x[base + j] * x[base + j];
    const inv = 1 / Math.sqrt(s / G + eps);
    for (let j = 0; j < G; j++) {
      const zv = z[base + j];
      y[base + j] = weight[j] * (x[base + j] * inv) * (zv / (1 + Math.exp(-zv)));
    }
  }
  return y;
}
