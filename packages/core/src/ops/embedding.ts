/**
 * Embedding gather: y[t, :] = table[ids[t], :].
 *
 * Shape glossary:
 *   T  tokens     V  vocabulary size     D  embedding width
 *
 * Ids outside [0, V) produce NaN rows, so a bad id is visible instead of silently
 * reading another row; the generation session validates ids on the host first.
 */
import { StatespaceError, assertArg } from '../errors.js';
import { type DType, wgslLoadFloat, wgslStorageType } from '../dtype.js';
import { type KernelDescriptor, type UniformLayout, WGSL_BUILTINS, WGSL_LINEAR_WORKGROUP, linearDispatch, memoWgsl, wgslBindings } from '../kernel.js';
import type { Runtime } from '../runtime.js';
import type { Tensor, TensorLike } from '../tensor.js';

const THREADS = 256;
const layout = { T: 'u32', V: 'u32', D: 'u32', scale: 'f32' } as const satisfies UniformLayout;

/**
 * Builds the gather kernel for T ids into a (V, D) table stored as `tableDtype`.
 *
 * @example
 * ```ts
 * const kernel = createEmbeddingKernel({ T: 7, V: 50280, D: 768 }, 'f16');
 * ```
 */
export function createEmbeddingKernel(shape: { T: number; V: number; D: number }, tableDtype: DType = 'f32'): KernelDescriptor {
  const bindings = [
    { name: 'ids', type: 'i32', access: 'read' }, // (T)
    { name: 'table', type: wgslStorageType(tableDtype), access: 'read' }, // (V, D)
    { name: 'y', type: 'f32', access: 'read_write' }, // (T, D)
  ] as const;
  const wgsl = memoWgsl('embedding', tableDtype, () => `${wgslBindings(layout, bindings)}
${wgslLoadFloat('loadT', 'table', tableDtype)}
@compute @workgroup_size(${THREADS})
fn main(${WGSL_BUILTINS}) {
  let i = ${WGSL_LINEAR_WORKGROUP} * ${THREADS}u + li;
  if (i >= u.T * u.D) { return; }
  let t = i / u.D;
  let d = i % u.D;
  let id = ids[t];
  if (id < 0 || u32(id) >= u.V) { y[i] = bitcast<f32>(0x7fc00000u | (u.V & 0u)); return; }
  y[i] = loadT(u32(id) * u.D + d) * u.scale;
}`);
  return {
    name: 'embedding',
    cacheKey: tableDtype,
    wgsl,
    workgroupSize: [THREADS, 1, 1],
    dispatch: linearDispatch((shape.T * shape.D) / THREADS),
    bindings,
    uniformLayout: layout,
    uniforms: { ...shape, scale: 1 },
  };
}

/**
 * Looks up rows of `table` (V, D) for `ids` (i32, any shape); output shape is ids.shape + [D].
 * `scale` multiplies the rows (Granite's embedding_multiplier).
 * @example
 * ```ts
 * const h = embedding(rt, ids, weights.embed, { scale: 12 });
 * ```
 */
export function embedding(runtime: Runtime, ids: TensorLike, table: TensorLike, options: { scale?: number; out?: Tensor } = {}): Tensor {
  assertArg(ids.dtype === 'i32', 'embedding', `ids must be i32, got ${ids.dtype}`);
  if (table.shape.length !== 2) throw new StatespaceError('SHAPE_MISMATCH', `embedding: table has shape [${table.shape.join(',')}], expected [V, D]`);
  const [V, D] = table.shape;
  const y = options.out ?? runtime.empty([...ids.shape, D], 'f32', 'embedding.y');
  const k = createEmbeddingKernel({ T: ids.size, V, D }, table.dtype);
  runtime.run({ ...k, uniforms: { ...k.uniforms, scale: options.scale ?? 1 } }, [ids, table, y]);
  return y;
}

/**
 * CPU reference of the gather.
 *
 * @example
 * ```ts
 * embeddingReference(new Int32Array([1]), new Float32Array([1, 2, 3, 4]), 2); // Float32Array [3, 4]
 * ```
 */
export function embeddingReference(ids: Int32Array, table: Float32Array, D: number, scale = 1): Float32Array {
  const y = new Float32Array(ids.length * D);
  ids.forEach((id, t) => {
    for (let d = 0; d < D; d++) y[t * D + d] = table[id * D + d] * scale;
  });
  return y;
}
