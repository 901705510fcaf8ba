/** WGSL helpers for reductions across one workgroup. */

/** Threads per workgroup used by the row-reduction kernels (norms, softmax, argmax, top-k). */
export const ROW_THREADS = 256;

/**
 * WGSL for `fn wgSum(v: f32, li: u32) -> f32` and `fn wgMax(...)`: tree reductions over
 * {@link ROW_THREADS} threads through workgroup memory. Every thread gets the result.
 * Call them in uniform control flow (they hold workgroup barriers).
 *
 * @example
 * ```ts
 * const wgsl = `${wgslRowReduce()}
 * @compute @workgroup_size(${ROW_THREADS}) fn main(${WGSL_BUILTINS}) {
 *   let total = wgSum(partial, li); // partial: this thread's share of the row
 * }`;
 * ```
 */
export function wgslRowReduce(): string {
  return `
const RT = ${ROW_THREADS}u;
var<workgroup> red: array<f32, ${ROW_THREADS}>;
fn wgSum(v: f32, li: u32) -> f32 {
  red[li] = v;
  workgroupBarrier();
  for (var s = RT / 2u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] += red[li + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
fn wgMax(v: f32, li: u32) -> f32 {
  red[li] = v;
  workgroupBarrier();
  for (var s = RT / 2u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] = max(red[li], red[li + s]); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}`;
}
