/**
 * Softmax over the last dimension, numerically stable (subtract the row max).
 *
 * Shape glossary:
 *   M  rows     D  features per row
 */
import { type KernelDescriptor, type UniformLayout, WGSL_BUILTINS, WGSL_LINEAR_WORKGROUP, linearDispatch, wgslBindings } from '../kernel.js';
import type { Runtime } from '../runtime.js';
import type { Tensor, TensorLike } from '../tensor.js';
import { ROW_THREADS, wgslRowReduce } from './reduce.js';

const layout = { rows: 'u32', D: 'u32', invTemp: 'f32' } as const satisfies UniformLayout;

/**
 * Builds the softmax kernel (one workgroup per row).
 *
 * @example
 * ```ts
 * const kernel = createSoftmaxKernel({ rows: 4, D: 50280 });
 * ```
 */
export function createSoftmaxKernel(shape: { rows: number; D: number }): KernelDescriptor {
  const bindings = [
    { name: 'x', type: 'f32', access: 'read' }, // (M, D)
    { name: 'y', type: 'f32', access: 'read_write' }, // (M, D)
  ] as const;
  const wgsl = `${wgslBindings(layout, bindings)}
${wgslRowReduce()}
@compute @workgroup_size(${ROW_THREADS})
fn main(${WGSL_BUILTINS}) {
  let r = ${WGSL_LINEAR_WORKGROUP};
  if (r >= u.rows) { return; }
  let base = r * u.D;
  var m = -3.4e38;
  for (var j = li; j < u.D; j += RT) { m = max(m, x[base + j] * u.invTemp); }
  m = wgMax(m, li);
  var s = 0.0;
  for (var j = li; j < u.D; j += RT) { s += exp(x[base + j] * u.invTemp - m); }
  let inv = 1.0 / wgSum(s, li);
  for (var j = li; j < u.D; j += RT) { y[base + j] = exp(x[base + j] * u.invTemp - m) * inv; }
}`;
  return { name: 'softmax', cacheKey: '', wgsl, workgroupSize: [ROW_THREADS, 1, 1], dispatch: linearDispatch(shape.rows), bindings, uniformLayout: layout, uniforms: { ...shape, invTemp: 1 } };
}

/**
 * Softmax over the last dimension of x / temperature.
 * @example
 * ```ts
 * const probs = softmax(rt, logits, { temperature: 0.8 });
 * ```
 */
export function softmax(runtime: Runtime, x: TensorLike, options: { temperature?: number; out?: Tensor } = {}): Tensor {
  const D = x.shape[x.shape.length - 1];
  const y = options.out ?? runtime.empty(x.shape, 'f32', 'softmax.y');
  const k = createSoftmaxKernel({ rows: x.size / D, D });
  runtime.run({ ...k, uniforms: { ...k.uniforms, invTemp: 1 / (options.temperature ?? 1) } }, [x, y]);
  return y;
}

/**
 * CPU reference of softmax over rows of D.
 *
 * @example
 * ```ts
 * softmaxReference(new Float32Array([0, Math.log(3)]), 2); // [0.25, 0.75]
 * ```
 */
export function softmaxReference(x: Float32Array, D: number, temperature = 1): Float32Array {
  const y = new Float32Array(x.length);
  for (let base = 0; base < x.length; base += D) {
    let m = -Infinity;
    for (let j = 0; j < D; j++) m = Math.max(m, x[base + j] / temperature);
    let s = 0;
    for (let j = 0; j < D; j++) s += Math.exp(x[base + j] / temperature - m);
    for (let j = 0; j < D; j++) y[base + j] = Math.exp(x[base + j] / temperature - m) / s;
  }
  return y;
}
