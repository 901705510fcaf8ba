/**
 * The S4D convolution kernel, a Vandermonde product (S4D paper section 3.2; state-spaces/s4 `S4DKernel.forward`):
 *
 *   K[c, l, h] = 2·Re( Σ_n C[c, h, n] · (exp(dt·A[h, n]) − 1)/A[h, n] · exp(dt·A[h, n]·l) ),  l = 0..L−1
 *
 * exp(dt·A·l) is evaluated directly for each l (not as a running power), with the phase dt·Im(A)·l rounded to f32
 * exactly as PyTorch's `dtA.unsqueeze(-1) * arange(L)` rounds it.
 *
 * Shape glossary (packages/core/README.md, and s4d-params.ts): L kernel length, H channels, modes = N/2,
 * channels 1 or 2 (bidirectional).
 */
import { type KernelDescriptor, type Runtime, type Tensor, type UniformLayout, WGSL_BUILTINS, WGSL_LINEAR_WORKGROUP, assertArg, linearDispatch, memoWgsl, wgslBindings } from '@statespace/core';
import { S4D_PARAM_BINDINGS, type S4DParams, WGSL_S4D_COMPLEX, s4dSizes } from './s4d-params.js';

const THREADS = 256;
const layout = { L: 'u32', H: 'u32', modes: 'u32', channels: 'u32' } as const satisfies UniformLayout;
const bindings = [
  ...S4D_PARAM_BINDINGS,
  { name: 'C', type: 'f32', access: 'read' }, // (channels, H, modes, 2)
  { name: 'K', type: 'f32', access: 'read_write' }, // (channels, L, H)
] as const;

/**
 * Builds the Vandermonde kernel: one thread per (c, l, h), a loop over the modes.
 *
 * @example
 * ```ts
 * const kernel = createS4DVandermondeKernel({ L: 37, H: 24, modes: 32, channels: 1 }); // no GPU needed
 * console.log(kernel.dispatch); // [4, 1, 1]
 * ```
 */
export function createS4DVandermondeKernel(shape: { L: number; H: number; modes: number; channels: number }): KernelDescriptor {
  const wgsl = memoWgsl('s4d_vandermonde', '', () => `${wgslBindings(layout, bindings)}
${WGSL_S4D_COMPLEX}
@compute @workgroup_size(${THREADS})
fn main(${WGSL_BUILTINS}) {
  let i = ${WGSL_LINEAR_WORKGROUP} * ${THREADS}u + li;
  if (i >= u.channels * u.L * u.H) { return; }
  let h = i % u.H;
  let l = (i / u.H) % u.L;
  let c = i / (u.H * u.L);
  let fl = f32(l);
  var acc = 0.0;
  for (var n = 0u; n < u.modes; n++) {
    let a = s4d_a_(h, n);
    let dta = s4d_dta_(h, n);
    let ci = ((c * u.H + h) * u.modes + n) * 2u;
    // C·(exp(dtA) − 1)/A: C with ZOH's B folded in
    let cb = cdiv_(cmul_(vec2<f32>(C[ci], C[ci + 1u]), cexpm1_(dta.x, dta.y)), a);
    let z = cexp_(dta.x * fl, dta.y * fl);
    acc += cb.x * z.x - cb.y * z.y;
  }
  K[i] = 2.0 * acc;
}`);
  return {
    name: 's4d_vandermonde',
    cacheKey: '',
    wgsl,
    workgroupSize: [THREADS, 1, 1],
    dispatch: linearDispatch((shape.channels * shape.L * shape.H) / THREADS),
    bindings,
    uniformLayout: layout,
    uniforms: shape,
  };
}

/**
 * The S4D convolution kernel of length L from the layer's parameters, on the GPU.
 *
 * @returns K (channels, L, H): the layout of the (B, L, H) activations, so the convolution reads it along H.
 * @throws StatespaceError `SHAPE_MISMATCH` / `DTYPE_MISMATCH` for inconsistent parameters, `INVALID_ARGUMENT` for L < 1.
 * @example
 * ```ts
 * const K = s4dKernel(rt, { logDt, logAReal, AImag, C }, 37); // (1, 37, H)
 * const y = s4dConv(rt, u, K);
 * ```
 */
export function s4dKernel(runtime: Runtime, params: S4DParams, L: number): Tensor {
  const { H, modes, channels } = s4dSizes('s4dKernel', params);
  assertArg(Number.isInteger(L) && L >= 1, 's4dKernel', `L=${L} must be a positive integer`);
  const K = runtime.empty([channels, L, H], 'f32', 's4d.K');
  runtime.run(createS4DVandermondeKernel({ L, H, modes, channels }), [params.logDt, params.logAReal, params.AImag, params.C, K]);
  return K;
}
