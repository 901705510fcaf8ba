/**
 * LFM2's gated short convolution mixer (transformers 5.17 `Lfm2ShortConv`) on the fused
 * {@link gatedShortConv} kernel.
 *
 * Shape glossary:
 *   b  batch      L  seqlen      H  hidden_size (also the conv's channels)      k  conv_L_cache
 *
 *   BCx = in_proj(h)                          (b, L, 3H) = [B | C | x]
 *   y   = C · conv(B · x)                     (b, L, H)  depthwise causal conv of width k, no activation;
 *                                                         conv state (b, H, k-1) holds the last B·x
 *   out = out_proj(y)                         (b, L, H)
 *
 * `conv_bias` gives in_proj, the conv and out_proj biases together, as in transformers.
 */
import {
  type LayerWeights,
  type PendingNorm,
  RecurrentState,
  type Runtime,
  type SequenceMixer,
  StatespaceError,
  isFloatWeightDType,
  type Tensor,
  type WeightSpec,
  linear,
  matmul,
  matmulReference,
} from '@statespace/core';
import { gatedShortConv, gatedShortConvReference } from './gated-short-conv.js';

/** Configuration of a {@link ShortConvMixer}, in transformers' terms. */
export interface ShortConvConfig {
  /** hidden_size: the width of the residual stream and of the conv. */
  hiddenSize: number;
  /** conv_L_cache: the conv's kernel width k. */
  convKernel: number;
  /** conv_bias: in_proj, conv and out_proj have biases. */
  bias: boolean;
}

/**
 * The conv state of one short conv layer: (batch, hidden, k-1), the last k-1 gated inputs
 * (no SSM state). Clone, reset, save/load, copyFrom and replayed decode come from {@link RecurrentState}.
 *
 * @example
 * ```ts
 * const state = mixer.createState(1);
 * mixer.forward(prompt, state);
 * const copy = state.clone();
 * ```
 */
export class ShortConvState extends RecurrentState {}

/**
 * LFM2's gated short conv layer. Weights are keyed by transformers' names relative to the
 * layer (`model.layers.0.conv.` + `in_proj.weight`, `conv.weight`, `out_proj.weight`, and their
 * biases with conv_bias); projections may be f32, f16 or bf16.
 *
 * @example
 * ```ts
 * const mixer = new ShortConvMixer(rt, { hiddenSize: 1024, convKernel: 3, bias: false }, weights);
 * const state = mixer.createState(1);
 * const y = mixer.forward(x, state);     // x (1, L, 1024) prefill
 * const y1 = mixer.forward(x1, state);   // x1 (1, 1, 1024) decode step
 * ```
 */
export class ShortConvMixer implements SequenceMixer<ShortConvState> {
  readonly kind = 'short_conv';
  readonly fusesInputNorm = true;
  readonly config: Readonly<ShortConvConfig>;
  private readonly runtime: Runtime;
  private readonly w: LayerWeights;

  /** The weights a layer of this configuration needs, relative to the layer's prefix. */
  static expectedWeights(config: ShortConvConfig): WeightSpec[] {
    const H = config.hiddenSize;
    const k = config.convKernel;
    return [
      { name: 'in_proj.weight', shape: [3 * H, H] },
      ...(config.bias ? [{ name: 'in_proj.bias', shape: [3 * H], dtype: 'f32' as const }] : []),
      { name: 'conv.weight', shape: [H, 1, k] },
      ...(config.bias ? [{ name: 'conv.bias', shape: [H] }] : []),
      { name: 'out_proj.weight', shape: [H, H] },
      ...(config.bias ? [{ name: 'out_proj.bias', shape: [H], dtype: 'f32' as const }] : []),
    ];
  }

  constructor(runtime: Runtime, config: ShortConvConfig, weights: LayerWeights) {
    const { hiddenSize: H, convKernel: k } = config;
    if (!(Number.isInteger(H) && H >= 1)) throw new StatespaceError('INVALID_ARGUMENT', `ShortConvMixer: hiddenSize must be a positive integer, got ${H}`);
    if (!(Number.isInteger(k) && k >= 1 && k <= 64)) throw new StatespaceError('INVALID_ARGUMENT', `ShortConvMixer: convKernel ${k} is outside [1, 64]`);
    for (const spec of ShortConvMixer.expectedWeights(config)) {
      const t = weights[spec.name];
      if (!t) throw new StatespaceError('MISSING_WEIGHT', `ShortConvMixer: weight ${spec.name} [${spec.shape.join(',')}] is missing`);
      const same = (s: readonly number[]) => s.length === t.shape.length && s.every((d, i) => d === t.shape[i]);
      const ok = same(spec.shape) || (spec.name === 'conv.weight' && same([spec.shape[0], spec.shape[2]]));
      if (!ok) throw new StatespaceError('SHAPE_MISMATCH', `ShortConvMixer: ${spec.name} has shape [${t.shape.join(',')}], expected [${spec.shape.join(',')}]`);
      if (!isFloatWeightDType(t.dtype)) throw new StatespaceError('DTYPE_MISMATCH', `ShortConvMixer: ${spec.name} is ${t.dtype}, expected a float type`);
    }
    this.runtime = runtime;
    this.config = { ...config };
    this.w = weights;
  }

  createState(batch: number): ShortConvState {
    const { hiddenSize: H, convKernel: k } = this.config;
    return new ShortConvState(this.runtime, batch, { conv: [batch, H, k - 1], ssm: [batch, 0] }, 'shortConv');
  }

  forward(x: Tensor | PendingNorm, state: ShortConvState): Tensor {
    const H = this.config.hiddenSize;
    if (x.shape.length !== 3 || x.shape[2] !== H) {
      throw new StatespaceError('SHAPE_MISMATCH', `ShortConvMixer.forward: x has shape [${x.shape.join(',')}], expected [batch, seqlen, hidden=${H}]`);
    }
    if (x.dtype !== 'f32') throw new StatespaceError('DTYPE_MISMATCH', `ShortConvMixer.forward: x must be f32, got ${x.dtype}`);
    if (state.batch !== x.shape[0]) throw new StatespaceError('SHAPE_MISMATCH', `ShortConvMixer.forward: the state holds ${state.batch} sequences, x has batch ${x.shape[0]}`);
    const rt = this.runtime;
    const w = this.w;
    const bcx = linear(rt, x, w['in_proj.weight'], { bias: w['in_proj.bias'] }); // (b, L, 3H)
    const y = gatedShortConv(rt, bcx, w['conv.weight'], w['conv.bias'], state.conv); // (b, L, H)
    bcx.dispose();
    const out = matmul(rt, y, w['out_proj.weight'], { bias: w['out_proj.bias'] }); // (b, L, H)
    y.dispose();
    state.advance(x.shape[1]);
    return out;
  }
}

/**
 * CPU reference of the whole layer on host weights keyed like {@link ShortConvMixer.expectedWeights}
 * (f32 values, conv weight (H, k) or (H, 1, k) flattened). Returns the output (batch, seqlen, hidden)
 * and the final conv state (batch, hidden, k-1).
 *
 * @example
 * ```ts
 * const { y, conv } = shortConvMixerReference(config, hostWeights, x, 1, 37);
 * ```
 */
export function shortConvMixerReference(
  config: ShortConvConfig,
  weights: Readonly<Record<string, Float32Array>>,
  x: Float32Array,
  batch: number,
  seqlen: number,
  initialConv?: Float32Array,
): { y: Float32Array; conv: Float32Array } {
  const { hiddenSize: H, convKernel: k } = config;
  const M = batch * seqlen;
  const bcx = matmulReference(x, weights['in_proj.weight'], M, 3 * H, H, config.bias ? weights['in_proj.bias'] : undefined);
  const conv = gatedShortConvReference(bcx, weights['conv.weight'], config.bias ? weights['conv.bias'] : undefined, initialConv ?? new Float32Array(batch * H * (k - 1)), {
    batch,
    seqlen,
    channels: H,
    kernelSize: k,
  });
  const y = matmulReference(conv.y, weights['out_proj.weight'], M, H, H, config.bias ? weights['out_proj.bias'] : undefined);
  return { y, conv: conv.state };
}
