/**
 * The response of an S4D layer to its starting state over the next L tokens, with no input (a Vandermonde product
 * of the state):
 *
 *   y0[b, t, h] = 2·Re( Σ_n C[h, n] · exp(dt·A[h, n]·(t+1)) · x[b, h, n] ),  t = 0..L−1
 *
 * By linearity, a chunk that continues from state x is the zero-state convolution plus y0 (added before the
 * activation, {@link s4dConv}'s `add`), which is how the convolution mode prefills after earlier tokens.
 *
 * Chunked (the chunked prefill, {@link s4dPrefill}): given the state at the start of each chunk of Q tokens
 * (B, chunks, H, modes, 2), output t takes the response of its own chunk's starting state,
 * exp(dt·A·(t − c·Q + 1)) with c = ⌊t/Q⌋, so one dispatch covers every chunk.
 *
 * Shape glossary (packages/core/README.md, and s4d-params.ts): B batch, L seqlen, H channels, modes = N/2,
 * Q chunk length, chunks = ⌈L/Q⌉.
 */
import { type KernelDescriptor, type Runtime, type Tensor, type TensorLike, type UniformLayout, WGSL_BUILTINS, WGSL_LINEAR_WORKGROUP, StatespaceError, assertArg, assertShape, linearDispatch, memoWgsl, wgslBindings } from '@statespace/core';
import { S4D_PARAM_BINDINGS, type S4DParams, WGSL_S4D_COMPLEX, s4dSizes } from './s4d-params.js';

const THREADS = 256;
const layout = { B: 'u32', L: 'u32', H: 'u32', modes: 'u32', Q: 'u32', chunks: 'u32' } as const satisfies UniformLayout;
const bindings = [
  ...S4D_PARAM_BINDINGS,
  { name: 'C', type: 'f32', access: 'read' }, // (H, modes, 2)
  { name: 'state', type: 'f32', access: 'read' }, // (B, chunks, H, modes, 2)
  { name: 'y', type: 'f32', access: 'read_write' }, // (B, L, H)
] as const;

/**
 * Builds the state-response kernel: one thread per (b, t, h), a loop over the modes. Without `Q` (or Q ≥ L) one
 * chunk: the state is (B, H, modes, 2).
 *
 * @example
 * ```ts
 * const kernel = createS4DStateOutputKernel({ B: 1, L: 37, H: 24, modes: 32 });
 * const chunked = createS4DStateOutputKernel({ B: 1, L: 775, H: 24, modes: 32, Q: 256 }); // state (1, 4, 24, 32, 2)
 * ```
 */
export function createS4DStateOutputKernel(shape: { B: number; L: number; H: number; modes: number; Q?: number }): KernelDescriptor {
  const Q = Math.min(shape.Q ?? shape.L, shape.L);
  const wgsl = memoWgsl('s4d_state_output', '', () => `${wgslBindings(layout, bindings)}
${WGSL_S4D_COMPLEX}
@compute @workgroup_size(${THREADS})
fn main(${WGSL_BUILTINS}) {
  let i = ${WGSL_LINEAR_WORKGROUP} * ${THREADS}u + li;
  if (i >= u.B * u.L * u.H) { return; }
  let h = i % u.H;
  let t = (i / u.H) % u.L;
  let b = i / (u.H * u.L);
  let c = t / u.Q;
  let steps = f32(t - c * u.Q + 1u);
  var acc = 0.0;
  for (var n = 0u; n < u.modes; n++) {
    let dta = s4d_dta_(h, n);
    let ci = (h * u.modes + n) * 2u;
    let si = (((b * u.chunks + c) * u.H + h) * u.modes + n) * 2u;
    let cx = cmul_(vec2<f32>(C[ci], C[ci + 1u]), vec2<f32>(state[si], state[si + 1u]));
    let z = cexp_(dta.x * steps, dta.y * steps);
    acc += cx.x * z.x - cx.y * z.y;
  }
  y[i] = 2.0 * acc;
}`);
  return {
    name: 's4d_state_output',
    cacheKey: '',
    wgsl,
    workgroupSize: [THREADS, 1, 1],
    dispatch: linearDispatch((shape.B * shape.L * shape.H) / THREADS),
    bindings,
    uniformLayout: layout,
    uniforms: { B: shape.B, L: shape.L, H: shape.H, modes: shape.modes, Q, chunks: Math.ceil(shape.L / Q) },
  };
}

/**
 * The next L outputs (before D·u and the activation) that `state` (B, H, modes, 2) alone produces; with `chunk` Q,
 * `state` holds the state at the start of each chunk of Q tokens (B, ⌈L/Q⌉, H, modes, 2) and each output takes
 * its own chunk's.
 *
 * @returns y0 (B, L, H).
 * @throws StatespaceError `S4D_BIDIRECTIONAL` for a two-direction C, `SHAPE_MISMATCH` for a state of another shape,
 * `INVALID_ARGUMENT` for L or chunk not a positive integer.
 * @example
 * ```ts
 * const y0 = s4dStateOutput(rt, params, state, 37);
 * const y = s4dConv(rt, chunk, K, { D, add: y0, activation: 'gelu' }); // the chunk continues from state
 * ```
 */
export function s4dStateOutput(runtime: Runtime, params: S4DParams, state: TensorLike, L: number, chunk?: number): Tensor {
  const op = 's4dStateOutput';
  const { H, modes, channels } = s4dSizes(op, params);
  if (channels !== 1) throw new StatespaceError('S4D_BIDIRECTIONAL', `${op}: a bidirectional S4D layer has no state to continue from`);
  assertArg(Number.isInteger(L) && L >= 1, op, `L=${L} must be a positive integer`);
  assertArg(chunk === undefined || (Number.isInteger(chunk) && chunk >= 1), op, `chunk=${chunk} must be a positive integer`);
  const B = state.shape[0];
  if (chunk === undefined) assertShape(op, 'state', state.shape, { batch: B, channels: H, modes, complex: 2 });
  else assertShape(op, 'state', state.shape, { batch: B, chunks: Math.ceil(L / chunk), channels: H, modes, complex: 2 });
  if (state.dtype !== 'f32') throw new StatespaceError('DTYPE_MISMATCH', `${op}: state must be f32, got ${state.dtype}`);
  const y = runtime.empty([B, L, H], 'f32', 's4d.stateOutput.y');
  runtime.run(createS4DStateOutputKernel({ B, L, H, modes, Q: chunk }), [params.logDt, params.logAReal, params.AImag, params.C, state, y]);
  return y;
}
