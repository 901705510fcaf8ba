/**
 * The Gated DeltaNet sequence mixer of Qwen3-Next (transformers' `Qwen3NextGatedDeltaNet`):
 *
 *   qkvz = in_proj_qkvz(x), ba = in_proj_ba(x)          regrouped per key head (splitProjections)
 *   q, k, v = silu(causal_conv1d([q | k | v]))           short depthwise conv with a rolling state
 *   g = −exp(A_log)·softplus(a + dt_bias), β = sigmoid(b)
 *   o = gated delta rule(q, k, v, g, β)                  chunked for prefill, recurrent for decode
 *   y = out_proj(rmsnorm(o)·w·silu(z))                   per value head, norm before gate
 *
 * Shape glossary: B batch, L seqlen, D hidden size, Hk/Hv key/value heads, dk/dv head dims,
 * k conv kernel width, convDim = 2·Hk·dk + Hv·dv.
 */
import {
  type LayerWeights,
  type Runtime,
  type SequenceMixer,
  type Tensor,
  type WeightSpec,
  StatespaceError,
  checkLayerWeights,
  checkMixerInput,
  assertArg,
  matmul,
  RecurrentState,
} from '@statespace/core';
import { causalConv1d } from '@statespace/scan-wgsl';
import { MAX_HEAD_K_DIM } from './delta-rule-shape.js';
import { gatedDeltaRuleQkv } from './gated-delta-rule.js';
import { rmsNormGated } from './rms-norm-gated.js';
import { type GatedDeltaNetHeads, splitProjections } from './split-projections.js';

/** Configuration of one Gated DeltaNet layer (transformers' names in brackets). */
export interface GatedDeltaNetConfig {
  /** Model width D (`hidden_size`). */
  hiddenSize: number;
  /** Key/query heads Hk (`linear_num_key_heads`). */
  numKeyHeads: number;
  /** Value heads Hv, a multiple of Hk (`linear_num_value_heads`). */
  numValueHeads: number;
  /** Key head dim dk (`linear_key_head_dim`), at most 256. */
  headKDim: number;
  /** Value head dim dv (`linear_value_head_dim`). */
  headVDim: number;
  /** Conv kernel width k (`linear_conv_kernel_dim`). */
  convKernel: number;
  /** Epsilon of the gated output norm (`rms_norm_eps`). */
  normEps: number;
  /** Chunk size of the prefill kernel, 1..64 (default 64). */
  chunkSize?: number;
}

/** Channels of the short conv: q, k and v of all heads. */
function convDim(c: GatedDeltaNetConfig): number {
  return 2 * c.numKeyHeads * c.headKDim + c.numValueHeads * c.headVDim;
}

/**
 * State of a Gated DeltaNet layer: the conv window (B, convDim, k−1) and the delta rule state
 * (B, Hv, dk, dv), both f32.
 *
 * @example
 * ```ts
 * const state = mixer.createState(1);
 * mixer.forward(prompt, state);
 * const saved = await state.save();
 * const fork = state.clone();
 * ```
 */
export class GatedDeltaNetState extends RecurrentState {}

/**
 * Qwen3-Next's Gated DeltaNet linear-attention layer as a {@link SequenceMixer}. Weights are keyed
 * by transformers' names relative to the layer (`in_proj_qkvz.weight`, `in_proj_ba.weight`,
 * `conv1d.weight`, `dt_bias`, `A_log`, `norm.weight`, `out_proj.weight`), in f32, f16 or bf16.
 *
 * @example
 * ```ts
 * const config = GatedDeltaNetMixer.configFromHf(hfConfig); // config.json of a Qwen3-Next model
 * const mixer = new GatedDeltaNetMixer(rt, config, weightsOfLayer0);
 * const state = mixer.createState(1);
 * const y = mixer.forward(x, state);   // x (1, L, hidden): chunked prefill
 * const y1 = mixer.forward(x1, state); // x1 (1, 1, hidden): recurrent decode step
 * ```
 */
export class GatedDeltaNetMixer implements SequenceMixer<GatedDeltaNetState> {
  readonly kind = 'gated_deltanet';
  readonly config: GatedDeltaNetConfig;
  private readonly runtime: Runtime;
  private readonly weights: LayerWeights;
  private readonly heads: GatedDeltaNetHeads;

  constructor(runtime: Runtime, config: GatedDeltaNetConfig, weights: LayerWeights) {
    const op = 'GatedDeltaNetMixer';
    const { numKeyHeads: Hk, numValueHeads: Hv, headKDim: dk, convKernel: k } = config;
    assertArg(Hk > 0 && Hv % Hk === 0, op, `numValueHeads=${Hv} must be a multiple of numKeyHeads=${Hk}`);
    assertArg(dk >= 1 && dk <= MAX_HEAD_K_DIM, op, `headKDim=${dk} must be in 1..${MAX_HEAD_K_DIM}`);
    assertArg(Number.isInteger(k) && k >= 2, op, `convKernel=${k} must be an integer ≥ 2`);
    const chunk = config.chunkSize ?? 64;
    assertArg(Number.isInteger(chunk) && chunk >= 1 && chunk <= 64, op, `chunkSize=${chunk} must be an integer in 1..64`);
    checkLayerWeights(op, GatedDeltaNetMixer.expectedWeights(config), weights);
    this.runtime = runtime;
    this.config = config;
    this.weights = weights;
    this.heads = { numKeyHeads: Hk, numValueHeads: Hv, headKDim: dk, headVDim: config.headVDim };
  }

  /**
   * The weights a layer of this configuration needs, named as in transformers relative to the layer.
   *
   * @example
   * ```ts
   * for (const { name, shape } of GatedDeltaNetMixer.expectedWeights(config)) load(`model.layers.0.linear_attn.${name}`, shape);
   * ```
   */
  static expectedWeights(config: GatedDeltaNetConfig): WeightSpec[] {
    const { hiddenSize: D, numKeyHeads: Hk, numValueHeads: Hv, headKDim: dk, headVDim: dv, convKernel: k } = config;
    return [
      { name: 'in_proj_qkvz.weight', shape: [2 * Hk * dk + 2 * Hv * dv, D] },
      { name: 'in_proj_ba.weight', shape: [2 * Hv, D] },
      { name: 'conv1d.weight', shape: [convDim(config), 1, k] },
      { name: 'dt_bias', shape: [Hv] },
      { name: 'A_log', shape: [Hv] },
      { name: 'norm.weight', shape: [dv] },
      { name: 'out_proj.weight', shape: [D, Hv * dv] },
    ];
  }

  /**
   * Reads a layer configuration from a Qwen3-Next `config.json` object.
   *
   * @example
   * ```ts
   * const config = GatedDeltaNetMixer.configFromHf(JSON.parse(readFileSync('config.json', 'utf8')));
   * ```
   */
  static configFromHf(hf: Record<string, unknown>, chunkSize?: number): GatedDeltaNetConfig {
    const num = (key: string): number => {
      const v = hf[key];
      if (typeof v !== 'number') throw new StatespaceError('INVALID_CONFIG', `GatedDeltaNetMixer.configFromHf: ${key} is missing or not a number`);
      return v;
    };
    return {
      hiddenSize: num('hidden_size'),
      numKeyHeads: num('linear_num_key_heads'),
      numValueHeads: num('linear_num_value_heads'),
      headKDim: num('linear_key_head_dim'),
      headVDim: num('linear_value_head_dim'),
      convKernel: num('linear_conv_kernel_dim'),
      normEps: num('rms_norm_eps'),
      ...(chunkSize === undefined ? {} : { chunkSize }),
    };
  }

  createState(batch: number): GatedDeltaNetState {
    assertArg(Number.isInteger(batch) && batch >= 1, 'GatedDeltaNetMixer.createState', `batch=${batch} must be a positive integer`);
    const c = this.config;
    return new GatedDeltaNetState(this.runtime, batch, { conv: [batch, convDim(c), c.convKernel - 1], ssm: [batch, c.numValueHeads, c.headKDim, c.headVDim] }, 'gatedDeltaNet');
  }

  forward(x: Tensor, state: GatedDeltaNetState): Tensor {
    const op = 'GatedDeltaNetMixer.forward';
    const rt = this.runtime;
    const { hiddenSize: D, numValueHeads: Hv, headVDim: dv, normEps } = this.config;
    const [B, L] = checkMixerInput(op, x, D, state.batch);
    const w = this.weights;
    const qkvz = matmul(rt, x, w['in_proj_qkvz.weight']);
    const ba = matmul(rt, x, w['in_proj_ba.weight']);
    const { qkv, z, g, beta } = splitProjections(rt, qkvz, ba, w['A_log'], w['dt_bias'], this.heads);
    qkvz.dispose();
    ba.dispose();
    const mixed = causalConv1d(rt, qkv, w['conv1d.weight'], w['conv1d.bias'], state.conv, { activation: 'silu' });
    qkv.dispose();
    const o = gatedDeltaRuleQkv(rt, mixed, g, beta, state.ssm, this.heads, {
      form: L === 1 ? 'recurrent' : 'chunked',
      chunkSize: this.config.chunkSize ?? 64,
    });
    mixed.dispose();
    g.dispose();
    beta.dispose();
    const normed = rmsNormGated(rt, o.reshape([B, L, Hv * dv]), z, w['norm.weight'], normEps);
    o.dispose();
    z.dispose();
    const y = matmul(rt, normed, w['out_proj.weight']);
    normed.dispose();
    state.advance(L);
    return y;
  }
}
