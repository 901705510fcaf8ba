/**
 * The shape of a model as the scheduler sees it: a stack of blocks, each a
 * sequence mixer (Mamba-1, Mamba-2, attention, Gated DeltaNet, ...) plus an
 * optional channel mixer (MLP, relu² MLP, MoE), with pre-norms and residuals.
 * Every model, pure or hybrid, is described this way; a family module turns a
 * Hugging Face config into a ModelSpec and a tensor-name map.
 */

/** A normalisation layer: RMSNorm (weight w or 1 + w) or LayerNorm. */
export interface NormSpec {
  /** `rms`: RMSNorm times w; `rms_unit`: RMSNorm times (1 + w) (Gemma-style, Qwen3-Next); `layer`: LayerNorm. */
  kind: 'rms' | 'rms_unit' | 'layer';
  /** Full tensor name of the weight (LayerNorm's bias is `<weight name without .weight>.bias`). */
  weight: string;
  /** Added to the variance before the square root. */
  eps: number;
}

/** Mixer kinds the scheduler can place in a block. */
export type MixerKind = 'mamba1' | 'mamba2' | 'mamba3' | 'attention' | 'gated_deltanet' | 'short_conv' | 's4d';

/** A sequence mixer: its kind, its prefix in the checkpoint and the kernel package's config. */
export interface MixerSpec {
  /** Which mixer class builds it (see {@link mixerFactories}). */
  kind: MixerKind;
  /** Tensor-name prefix, e.g. `backbone.layers.3.mixer.`. */
  prefix: string;
  /**
   * The config object the kernel package's mixer class takes. A `weightNames` entry
   * (mixer's name → checkpoint name, both relative to `prefix`) renames weights the
   * checkpoint calls differently (LFM2: `o_proj.weight` is `out_proj.weight`).
   */
  config: Record<string, unknown>;
  /** Multiplies the mixer's input (Falcon-H1's attention_in_multiplier / ssm_in_multiplier). */
  inMultiplier?: number;
  /** Multiplies the mixer's output before the residual add (Falcon-H1's *_out_multiplier). */
  outMultiplier?: number;
}

/** Names of a gated MLP's weights relative to its prefix: separate gate and up, or one fused gate_up. */
export interface GluNames {
  gate?: string;
  up?: string;
  /** One (2I, D) weight holding gate then up. */
  gateUp?: string;
  down: string;
}

/** A channel mixer (feed-forward). */
export type ChannelSpec =
  | { kind: 'glu'; prefix: string; names: GluNames; act?: 'silu' | 'gelu' | 'gelu_tanh'; intermediate: number }
  | { kind: 'relu2'; prefix: string; intermediate: number }
  | {
      kind: 'moe';
      prefix: string;
      numExperts: number;
      topK: number;
      /** Renormalise the top-k routing weights to sum to 1. */
      normTopK: boolean;
      /** Router weight name relative to prefix (`router.weight`, `gate.weight`). */
      router: string;
      /** Expert weight names relative to prefix, with `{e}` for the expert index. */
      expert: GluNames;
      intermediate: number;
      /** The experts' MLP: gated (`glu`, default) or down(relu(up(x))²) (`relu2`, Nemotron-H; only `up` and `down` names). */
      expertKind?: 'glu' | 'relu2';
      /** A shared expert (names relative to prefix; may point outside via `../`-free absolute names) with an optional sigmoid gate. */
      shared?: { names: GluNames; intermediate: number; gate?: string; kind?: 'glu' | 'relu2' };
      /**
       * Router: softmax over the router logits then top-k (default), or Nemotron-H's (DeepSeek-V3's)
       * sigmoid scores whose top-k is chosen on scores + `correctionBias` inside the `topkGroup` best
       * of `nGroup` expert groups (a group scores the sum of its two best), weighted by the plain
       * sigmoid scores (renormalised when `normTopK`) times `scale` (routed_scaling_factor).
       */
      routing?: { kind: 'sigmoid_grouped'; correctionBias: string; nGroup: number; topkGroup: number; scale: number };
      /** The routed experts work in a narrower width: `down` (size, D) before them, `up` (D, size) after (Nemotron-H's moe_latent_size). */
      latent?: { size: number; down: string; up: string };
    };

/**
 * Zamba2's shared transformer block as applied at one hybrid layer: RMSNorm of
 * concat(h, original embeddings) (2·hidden), attention with per-site LoRA
 * adapters on q/k/v, RMSNorm, gated MLP with a per-site LoRA adapter on
 * gate_up, then this site's `linear`. Its output is added to the block's mixer
 * input (before the mixer norm), not to the residual. The shared weights live
 * under `prefix` (the first hybrid layer using them); several sites share them.
 */
export interface SharedBlockSpec {
  kind: 'zamba2';
  /** Prefix of the shared weights, e.g. `model.layers.1.shared_transformer.`. */
  prefix: string;
  /** Index of this site's adapters in the adapter lists (the hybrid layer's rank). */
  adapter: number;
  /** Full name of this site's output projection (hidden, hidden), e.g. `model.layers.1.linear.weight`. */
  linear: string;
  /** The AttentionMixer config (inputSize 2·hidden, scale (head_dim / 2)^-1/2, RoPE or null). */
  attention: Record<string, unknown>;
  /** LoRA rank of the adapters. */
  adapterRank: number;
  /** q/k/v adapters present (use_shared_attention_adapter); the gate_up adapter always is. */
  qkvAdapters: boolean;
  /** MLP intermediate size (gate_up_proj has 2·intermediate rows). */
  intermediate: number;
  act: 'silu' | 'gelu' | 'gelu_tanh';
  /** gate_up_proj and down_proj have biases (add_bias_linear). */
  mlpBias: boolean;
  /** Epsilon of the two RMSNorms (input_layernorm over 2·hidden, pre_ff_layernorm). */
  eps: number;
}

/** One block of the stack. */
export interface BlockSpec {
  /** The kind of the block for pattern strings: M (Mamba), A (attention), D (DeltaNet), F (MLP only), ... */
  label: string;
  /** Usually one mixer; Falcon-H1 runs attention and Mamba-2 side by side on the same normed input and sums them. */
  mixers: MixerSpec[];
  /** Zamba2: a shared transformer block whose output is added to the mixer input (its KV cache is the block's first state). */
  sharedBlock?: SharedBlockSpec;
  /** Pre-norm of the mixer input. */
  mixerNorm?: NormSpec;
  /** The feed-forward layer after the mixer, if any. */
  channel?: ChannelSpec;
  /** Pre-norm of the channel mixer input. */
  channelNorm?: NormSpec;
  /** Scales each residual branch before it is added (Granite's residual_multiplier). */
  residualMultiplier?: number;
}

/**
 * A whole causal language model. Family modules build one from a config.json
 * ({@link readModelSpec}); {@link composeSpec} builds one from a layer pattern.
 *
 * @example
 * ```ts
 * const { spec } = await readModelSpec('./fixtures/hf-tiny/bamba');
 * console.log(spec.architecture, patternOf(spec), spec.hiddenSize, spec.vocabSize); // BambaForCausalLM MAM 64 320
 * const model = new HybridModel(rt, spec, weights); // weights keyed by the names the spec uses
 * ```
 */
export interface ModelSpec {
  /** Hugging Face architecture name (or `ComposedHybrid` for a composed hybrid). */
  architecture: string;
  /** Rows of the embedding table and of the logits. */
  vocabSize: number;
  /** Width of the residual stream. */
  hiddenSize: number;
  /** Full name of the embedding table. */
  embedding: string;
  /** Multiplies the embeddings (Granite's embedding_multiplier). */
  embeddingMultiplier?: number;
  /** The layers, in order. */
  blocks: BlockSpec[];
  /** The norm before the LM head. */
  finalNorm: NormSpec;
  /** Full name of the LM head weight (the embedding name when tied). */
  lmHead: string;
  /** Logits are divided by this (Granite's logits_scaling). */
  logitsScaling?: number;
  /**
   * Constant factors folded into weights when they are loaded (muP multipliers
   * that scale a projection's output rows: Falcon-H1's ssm_multipliers,
   * key_multiplier and mlp_multipliers). `rows` limits it to output rows [start, end).
   */
  weightScales?: { name: string; factor: number; rows?: [number, number] }[];
  /** Tokens the model treats as end of sequence. */
  eosTokenIds?: number[];
  /** Token the model expects first, when config.json names one. */
  bosTokenId?: number;
}

/**
 * Layer pattern of a spec as a string, one label per block, e.g. `MMMAMMMM`.
 *
 * @example
 * ```ts
 * const { spec } = await readModelSpec('./fixtures/hf-tiny/nemotron_h');
 * patternOf(spec); // 'M-M*-'
 * ```
 */
export function patternOf(spec: ModelSpec): string {
  return spec.blocks.map((b) => b.label).join('');
}
