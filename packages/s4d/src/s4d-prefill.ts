/**
 * S4D's chunked prefill: the causal long convolution y = act(K ∗ u + D·u) over a whole prompt in O(L·Q) instead of
 * O(L²), continuing from a state and leaving the state for decode. The prompt is split into chunks of Q tokens;
 * by linearity each output is
 *
 *   y[t] = act( Σ_{c·Q ≤ s ≤ t} K[t − s]·u[s]                         in-chunk convolution, Q taps of K (s4dConv)
 *             + 2·Re( Σ_n C·exp(dt·A·(t − c·Q + 1))·x_c )              the chunk's starting state x_c (s4dStateOutput)
 *             + D·u[t] ),   c = ⌊t/Q⌋
 *
 * with the starting states x_c from a two-level scan of the recurrence (s4dChunkStates). Four dispatches whatever
 * L: chunk-local end states, the pass over chunks, every chunk's state response (written into y), and the tiled
 * in-chunk convolution adding to it. Memory: K of min(L, Q) taps, the starting states (B, ⌈L/Q⌉, H, modes, 2), y;
 * nothing of L×L. A prompt of L ≤ Q takes the one-shot direct convolution (the state's response, the convolution,
 * the state advanced by the recurrence).
 *
 * Not an FFT convolution: WGSL has no FFT, and an FFT convolution needs O(L) complex buffers per channel; the chunked
 * one is O(L·Q) with small buffers, exact in the order of a direct sum, and the state it carries is the decode state.
 * Causal layers only: a bidirectional layer's backward half needs the future, so it stays on {@link s4dConv}'s
 * two-sided direct convolution over all of L.
 *
 * Shape glossary (packages/core/README.md, and s4d-params.ts): B batch, L seqlen, H channels, modes = N/2,
 * Q chunk length.
 */
import { type Runtime, StatespaceError, type Tensor, type TensorLike, assertArg, assertShape } from '@statespace/core';
import { s4dChunkStates } from './s4d-chunk-states.js';
import { S4D_CONV_TILE, createS4DConvKernel } from './s4d-conv.js';
import { s4dKernel } from './s4d-kernel.js';
import { type S4DParams, s4dSizes } from './s4d-params.js';
import { createS4DStateOutputKernel } from './s4d-state-output.js';
import { s4dAdvanceState } from './s4d-step.js';

/**
 * The default chunk Q of {@link s4dPrefill}: 256 taps keep the in-chunk convolution (≤ 16 input tiles per output
 * tile, 128 multiply-adds per output on average) about as costly as the state response (N/2 complex exponentials
 * per output), and ⌈L/256⌉ keeps the pass over chunks short.
 */
export const S4D_PREFILL_CHUNK = 256;

/** Options of {@link s4dPrefill}. */
export interface S4DPrefillAttrs {
  /** (H): skip connection D·u, added before the activation. */
  D?: TensorLike;
  /** 'gelu' (exact erf) or 'none' (default). */
  activation?: 'gelu' | 'none';
  /** Q, a positive multiple of 16 (default {@link S4D_PREFILL_CHUNK}). */
  chunk?: number;
  /** The kernel (1, ≥ min(L, Q), H), e.g. kept between calls; computed here (and released) when omitted. */
  K?: TensorLike;
  /** The state is known to be zero (a fresh one): a prompt of L ≤ Q then skips the state's response. */
  stateIsZero?: boolean;
}

/**
 * Prefills u (B, L, H) from `state` (B, H, modes, 2) by the chunked convolution, advancing `state` in place over
 * the L tokens: the same y and state as {@link s4dStep} over u, in O(L·Q) parallel work.
 *
 * @returns y (B, L, H).
 * @throws StatespaceError `S4D_BIDIRECTIONAL` for a two-direction C (use {@link s4dConv}), `SHAPE_MISMATCH` /
 * `DTYPE_MISMATCH` for bad inputs, `INVALID_ARGUMENT` for a chunk that is not a positive multiple of 16.
 * @example
 * ```ts
 * const state = rt.zeros([1, H, modes, 2]);
 * const y = s4dPrefill(rt, prompt, params, state, { D, activation: 'gelu' }); // prompt (1, 3000, H): 12 chunks of 256
 * const y1 = s4dStep(rt, next, params, state, { D, activation: 'gelu' });     // decode continues after the prompt
 * ```
 */
export function s4dPrefill(runtime: Runtime, u: TensorLike, params: S4DParams, state: TensorLike, attrs: S4DPrefillAttrs = {}): Tensor {
  const op = 's4dPrefill';
  const { H, modes, channels } = s4dSizes(op, params);
  if (channels !== 1) {
    throw new StatespaceError('S4D_BIDIRECTIONAL', `${op}: C has a backward direction (shape [${params.C.shape.join(',')}]); a bidirectional layer cannot be chunked (its backward half needs the future): use s4dConv`);
  }
  const Q = attrs.chunk ?? S4D_PREFILL_CHUNK;
  assertArg(Number.isInteger(Q) && Q >= S4D_CONV_TILE && Q % S4D_CONV_TILE === 0, op, `chunk=${Q} must be a positive multiple of ${S4D_CONV_TILE}`);
  if (u.shape.length !== 3 || u.shape[2] !== H || u.shape[1] < 1) throw new StatespaceError('SHAPE_MISMATCH', `${op}: u has shape [${u.shape.join(',')}], expected [batch, seqlen ≥ 1, channels=${H}]`);
  const [B, L] = u.shape;
  assertShape(op, 'state', state.shape, { batch: B, channels: H, modes, complex: 2 });
  const rows = Math.min(L, Q);
  if (attrs.K && (attrs.K.shape.length !== 3 || attrs.K.shape[0] !== 1 || attrs.K.shape[1] < rows || attrs.K.shape[2] !== H)) {
    throw new StatespaceError('SHAPE_MISMATCH', `${op}: K has shape [${attrs.K.shape.join(',')}], expected [channels=1, kernel rows ≥ ${rows}, channels=${H}]`);
  }
  if (attrs.D) assertShape(op, 'D', attrs.D.shape, { channels: H });
  for (const [name, t] of [['u', u], ['state', state], ['K', attrs.K], ['D', attrs.D]] as const) {
    if (t && t.dtype !== 'f32') throw new StatespaceError('DTYPE_MISMATCH', `${op}: ${name} must be f32, got ${t.dtype}`);
  }
  const ownK = attrs.K ? undefined : s4dKernel(runtime, params, rows);
  const K = attrs.K ?? ownK!;
  const y = runtime.empty([B, L, H], 'f32', 's4d.prefill.y');
  const stateParams = [params.logDt, params.logAReal, params.AImag, params.C];
  // y ← the starting states' response (every chunk's, or the one state's), then y ← act(K ∗ u + D·u + y)
  let accumulate = true;
  if (L > Q) {
    const starts = s4dChunkStates(runtime, u, params, state, Q);
    runtime.run(createS4DStateOutputKernel({ B, L, H, modes, Q }), [...stateParams, starts, y]);
    starts.dispose();
  } else {
    if (attrs.stateIsZero) accumulate = false;
    else runtime.run(createS4DStateOutputKernel({ B, L, H, modes }), [...stateParams, state, y]);
    s4dAdvanceState(runtime, u, params, state);
  }
  const conv = createS4DConvKernel(
    { B, L, H, Lk: K.shape[1], Q },
    { skip: !!attrs.D, add: false, accumulate, bidirectional: false, activation: attrs.activation ?? 'none' },
  );
  runtime.run(conv, [u, K, ...(attrs.D ? [attrs.D] : []), y]);
  ownK?.dispose();
  return y;
}
