/**
 * RMSNorm, gated RMSNorm and LayerNorm over the last dimension.
 *
 * Shape glossary:
 *   M  rows (tokens)     D  features     G  group size (the norm runs over groups of G features; G = D by default)
 *
 * Gated RMSNorm is Mamba-2's `MambaRMSNormGated` with norm_before_gate=False:
 * h = x · silu(z), y = h / sqrt(mean(h²) + eps) · w.
 * One workgroup per (row, group); the sum of squares is a workgroup tree reduction.
 */
import { StatespaceError } from '../errors.js';
import { type DType, wgslLoadFloat, wgslStorageType } from '../dtype.js';
import { type KernelDescriptor, type UniformLayout, WGSL_BUILTINS, WGSL_LINEAR_WORKGROUP, linearDispatch, memoWgsl, wgslBindings } from '../kernel.js';
import type { Runtime } from '../runtime.js';
import type { Tensor, TensorLike } from '../tensor.js';
import { ROW_THREADS, wgslRowReduce } from './reduce.js';

/** Which normalisation. */
export type NormKind = 'rms' | 'rms_gated' | 'layer';

/** Attributes of a norm kernel. */
export interface NormAttrs {
  kind: NormKind;
  weightDtype?: DType;
  /** Scale by (1 + w) instead of w (Gemma-style weights). */
  unitOffset?: boolean;
  /** LayerNorm has a bias (default true for layer norm). */
  bias?: boolean;
}

// zOff / zStride: where row m's gate starts in z (rms_gated reads z in place, e.g. Mamba-2's z columns of zxbcdt).
const layout = { rows: 'u32', D: 'u32', G: 'u32', eps: 'f32', zOff: 'u32', zStride: 'u32' } as const satisfies UniformLayout;

/**
 * Builds a norm kernel over `rows` rows of `D` features in groups of `G`.
 *
 * @example
 * ```ts
 * const kernel = createNormKernel({ rows: 7, D: 768 }, { kind: 'rms', weightDtype: 'f32' });
 * ```
 */
export function createNormKernel(shape: { rows: number; D: number; G?: number }, attrs: NormAttrs): KernelDescriptor {
  const G = shape.G ?? shape.D;
  const wDtype = attrs.weightDtype ?? 'f32';
  const gated = attrs.kind === 'rms_gated';
  const hasBias = attrs.kind === 'layer' && (attrs.bias ?? true);
  const bindings = [
    { name: 'x', type: 'f32', access: 'read' }, // (M, D)
    ...(gated ? [{ name: 'z', type: 'f32', access: 'read' } as const] : []), // row m at zOff + m·zStride, D wide
    { name: 'w', type: wgslStorageType(wDtype), access: 'read' }, // (D)
    ...(hasBias ? [{ name: 'b', type: 'f32', access: 'read' } as const] : []), // (D)
    { name: 'y', type: 'f32', access: 'read_write' }, // (M, D)
  ] as const;
  const scale = attrs.unitOffset ? '(1.0 + loadW(c))' : 'loadW(c)';
  const val = gated ? 'x[i] * silu(z[zAt(i)])' : 'x[i]';
  const body =
    attrs.kind === 'layer'
      ? `
  var s = 0.0;
  for (var j = li; j < u.G; j += RT) { s += x[base + j]; }
  let mean = wgSum(s, li) / f32(u.G);
  var v = 0.0;
  for (var j = li; j < u.G; j += RT) { let d = x[base + j] - mean; v += d * d; }
  let inv = inverseSqrt(wgSum(v, li) / f32(u.G) + u.eps);
  for (var j = li; j < u.G; j += RT) {
    let c = g * u.G + j;
    y[base + j] = (x[base + j] - mean) * inv * ${scale}${hasBias ? ' + b[c]' : ''};
  }`
      : `
  var s = 0.0;
  for (var j = li; j < u.G; j += RT) { let i = base + j; let h = ${val}; s += h * h; }
  let inv = inverseSqrt(wgSum(s, li) / f32(u.G) + u.eps);
  for (var j = li; j < u.G; j += RT) {
    let i = base + j; let c = g * u.G + j;
    y[i] = ${val} * inv * ${scale};
  }`;
  const wgsl = memoWgsl(`norm_${attrs.kind}`, `${wDtype}|${attrs.unitOffset ? 1 : 0}|${hasBias ? 1 : 0}`, () => `${wgslBindings(layout, bindings)}
${wgslLoadFloat('loadW', 'w', wDtype)}
${wgslRowReduce()}${
    gated
      ? `
fn silu(v: f32) -> f32 { return v / (1.0 + exp(-v)); }
fn zAt(i: u32) -> u32 { return u.zOff + (i / u.D) * u.zStride + i % u.D; }`
      : ''
  }
@compute @workgroup_size(${ROW_THREADS})
fn main(${WGSL_BUILTINS}) {
  let groups = u.D / u.G;
  let rg = ${WGSL_LINEAR_WORKGROUP};
  if (rg >= u.rows * groups) { return; }
  let g = rg % groups;
  let base = rg * u.G;
  ${body}
}`);
  return {
    name: `norm_${attrs.kind}`,
    cacheKey: `${attrs.kind}|${wDtype}|${attrs.unitOffset ? 1 : 0}|${hasBias ? 1 : 0}`,
    wgsl,
    workgroupSize: [ROW_THREADS, 1, 1],
    dispatch: linearDispatch(shape.rows * (shape.D / G)),
    bindings,
    uniformLayout: layout,
    uniforms: { rows: shape.rows, D: shape.D, G, eps: 0, zOff: 0, zStride: shape.D },
  };
}

function checkNormArgs(op: string, x: TensorLike, w: TensorLike, groupSize?: number): { D: number; rows: number; G: number } {
  const D = x.shape[x.shape.length - 1];
  if (w.size !== D) throw new StatespaceError('SHAPE_MISMATCH', `${op}: weight has shape [${w.shape.join(',')}], expected [D=${D}]`);
  const G = groupSize ?? D;
  if (D % G !== 0) throw new StatespaceError('INVALID_ARGUMENT', `${op}: group size ${G} does not divide D=${D}`);
  return { D, rows: x.size / D, G };
}

/**
 * RMSNorm over the last dimension: y = x / sqrt(mean(x²) + eps) · w.
 * @example
 * ```ts
 * const h = rmsNorm(rt, x, layer.norm.weight, 1e-5);
 * ```
 */
export function rmsNorm(runtime: Runtime, x: TensorLike, weight: TensorLike, eps: number, options: { unitOffset?: boolean; out?: Tensor } = {}): Tensor {
  const { D, rows } = checkNormArgs('rmsNorm', x, weight);
  const y = options.out ?? runtime.empty(x.shape, 'f32', 'rmsNorm.y');
  const k = createNormKernel({ rows, D }, { kind: 'rms', weightDtype: weight.dtype, unitOffset: options.unitOffset });
  runtime.run({ ...k, uniforms: { ...k.uniforms, eps } }, [x, weight, y]);
  return y;
}

/**
 * Gated RMSNorm (Mamba-2): h = x · silu(z), normalised over groups of `groupSize` features.
 * z is (M, D), or with `zOffset` / `zStride` a D-wide column block of a wider tensor (row m's
 * gate at zOffset + m·zStride), read in place.
 * @example
 * ```ts
 * const y = gatedRmsNorm(rt, y, z, mixer.norm.weight, 1e-5);
 * const y2 = gatedRmsNorm(rt, y, zxbcdt, mixer.norm.weight, 1e-5, { zOffset: 0, zStride: proj }); // z = zxbcdt[..., 0:D]
 * ```
 */
export function gatedRmsNorm(
  runtime: Runtime,
  x: TensorLike,
  z: TensorLike,
  weight: TensorLike,
  eps: number,
  options: { groupSize?: number; out?: Tensor; zOffset?: number; zStride?: number } = {},
): Tensor {
  const { D, rows, G } = checkNormArgs('gatedRmsNorm', x, weight, options.groupSize);
  const zOff = options.zOffset ?? 0;
  const zStride = options.zStride ?? D;
  if (!Number.isInteger(zOff) || zOff < 0 || !Number.isInteger(zStride) || zStride < D) {
    throw new StatespaceError('INVALID_ARGUMENT', `gatedRmsNorm: zOffset must be an integer >= 0 and zStride an integer >= D=${D}, got ${zOff} and ${zStride}`);
  }
  if (options.zStride === undefined && options.zOffset === undefined ? z.size !== x.size : zOff + (rows - 1) * zStride + D > z.size) {
    throw new StatespaceError('SHAPE_MISMATCH', `gatedRmsNorm: z has shape [${z.shape.join(',')}], too small for ${rows} rows of ${D} at offset ${zOff}, stride ${zStride} (x [${x.shape.join(',')}])`);
  }
  const y = options.out ?? runtime.empty(x.shape, 'f32', 'gatedRmsNorm.y');
  const k = createNormKernel({ rows, D, G }, { kind: 'rms_gated', weightDtype: weight.dtype });
  runtime.run({ ...k, uniforms: { ...k.uniforms, eps, zOff, zStride } }, [x, z, weight, y]);
  return y;
}

/**
 * LayerNorm over the last dimension with weight and (optional) bias.
 * @example
 * ```ts
 * const h = layerNorm(rt, x, ln.weight, ln.bias, 1e-5);
 * ```
 */
export function layerNorm(runtime: Runtime, x: TensorLike, weight: TensorLike, bias: TensorLike | undefined, eps: number, options: { out?: Tensor } = {}): Tensor {
  const { D, rows } = checkNormArgs('layerNorm', x, weight);
  const y = options.out ?? runtime.empty(x.shape, 'f32', 'layerNorm.y');
  const k = createNormKernel({ rows, D }, { kind: 'layer', weightDtype: weight.dtype, bias: !!bias });
  runtime.run({ ...k, uniforms: { ...k.uniforms, eps } }, bias ? [x, weight, bias, y] : [x, weight, y]);
  return y;
}

/**
 * CPU reference for all three norms (rows of D, groups of G).
 *
 * @example
 * ```ts
 * normReference('rms', new Float32Array([3, 4]), new Float32Array([1, 1]), 2, 0); // [0.8485, 1.1314]
 * ```
 */
export function normReference(
  kind: NormKind,
  x: Float32Array,
  w: Float32Array,
  D: number,
  eps: number,
  extra: { z?: Float32Array; b?: Float32Array; G?: number; unitOffset?: boolean } = {},
): Float32Array {
  const G = extra.G ?? D;
  const y = new Float32Array(x.length);
  const h = new Float64Array(G);
  for (let base = 0; base < x.length; base += G) {
    const g = (base % D) / G;
    for (let j = 0; j < G; j++) {
      const i = base + j;
      h[j] = kind === 'rms_gated' ? x[i] * (extra.z![i] / (1 + Math.exp(-extra.z![i]))) : x[i];
    }
    let mean = 0;
    if (kind === 'layer') {
      for (let j = 0; j < G; j++) mean += h[j];
      mean /= G;
    }
    let v = 0;
    for (let j = 0; j < G; j++) v += (h[j] - mean) ** 2;
    const inv = 1 / Math.sqrt(v / G + eps);
    for (let j = 0; j < G; j++) {
      const c = g * G + j;
      const s = extra.unitOffset ? 1 + w[c] : w[c];
      y[base + j] = (h[j] - mean) * inv * s + (kind === 'layer' && extra.b ? extra.b[c] : 0);
    }
  }
  return y;
}
