/**
 * Top-k and argmax over the last dimension.
 *
 * Shape glossary:
 *   M  rows     D  features per row     k  values kept per row
 *
 * Elements are ordered by (value descending, index ascending), so ties resolve to
 * the lower index as torch.argmax does. Round r of top-k finds the largest element
 * that comes strictly after the one found in round r-1: k workgroup reductions,
 * no sorting and no marking of taken elements. NaNs are never selected.
 */
import { StatespaceError } from '../errors.js';
import { type KernelDescriptor, type UniformLayout, WGSL_BUILTINS, WGSL_LINEAR_WORKGROUP, linearDispatch, memoWgsl, wgslBindings } from '../kernel.js';
import type { Runtime } from '../runtime.js';
import type { Tensor, TensorLike } from '../tensor.js';
import { ROW_THREADS } from './reduce.js';
import { stridedPassWgsl } from './wgsl-passes.js';

const layout = { rows: 'u32', D: 'u32', k: 'u32' } as const satisfies UniformLayout;

/** Loads each thread of the argmax has in flight (wgsl-passes.ts): one memory round trip per 16 · 256 entries of a row. */
const ARGMAX_UNROLL = 16;

/**
 * The argmax's WGSL: the row in trips of ARGMAX_UNROLL entries per thread, every load of a trip
 * issued before its comparisons (a rolled loop waits one memory round trip per entry: ~85 µs for
 * a 50,280-entry vocabulary on an H200, 11-13% of a decode token). A thread sees its entries in
 * index order and keeps the first of equal values; the tree breaks ties by index.
 */
function argmaxWgsl(bindings: string): string {
  const pass = stridedPassWgsl({
    unroll: ARGMAX_UNROLL,
    start: 'li',
    stride: 'RT',
    end: 'u.D',
    loads: (t, j) => `let v${t} = x[base + ${j}];`,
    body: (t) => `let take = v${t} == v${t} && (bi == NONE || v${t} > bv); bv = select(bv, v${t}, take); bi = select(bi, j, take);`,
  });
  return `${bindings}
const RT = ${ROW_THREADS}u;
const NONE = 0xffffffffu;
var<workgroup> rv: array<f32, ${ROW_THREADS}>;
var<workgroup> ri: array<u32, ${ROW_THREADS}>;
@compute @workgroup_size(${ROW_THREADS})
fn main(${WGSL_BUILTINS}) {
  let r = ${WGSL_LINEAR_WORKGROUP};
  if (r >= u.rows) { return; }
  let base = r * u.D;
  var bv = -3.4e38;
  var bi = NONE;
  ${pass}
  rv[li] = bv; ri[li] = bi;
  workgroupBarrier();
  for (var s = RT / 2u; s > 0u; s >>= 1u) {
    if (li < s) {
      let ov = rv[li + s]; let oi = ri[li + s];
      if (oi != NONE && (ri[li] == NONE || ov > rv[li] || (ov == rv[li] && oi < ri[li]))) { rv[li] = ov; ri[li] = oi; }
    }
    workgroupBarrier();
  }
  if (li == 0u) { idx[r] = select(i32(ri[0]), -1, ri[0] == NONE); }
}`;
}

/**
 * Builds the top-k kernel (one workgroup per row). With `indicesOnly`, only indices are written (argmax).
 *
 * @example
 * ```ts
 * const kernel = createTopKKernel({ rows: 1, D: 50280, k: 1 }, true); // argmax of one row
 * ```
 */
export function createTopKKernel(shape: { rows: number; D: number; k: number }, indicesOnly = false): KernelDescriptor {
  const bindings = [
    { name: 'x', type: 'f32', access: 'read' }, // (M, D)
    ...(indicesOnly ? [] : [{ name: 'vals', type: 'f32', access: 'read_write' } as const]), // (M, k)
    { name: 'idx', type: 'i32', access: 'read_write' }, // (M, k)
  ] as const;
  // the argmax runs once per greedy decode step: its WGSL is built once
  const wgsl = indicesOnly ? memoWgsl('argmax', 'idx', () => argmaxWgsl(wgslBindings(layout, bindings))) : `${wgslBindings(layout, bindings)}
const RT = ${ROW_THREADS}u;
var<workgroup> rv: array<f32, ${ROW_THREADS}>;
var<workgroup> ri: array<u32, ${ROW_THREADS}>;
// (a, ia) comes before (b, ib) in the order (value desc, index asc)
fn before(a: f32, ia: u32, b: f32, ib: u32) -> bool { return a > b || (a == b && ia < ib); }
@compute @workgroup_size(${ROW_THREADS})
fn main(${WGSL_BUILTINS}) {
  let r = ${WGSL_LINEAR_WORKGROUP};
  if (r >= u.rows) { return; }
  let base = r * u.D;
  var prevV = 3.4e38;
  var prevI = 0u;
  var havePrev = false;
  for (var round = 0u; round < u.k; round++) {
    var bv = -3.4e38;
    var bi = 0xffffffffu;
    for (var j = li; j < u.D; j += RT) {
      let v = x[base + j];
      if (v != v) { continue; }
      let after = !havePrev || before(prevV, prevI, v, j);
      if (after && (bi == 0xffffffffu || before(v, j, bv, bi))) { bv = v; bi = j; }
    }
    rv[li] = bv; ri[li] = bi;
    workgroupBarrier();
    for (var s = RT / 2u; s > 0u; s >>= 1u) {
      if (li < s) {
        let ov = rv[li + s]; let oi = ri[li + s];
        if (oi != 0xffffffffu && (ri[li] == 0xffffffffu || before(ov, oi, rv[li], ri[li]))) { rv[li] = ov; ri[li] = oi; }
      }
      workgroupBarrier();
    }
    prevV = rv[0]; prevI = ri[0]; havePrev = true;
    if (li == 0u) {
      ${indicesOnly ? '' : 'vals[r * u.k + round] = prevV;'}
      idx[r * u.k + round] = select(i32(prevI), -1, prevI == 0xffffffffu);
    }
    workgroupBarrier();
  }
}`;
  return {
    name: indicesOnly ? 'argmax' : 'top_k',
    cacheKey: indicesOnly ? 'idx' : 'vals+idx',
    wgsl,
    workgroupSize: [ROW_THREADS, 1, 1],
    dispatch: linearDispatch(shape.rows),
    bindings,
    uniformLayout: layout,
    uniforms: shape,
  };
}

/**
 * The k largest values of each row and their indices, sorted descending.
 * @example
 * ```ts
 * const { values, indices } = topK(rt, routerLogits, 2); // MoE routing
 * ```
 */
export function topK(runtime: Runtime, x: TensorLike, k: number): { values: Tensor; indices: Tensor } {
  const D = x.shape[x.shape.length - 1];
  if (!Number.isInteger(k) || k < 1 || k > D) throw new StatespaceError('INVALID_ARGUMENT', `topK: k=${k} must be an integer in [1, ${D}]`);
  const rows = x.size / D;
  const outShape = [...x.shape.slice(0, -1), k];
  const values = runtime.empty(outShape, 'f32', 'topK.values');
  const indices = runtime.empty(outShape, 'i32', 'topK.indices');
  runtime.run(createTopKKernel({ rows, D, k }), [x, values, indices]);
  return { values, indices };
}

/**
 * Index of the largest value of each row (first index on ties), as i32 with shape x.shape without its last dim.
 * @example
 * ```ts
 * const next = argmax(rt, logits); // greedy decoding
 * ```
 */
export function argmax(runtime: Runtime, x: TensorLike, options: { out?: Tensor } = {}): Tensor {
  const D = x.shape[x.shape.length - 1];
  const rows = x.size / D;
  const out = options.out ?? runtime.empty(x.shape.slice(0, -1), 'i32', 'argmax');
  runtime.run(createTopKKernel({ rows, D, k: 1 }, true), [x, out]);
  return out;
}

/**
 * CPU reference of top-k (value desc, index asc).
 *
 * @example
 * ```ts
 * topKReference(new Float32Array([1, 5, 3, 5]), 4, 2); // { values: [5, 5], indices: [1, 3] }
 * ```
 */
export function topKReference(x: Float32Array, D: number, k: number): { values: Float32Array; indices: Int32Array } {
  const rows = x.length / D;
  const values = new Float32Array(rows * k);
  const indices = new Int32Array(rows * k);
  for (let r = 0; r < rows; r++) {
    const order = Array.from({ length: D }, (_, j) => j)
      .filter((j) => !Number.isNaN(x[r * D + j]))
      .sort((a, b) => x[r * D + b] - x[r * D + a] || a - b);
    for (let i = 0; i < k; i++) {
      indices[r * k + i] = order[i] ?? -1;
      values[r * k + i] = order[i] === undefined ? -3.4e38 : x[r * D + order[i]];
    }
  }
  return { values, indices };
}
