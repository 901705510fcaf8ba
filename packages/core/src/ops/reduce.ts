/** WGSL helpers for reductions across one workgroup. */

/** Threads per workgroup used by the row-reduction kernels (norms, softmax, argmax, top-k). */
export const ROW_THREADS = 256;

/**
 * WGSL for `fn wgSum(v: f32, li: u32) -> f32` and `fn wgMax(...)`: tree reductions over
 * {@link ROW_THREADS} threads through workgroup memory. Every thread gets the result.
 * Call them in uniform control flow (they hold workgroup barriers). `type` vec4<f32> reduces
 * four rows at once, lane by lane; a `suffix` names that second set (`wgSum4`, …) so it can sit
 * beside the scalar one (the suffixed set expects `RT` from the scalar set or the caller).
 *
 * @example
 * ```ts
 * const wgsl = `${wgslRowReduce()}
 * @compute @workgroup_size(${ROW_THREADS}) fn main(${WGSL_BUILTINS}) {
 *   let total = wgSum(partial, li); // partial: this thread's share of the row
 * }`;
 * ```
 */
export function wgslRowReduce(type: 'f32' | 'vec4<f32>' = 'f32', suffix = ''): string {
  const arr = `red${suffix}`;
  const tree = (name: string, combine: (a: string, b: string) => string) => `
fn ${name}${suffix}(v: ${type}, li: u32) -> ${type} {
  ${arr}[li] = v;
  workgroupBarrier();
  for (var s = RT / 2u; s > 0u; s >>= 1u) {
    if (li < s) { ${arr}[li] = ${combine(`${arr}[li]`, `${arr}[li + s]`)}; }
    workgroupBarrier();
  }
  let r = ${arr}[0];
  workgroupBarrier();
  return r;
}`;
  return `
${suffix ? '' : `const RT = ${ROW_THREADS}u;`}
var<workgroup> ${arr}: array<${type}, ${ROW_THREADS}>;${tree('wgSum', (a, b) => `${a} + ${b}`)}${tree('wgMax', (a, b) => `max(${a}, ${b})`)}`;
}
