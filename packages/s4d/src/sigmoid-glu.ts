/**
 * The gated linear unit of PyTorch's `nn.GLU` (Dauphin et al. 2017) over the last dimension:
 *
 *   y[t, j] = a[t, j] · sigmoid(a[t, I + j])
 *
 * S4D's `output_linear` is Conv1d(H, 2H, 1) followed by GLU over the channels; core's `glu` puts the activation on
 * the first half instead (SwiGLU), so the S4D layer has its own.
 *
 * Shape glossary (packages/core/README.md): T tokens (batch × seqlen), I output features (a has 2I per token).
 */
import { type KernelDescriptor, type Runtime, StatespaceError, type Tensor, type TensorLike, type UniformLayout, WGSL_BUILTINS, WGSL_LINEAR_WORKGROUP, linearDispatch, memoWgsl, wgslActivations, wgslBindings } from '@statespace/core';

const THREADS = 256;
const layout = { T: 'u32', I: 'u32' } as const satisfies UniformLayout;
const bindings = [
  { name: 'a', type: 'f32', access: 'read' }, // (T, 2I)
  { name: 'y', type: 'f32', access: 'read_write' }, // (T, I)
] as const;

/**
 * Builds the GLU kernel, one thread per output.
 *
 * @example
 * ```ts
 * const kernel = createSigmoidGluKernel({ T: 74, I: 24 });
 * ```
 */
export function createSigmoidGluKernel(shape: { T: number; I: number }): KernelDescriptor {
  const wgsl = memoWgsl('s4d_sigmoid_glu', '', () => `${wgslBindings(layout, bindings)}
${wgslActivations()}
@compute @workgroup_size(${THREADS})
fn main(${WGSL_BUILTINS}) {
  let i = ${WGSL_LINEAR_WORKGROUP} * ${THREADS}u + li;
  if (i >= u.T * u.I) { return; }
  let t = i / u.I;
  let j = i % u.I;
  y[i] = a[t * 2u * u.I + j] * sigmoid_(a[t * 2u * u.I + u.I + j]);
}`);
  return { name: 's4d_sigmoid_glu', cacheKey: '', wgsl, workgroupSize: [THREADS, 1, 1], dispatch: linearDispatch((shape.T * shape.I) / THREADS), bindings, uniformLayout: layout, uniforms: shape };
}

/**
 * first half · sigmoid(second half) of the last dimension (PyTorch's `nn.GLU`).
 *
 * @throws StatespaceError `SHAPE_MISMATCH` when the last dimension is odd.
 * @example
 * ```ts
 * const y = sigmoidGlu(rt, matmul(rt, x, w, { bias })); // (B, L, 2H) -> (B, L, H)
 * ```
 */
export function sigmoidGlu(runtime: Runtime, a: TensorLike): Tensor {
  const two = a.shape[a.shape.length - 1];
  if (two % 2 !== 0) throw new StatespaceError('SHAPE_MISMATCH', `sigmoidGlu: the last dimension of [${a.shape.join(',')}] must be even`);
  if (a.dtype !== 'f32') throw new StatespaceError('DTYPE_MISMATCH', `sigmoidGlu: a must be f32, got ${a.dtype}`);
  const I = two / 2;
  const y = runtime.empty([...a.shape.slice(0, -1), I], 'f32', 's4d.glu.y');
  runtime.run(createSigmoidGluKernel({ T: a.size / two, I }), [a, y]);
  return y;
}
