/**
 * Residual add fused with the RMSNorm that follows it:
 * s = h + α·b (written back as the new residual stream), y = s / sqrt(mean(s²) + eps) · w.
 * One dispatch instead of two on every pre-norm block boundary.
 *
 * Shape glossary:
 *   M  rows (tokens)     D  features     α  residual multiplier (Granite's residual_multiplier)
 */
import { StatespaceError } from '../errors.js';
import { type DType, wgslLoadFloat, wgslStorageType } from '../dtype.js';
import { type KernelDescriptor, type UniformLayout, WGSL_BUILTINS, WGSL_LINEAR_WORKGROUP, linearDispatch, memoWgsl, wgslBindings } from '../kernel.js';
import type { Runtime } from '../runtime.js';
import type { Tensor, TensorLike } from '../tensor.js';
import { ROW_THREADS, wgslRowReduce } from './reduce.js';

const layout = { rows: 'u32', D: 'u32', eps: 'f32', alpha: 'f32' } as const satisfies UniformLayout;

/** Builds the fused add + RMSNorm kernel. */
export function createAddRmsNormKernel(shape: { rows: number; D: number }, attrs: { weightDtype?: DType; unitOffset?: boolean } = {}): KernelDescriptor {
  const wDtype = attrs.weightDtype ?? 'f32';
  const bindings = [
    { name: 'h', type: 'f32', access: 'read' }, // (M, D) residual stream
    { name: 'b', type: 'f32', access: 'read' }, // (M, D) branch output
    { name: 'w', type: wgslStorageType(wDtype), access: 'read' }, // (D)
    { name: 's', type: 'f32', access: 'read_write' }, // (M, D) new residual stream
    { name: 'y', type: 'f32', access: 'read_write' }, // (M, D) normed
  ] as const;
  const cacheKey = `${wDtype}|${attrs.unitOffset ? 1 : 0}`;
  const wgsl = memoWgsl('add_rms_norm', cacheKey, () => `${wgslBindings(layout, bindings)}
${wgslLoadFloat('loadW', 'w', wDtype)}
${wgslRowReduce()}
@compute @workgroup_size(${ROW_THREADS})
fn main(${WGSL_BUILTINS}) {
  let r = ${WGSL_LINEAR_WORKGROUP};
  if (r >= u.rows) { return; }
  let base = r * u.D;
  var ss = 0.0;
  for (var j = li; j < u.D; j += RT) {
    let v = h[base + j] + u.alpha * b[base + j];
    s[base + j] = v;
    ss += v * v;
  }
  let inv = inverseSqrt(wgSum(ss, li) / f32(u.D) + u.eps);
  for (var j = li; j < u.D; j += RT) {
    y[base + j] = s[base + j] * inv * ${attrs.unitOffset ? '(1.0 + loadW(j))' : 'loadW(j)'};
  }
}`);
  return { name: 'add_rms_norm', cacheKey, wgsl, workgroupSize: [ROW_THREADS, 1, 1], dispatch: linearDispatch(shape.rows), bindings, uniformLayout: layout, uniforms: { ...shape, eps: 0, alpha: 1 } };
}

/**
 * s = h + α·b and y = RMSNorm(s)·w in one dispatch. Returns both (the new residual stream and its norm).
 * @example
 * ```ts
 * const { sum, normed } = addRmsNorm(rt, hidden, mixerOut, layer.norm.weight, 1e-5);
 * ```
 */
export function addRmsNorm(
  runtime: Runtime,
  h: TensorLike,
  b: TensorLike,
  weight: TensorLike,
  eps: number,
  options: { alpha?: number; unitOffset?: boolean } = {},
): { sum: Tensor; normed: Tensor } {
  const D = h.shape[h.shape.length - 1];
  if (b.size !== h.size) throw new StatespaceError('SHAPE_MISMATCH', `addRmsNorm: b has shape [${b.shape.join(',')}], expected [${h.shape.join(',')}]`);
  if (weight.size !== D) throw new StatespaceError('SHAPE_MISMATCH', `addRmsNorm: weight has shape [${weight.shape.join(',')}], expected [D=${D}]`);
  const sum = runtime.empty(h.shape, 'f32', 'addRmsNorm.sum');
  const normed = runtime.empty(h.shape, 'f32', 'addRmsNorm.y');
  const k = createAddRmsNormKernel({ rows: h.size / D, D }, { weightDtype: weight.dtype, unitOffset: options.unitOffset });
  runtime.run({ ...k, uniforms: { ...k.uniforms, eps, alpha: options.alpha ?? 1 } }, [h, b, weight, sum, normed]);
  return { sum, normed };
}
