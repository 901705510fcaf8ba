/**
 * The S4D layer of state-spaces/s4 `models/s4/s4d.py` (`S4D` with `transposed=False`, eval mode) as a
 * {@link SequenceMixer}:
 *
 *   y = conv(x, K) + D·x            K from the diagonal SSM (s4dKernel); prefill: the chunked long convolution
 *                                   (s4dPrefill: chunks of Q tokens, O(L·Q), K of Q taps; a prompt of L ≤ Q in one
 *                                   tiled convolution plus the starting state's response); decode: the complex
 *                                   recurrence (s4dStep), O(1) state per channel
 *   y = GELU(y)
 *   out = GLU(W·y + bias)           Conv1d(H, 2H, 1) + GLU over the channels: first half · sigmoid(second half)
 *
 * Bidirectional (state-spaces/s4 `FFTConv`'s option): a second C reads the sequence backwards; such a layer sees
 * the whole sequence at once, so it refuses to continue from earlier tokens (no decode), and its prefill is the
 * two-sided direct convolution over all of L (O(L²), K of L taps): the backward half needs the future, so it
 * cannot be chunked.
 *
 * Shape glossary (packages/core/README.md, and s4d-params.ts): B batch, L seqlen, H channels (hidden size),
 * N d_state, modes = N/2.
 */
import {
  type LayerWeights,
  type Runtime,
  type SequenceMixer,
  type Tensor,
  type TensorLike,
  type WeightSpec,
  RecurrentState,
  StatespaceError,
  checkLayerWeights,
  checkMixerInput,
  assertArg,
  matmul,
} from '@statespace/core';
import { s4dConv } from './s4d-conv.js';
import type { S4DInit } from './s4d-init.js';
import { s4dKernel } from './s4d-kernel.js';
import type { S4DParams } from './s4d-params.js';
import { sigmoidGlu } from './sigmoid-glu.js';
import { S4D_PREFILL_CHUNK, s4dPrefill } from './s4d-prefill.js';
import { s4dStep } from './s4d-step.js';

/** Configuration of one S4D layer. `init`, `dtMin` and `dtMax` only matter to {@link s4dInitWeights}. */
export interface S4DConfig extends S4DInit {
  /**
   * How a call of more than one token runs: 'conv' (default; the Vandermonde kernel and the tiled convolution)
   * or 'recurrent' (the recurrence, token by token on the GPU). One-token calls always take the recurrence.
   */
  prefill?: 'conv' | 'recurrent';
  /**
   * Q of the chunked convolution prefill, a positive multiple of 16 (default {@link S4D_PREFILL_CHUNK} = 256):
   * prompts of more than Q tokens go through chunks of Q, shorter ones through one direct convolution.
   */
  prefillChunk?: number;
}

/**
 * State of an S4D layer: the complex SSM state (B, H, N/2, 2) in f32 (`ssm`); no conv window (`conv` is empty).
 *
 * @example
 * ```ts
 * const state = mixer.createState(1);
 * mixer.forward(prompt, state);
 * const fork = state.clone();
 * ```
 */
export class S4DState extends RecurrentState {}

/**
 * An S4D layer as a {@link SequenceMixer}, weights keyed by state-spaces/s4's names relative to the layer:
 * `D`, `kernel.log_dt`, `kernel.C`, `kernel.log_A_real`, `kernel.A_imag`, `output_linear.0.weight`,
 * `output_linear.0.bias`.
 *
 * @example
 * ```ts
 * const config = { hiddenSize: 24, stateSize: 64 };
 * const mixer = new S4DMixer(rt, config, weights); // e.g. uploads of s4dInitWeights(config, 1)
 * const state = mixer.createState(1);
 * const y = mixer.forward(x, state);   // x (1, L, 24): convolution mode
 * const y1 = mixer.forward(x1, state); // x1 (1, 1, 24): one recurrent step
 * ```
 */
export class S4DMixer implements SequenceMixer<S4DState> {
  readonly kind = 's4d';
  readonly config: S4DConfig;
  private readonly runtime: Runtime;
  private readonly params: S4DParams;
  private readonly D: Tensor;
  private readonly W: TensorLike;
  private readonly bias: Tensor;
  private K: Tensor | undefined;

  constructor(runtime: Runtime, config: S4DConfig, weights: LayerWeights) {
    const op = 'S4DMixer';
    const { hiddenSize: H, stateSize: N } = config;
    assertArg(Number.isInteger(H) && H >= 1, op, `hiddenSize=${H} must be a positive integer`);
    assertArg(Number.isInteger(N) && N >= 2 && N % 2 === 0, op, `stateSize=${N} must be a positive even integer (N/2 complex modes)`);
    assertArg(config.prefill === undefined || config.prefill === 'conv' || config.prefill === 'recurrent', op, `prefill must be 'conv' or 'recurrent', got ${config.prefill}`);
    const Q = config.prefillChunk;
    assertArg(Q === undefined || (Number.isInteger(Q) && Q >= 16 && Q % 16 === 0), op, `prefillChunk=${Q} must be a positive multiple of 16`);
    checkLayerWeights(op, S4DMixer.expectedWeights(config), weights, (d) => d === 'f32' || d === 'f16' || d === 'bf16');
    this.runtime = runtime;
    this.config = config;
    this.params = { logDt: weights['kernel.log_dt'], logAReal: weights['kernel.log_A_real'], AImag: weights['kernel.A_imag'], C: weights['kernel.C'] };
    this.D = weights['D'];
    this.W = weights['output_linear.0.weight'].reshape([2 * H, H]);
    this.bias = weights['output_linear.0.bias'];
  }

  /**
   * The weights a layer of this configuration needs (state-spaces/s4's names and shapes; `kernel.C` gains a
   * leading 2 when bidirectional).
   *
   * @example
   * ```ts
   * S4DMixer.expectedWeights({ hiddenSize: 24, stateSize: 64 }).map((w) => w.name); // ['D', 'kernel.log_dt', ...]
   * ```
   */
  static expectedWeights(config: S4DConfig): WeightSpec[] {
    const { hiddenSize: H, stateSize: N } = config;
    const modes = N / 2;
    return [
      { name: 'D', shape: [H], dtype: 'f32' },
      { name: 'kernel.log_dt', shape: [H], dtype: 'f32' },
      { name: 'kernel.C', shape: config.bidirectional ? [2, H, modes, 2] : [H, modes, 2], dtype: 'f32' },
      { name: 'kernel.log_A_real', shape: [H, modes], dtype: 'f32' },
      { name: 'kernel.A_imag', shape: [H, modes], dtype: 'f32' },
      { name: 'output_linear.0.weight', shape: [2 * H, H, 1] },
      { name: 'output_linear.0.bias', shape: [2 * H], dtype: 'f32' },
    ];
  }

  createState(batch: number): S4DState {
    assertArg(Number.isInteger(batch) && batch >= 1, 'S4DMixer.createState', `batch=${batch} must be a positive integer`);
    const { hiddenSize: H, stateSize: N } = this.config;
    // a bidirectional layer never continues, so it keeps no state
    return new S4DState(this.runtime, batch, { conv: [batch, 0], ssm: this.config.bidirectional ? [batch, 0] : [batch, H, N / 2, 2] }, 's4d');
  }

  /**
   * The kernel K of at least L rows, kept between calls (grown to the next power of two ≥ 64, at most `cap`: the
   * chunk Q of a causal layer, so K never has more than Q taps).
   */
  private kernelOf(L: number, cap = Infinity): Tensor {
    if (!this.K || this.K.shape[1] < L) {
      this.K?.dispose();
      this.K = s4dKernel(this.runtime, this.params, Math.max(L, Math.min(cap, Math.max(64, 2 ** Math.ceil(Math.log2(L))))));
    }
    return this.K;
  }

  forward(x: Tensor, state: S4DState): Tensor {
    const op = 'S4DMixer.forward';
    const rt = this.runtime;
    const H = this.config.hiddenSize;
    const [B, L] = checkMixerInput(op, x, H, state.batch);
    const bidirectional = !!this.config.bidirectional;
    if (bidirectional && state.length > 0) {
      throw new StatespaceError(
        'S4D_BIDIRECTIONAL',
        `${op}: this S4D layer is bidirectional (it reads the whole sequence at once) and cannot continue after ${state.length} tokens: decode needs a causal layer (bidirectional: false)`,
      );
    }
    let y: Tensor;
    if (!bidirectional && (L === 1 || this.config.prefill === 'recurrent')) {
      y = s4dStep(rt, x, this.params, state.ssm, { D: this.D, activation: 'gelu' });
    } else if (bidirectional) {
      y = s4dConv(rt, x, this.kernelOf(L), { D: this.D, activation: 'gelu' });
    } else {
      const Q = this.config.prefillChunk ?? S4D_PREFILL_CHUNK;
      const K = this.kernelOf(Math.min(L, Q), Q);
      y = s4dPrefill(rt, x, this.params, state.ssm, { K, D: this.D, activation: 'gelu', chunk: Q, stateIsZero: state.length === 0 });
    }
    const z = matmul(rt, y, this.W, { bias: this.bias });
    y.dispose();
    const out = sigmoidGlu(rt, z);
    z.dispose();
    state.advance(L);
    return out;
  }

  dispose(): void {
    this.K?.dispose();
    this.K = undefined;
  }
}
