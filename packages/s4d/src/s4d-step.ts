/**
 * S4D's recurrent mode (decode; S4D paper section 2, the ZOH recurrence of a diagonal SSM), over any number of tokens:
 *
 *   x[b, h, n] ← exp(dt·A)·x + (exp(dt·A) − 1)/A · u[b, t, h]          complex, O(1) state per channel
 *   y[b, t, h] = act( 2·Re( Σ_n C[h, n]·x[b, h, n] ) + D[h]·u[b, t, h] )
 *
 * which equals the convolution with the Vandermonde kernel K[l] = 2·Re(C·(exp(dtA) − 1)/A·exp(dtA)^l) token for
 * token. One thread per (b, h) with the modes in an outer loop (each mode's exp(dt·A) is computed once), y
 * accumulated in place; the state-only variant ({@link s4dAdvanceState}) is one thread per (b, h, n).
 *
 * Shape glossary (packages/core/README.md, and s4d-params.ts): B batch, L seqlen, H channels, modes = N/2.
 */
import { type KernelDescriptor, type Runtime, StatespaceError, type Tensor, type TensorLike, type UniformLayout, WGSL_BUILTINS, WGSL_LINEAR_WORKGROUP, assertShape, linearDispatch, memoWgsl, wgslActivations, wgslBindings } from '@statespace/core';
import { S4D_PARAM_BINDINGS, type S4DParams, WGSL_S4D_COMPLEX, s4dSizes } from './s4d-params.js';

const THREADS = 64;
const layout = { B: 'u32', L: 'u32', H: 'u32', modes: 'u32' } as const satisfies UniformLayout;

/** Options of {@link s4dStep}. */
export interface S4DStepAttrs {
  /** (H): skip connection D·u, added before the activation. */
  D?: TensorLike;
  /** 'gelu' (exact erf) or 'none' (default). */
  activation?: 'gelu' | 'none';
}

/**
 * Builds the recurrence kernel. With `output` it writes y and the state (one thread per (b, h)); without, it only
 * advances the state (one thread per (b, h, n)).
 *
 * @example
 * ```ts
 * const kernel = createS4DRecurrenceKernel({ B: 1, L: 1, H: 24, modes: 32 }, { output: true, skip: true, activation: 'gelu' });
 * ```
 */
export function createS4DRecurrenceKernel(
  shape: { B: number; L: number; H: number; modes: number },
  attrs: { output: boolean; skip: boolean; activation: 'gelu' | 'none' },
): KernelDescriptor {
  const { output, skip, activation } = attrs;
  const bindings = [
    { name: 'uIn', type: 'f32', access: 'read' }, // (B, L, H)
    ...S4D_PARAM_BINDINGS,
    ...(output ? [{ name: 'C', type: 'f32', access: 'read' } as const] : []), // (H, modes, 2)
    ...(output && skip ? [{ name: 'D', type: 'f32', access: 'read' } as const] : []), // (H)
    { name: 'state', type: 'f32', access: 'read_write' }, // (B, H, modes, 2)
    ...(output ? [{ name: 'y', type: 'f32', access: 'read_write' } as const] : []), // (B, L, H)
  ] as const;
  const cacheKey = output ? `y${skip ? 'D' : ''}_${activation}` : 'state';
  const body = output
    ? `  if (i >= u.B * u.H) { return; }
  let h = i % u.H;
  let b = i / u.H;
  for (var t = 0u; t < u.L; t++) {
    let o = (b * u.L + t) * u.H + h;
    y[o] = ${skip ? 'D[h] * uIn[o]' : '0.0'};
  }
  for (var n = 0u; n < u.modes; n++) {
    let a = s4d_a_(h, n);
    let dta = s4d_dta_(h, n);
    let dA = cexp_(dta.x, dta.y);
    let dB = cdiv_(cexpm1_(dta.x, dta.y), a);
    let ci = (h * u.modes + n) * 2u;
    let c = vec2<f32>(C[ci], C[ci + 1u]);
    let si = ((b * u.H + h) * u.modes + n) * 2u;
    var x = vec2<f32>(state[si], state[si + 1u]);
    for (var t = 0u; t < u.L; t++) {
      let o = (b * u.L + t) * u.H + h;
      x = cmul_(dA, x) + dB * uIn[o];
      y[o] += 2.0 * (c.x * x.x - c.y * x.y);
    }
    state[si] = x.x;
    state[si + 1u] = x.y;
  }
${activation === 'gelu' ? `  for (var t = 0u; t < u.L; t++) {
    let o = (b * u.L + t) * u.H + h;
    y[o] = gelu_(y[o]);
  }
` : ''}`
    : `  if (i >= u.B * u.H * u.modes) { return; }
  let n = i % u.modes;
  let h = (i / u.modes) % u.H;
  let b = i / (u.modes * u.H);
  let a = s4d_a_(h, n);
  let dta = s4d_dta_(h, n);
  let dA = cexp_(dta.x, dta.y);
  let dB = cdiv_(cexpm1_(dta.x, dta.y), a);
  let si = i * 2u;
  var x = vec2<f32>(state[si], state[si + 1u]);
  for (var t = 0u; t < u.L; t++) { x = cmul_(dA, x) + dB * uIn[(b * u.L + t) * u.H + h]; }
  state[si] = x.x;
  state[si + 1u] = x.y;
`;
  const wgsl = memoWgsl('s4d_recurrence', cacheKey, () => `${wgslBindings(layout, bindings)}
${wgslActivations()}
${WGSL_S4D_COMPLEX}
@compute @workgroup_size(${THREADS})
fn main(${WGSL_BUILTINS}) {
  let i = ${WGSL_LINEAR_WORKGROUP} * ${THREADS}u + li;
${body}}`);
  const threads = output ? shape.B * shape.H : shape.B * shape.H * shape.modes;
  return {
    name: output ? 's4d_step' : 's4d_advance_state',
    cacheKey,
    wgsl,
    workgroupSize: [THREADS, 1, 1],
    dispatch: linearDispatch(threads / THREADS),
    bindings,
    uniformLayout: layout,
    uniforms: shape,
  };
}

function checkRecurrence(op: string, u: TensorLike, params: S4DParams, state: TensorLike): { B: number; L: number; H: number; modes: number } {
  const { H, modes, channels } = s4dSizes(op, params);
  if (channels !== 1) {
    throw new StatespaceError('S4D_BIDIRECTIONAL', `${op}: C has a backward direction (shape [${params.C.shape.join(',')}]); a bidirectional S4D layer reads the whole sequence at once and has no recurrent form`);
  }
  if (u.shape.length !== 3 || u.shape[2] !== H) throw new StatespaceError('SHAPE_MISMATCH', `${op}: u has shape [${u.shape.join(',')}], expected [batch, seqlen, channels=${H}]`);
  if (u.dtype !== 'f32') throw new StatespaceError('DTYPE_MISMATCH', `${op}: u must be f32, got ${u.dtype}`);
  const [B, L] = u.shape;
  assertShape(op, 'state', state.shape, { batch: B, channels: H, modes, complex: 2 });
  if (state.dtype !== 'f32') throw new StatespaceError('DTYPE_MISMATCH', `${op}: state must be f32, got ${state.dtype}`);
  return { B, L, H, modes };
}

/**
 * Runs the recurrence over u (B, L, H) from `state` (B, H, modes, 2), updating it in place; L = 1 is a decode step.
 *
 * @returns y (B, L, H).
 * @throws StatespaceError `S4D_BIDIRECTIONAL` for a two-direction C, `SHAPE_MISMATCH` / `DTYPE_MISMATCH` for bad inputs.
 * @example
 * ```ts
 * const state = rt.zeros([1, H, modes, 2]);
 * const y1 = s4dStep(rt, u1, params, state, { D, activation: 'gelu' }); // u1 (1, 1, H): one token
 * ```
 */
export function s4dStep(runtime: Runtime, u: TensorLike, params: S4DParams, state: TensorLike, attrs: S4DStepAttrs = {}): Tensor {
  const op = 's4dStep';
  const shape = checkRecurrence(op, u, params, state);
  if (attrs.D) assertShape(op, 'D', attrs.D.shape, { channels: shape.H });
  const y = runtime.empty([shape.B, shape.L, shape.H], 'f32', 's4d.step.y');
  const kernel = createS4DRecurrenceKernel(shape, { output: true, skip: !!attrs.D, activation: attrs.activation ?? 'none' });
  runtime.run(kernel, [u, params.logDt, params.logAReal, params.AImag, params.C, ...(attrs.D ? [attrs.D] : []), state, y]);
  return y;
}

/**
 * Advances `state` (B, H, modes, 2) over u (B, L, H) without computing outputs: the state a convolution-mode prefill
 * leaves for decode.
 *
 * @throws StatespaceError as {@link s4dStep}.
 * @example
 * ```ts
 * const y = s4dConv(rt, prompt, s4dKernel(rt, params, L), { D, activation: 'gelu' });
 * s4dAdvanceState(rt, prompt, params, state); // now s4dStep continues after the prompt
 * ```
 */
export function s4dAdvanceState(runtime: Runtime, u: TensorLike, params: S4DParams, state: TensorLike): void {
  const shape = checkRecurrence('s4dAdvanceState', u, params, state);
  runtime.run(createS4DRecurrenceKernel(shape, { output: false, skip: false, activation: 'none' }), [u, params.logDt, params.logAReal, params.AImag, state]);
}
