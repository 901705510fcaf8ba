/**
 * Concatenation along the last dimension: y[r] = [a[r] | b[r]] for every row r
 * (Zamba2's shared block reads concat(hidden, original embeddings)).
 *
 * Shape glossary:
 *   R  rows (all leading dimensions flattened)     A  features of a     F  features of b
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
  wgslBindings,
} from '@statespace/core';

const layout = { R: 'u32', A: 'u32', F: 'u32' } as const satisfies UniformLayout;

/**
 * Builds the concat kernel (one thread per output element).
 *
 * @example
 * ```ts
 * const kernel = createConcatKernel({ R: 5, A: 64, F: 64 }); // rows of (5, 64) and (5, 64) -> (5, 128)
 * ```
 */
export function createConcatKernel(shape: { R: number; A: number; F: number }): KernelDescriptor {
  const bindings = [
    { name: 'a', type: 'f32', access: 'read' }, // (R, A)
    { name: 'b', type: 'f32', access: 'read' }, // (R, F)
    { name: 'y', type: 'f32', access: 'read_write' }, // (R, A + F)
  ] as const;
  const wgsl = `${wgslBindings(layout, bindings)}
@compute @workgroup_size(256)
fn main(${WGSL_BUILTINS}) {
  let i = ${WGSL_LINEAR_WORKGROUP} * 256u + li;
  let W = u.A + u.F;
  if (i >= u.R * W) { return; }
  let r = i / W;
  let j = i % W;
  if (j < u.A) { y[i] = a[r * u.A + j]; } else { y[i] = b[r * u.F + j - u.A]; }
}`;
  return { name: 'concat_last', cacheKey: '', wgsl, workgroupSize: [256, 1, 1], dispatch: linearDispatch((shape.R * (shape.A + shape.F)) / 256), bindings, uniformLayout: layout, uniforms: shape };
}

/**
 * Concatenates a (..., A) and b (..., F) along the last dimension into (..., A + F).
 *
 * @throws StatespaceError `SHAPE_MISMATCH` when the leading dimensions differ.
 * @example
 * ```ts
 * const x = concatLastDim(rt, hidden, embeddings); // (B, L, 2D)
 * ```
 */
export function concatLastDim(runtime: Runtime, a: TensorLike, b: TensorLike): Tensor {
  const lead = a.shape.slice(0, -1);
  if (b.shape.length !== a.shape.length || b.shape.slice(0, -1).join(',') !== lead.join(',')) {
    throw new StatespaceError('SHAPE_MISMATCH', `concatLastDim: b has shape [${b.shape.join(',')}], expected [${lead.join(', ')}, features]`);
  }
  const A = a.shape[a.shape.length - 1];
  const F = b.shape[b.shape.length - 1];
  const R = a.size / A;
  const y = runtime.empty([...lead, A + F], 'f32', 'concat.y');
  runtime.run(createConcatKernel({ R, A, F }), [a, b, y]);
  return y;
}

/**
 * CPU reference of {@link concatLastDim} for rows of a (R, A) and b (R, F).
 *
 * @example
 * ```ts
 * concatLastDimReference(new Float32Array([1, 2]), new Float32Array([3, 4]), 2, 1, 1); // [1, 3, 2, 4]
 * ```
 */
export function concatLastDimReference(a: Float32Array, b: Float32Array, R: number, A: number, F: number): Float32Array {
  const y = new Float32Array(R * (A + F));
  for (let r = 0; r < R; r++) {
    y.set(a.subarray(r * A, (r + 1) * A), r * (A + F));
    y.set(b.subarray(r * F, (r + 1) * F), r * (A + F) + A);
  }
  return y;
}
