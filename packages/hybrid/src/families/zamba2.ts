/**
 * Zamba2 (Zamba2ForCausalLM): a Mamba-2 backbone with a shared transformer
 * block applied at `hybrid_layer_ids` to concat(hidden, original embeddings).
 * Reference: transformers 5.17 `models/zamba2` (Zamba2Model.get_layers,
 * Zamba2HybridLayer, Zamba2AttentionDecoderLayer, Zamba2MambaDecoderLayer).
 *
 * Layer i of type `hybrid` is the j-th hybrid layer: it runs shared block
 * j % num_mem_blocks (whose weights are stored under the first hybrid layers,
 * `model.layers.<hybrid_layer_ids[j % num_mem_blocks]>.shared_transformer.`)
 * with adapters j, then `model.layers.i.linear`, and adds the result to the
 * input of its Mamba layer (`model.layers.i.mamba_decoder.`).
 */
import type { ConfigReader } from '@statespace/checkpoint';
import { StatespaceError } from '@statespace/core';
import { firstInt, intList } from './config-utils.js';
import type { BlockSpec, MixerSpec, ModelSpec, SharedBlockSpec } from '../spec.js';
import { type RopeConfig, readRope } from './rope.js';

/** Typed Zamba2Config with transformers' defaults (and its __post_init__ derivations). */
export interface Zamba2Config {
  vocabSize: number;
  hiddenSize: number;
  /** `linear_attention` (Mamba-2) or `hybrid` per layer. */
  layerTypes: ('linear_attention' | 'hybrid')[];
  numAttentionHeads: number;
  numKeyValueHeads: number;
  /** 2·hidden / heads (attention_head_dim). */
  attentionHeadDim: number;
  intermediateSize: number;
  hiddenAct: 'silu' | 'gelu' | 'gelu_tanh';
  numMemBlocks: number;
  useSharedAttentionAdapter: boolean;
  adapterRank: number;
  rope: RopeConfig | null;
  rmsNormEps: number;
  nMambaHeads: number;
  mambaHeadDim: number;
  mambaDState: number;
  mambaDConv: number;
  mambaNGroups: number;
  mambaExpand: number;
  chunkSize: number;
  timeStepMin: number;
  addBiasLinear: boolean;
  tieWordEmbeddings: boolean;
  eosTokenIds?: number[];
  bosTokenId?: number;
}

/** Zamba2Config's default layer pattern (54 layers). */
function defaultLayerTypes(): string[] {
  const h = 'hybrid';
  const m = 'linear_attention';
  return [m, ...Array.from({ length: 7 }, () => [m, m, m, m, m, h]).flat(), m, m, m, m, h, m, m, m, h, m, m];
}

/** Reads a Zamba2 config.json. */
export function parseZamba2Config(c: ConfigReader): Zamba2Config {
  const hiddenSize = c.optional.positiveInt('hidden_size', 2560);
  const heads = c.optional.positiveInt('num_attention_heads', 32);
  const nMambaHeads = c.optional.positiveInt('n_mamba_heads', 8);
  const expand = c.optional.positiveInt('mamba_expand', 2);
  const raw = c.has('layers_block_type') ? c.stringArray('layers_block_type') : c.has('layer_types') ? c.stringArray('layer_types') : defaultLayerTypes();
  const layerTypes = raw.map((t, i) => {
    if (t === 'hybrid') return 'hybrid' as const;
    if (t === 'mamba' || t === 'linear_attention') return 'linear_attention' as const;
    throw new StatespaceError('UNSUPPORTED_CONFIG', `${c.file}: zamba2 layer type ${JSON.stringify(t)} (layer ${i}) is not supported`);
  });
  const attentionHeadDim = Math.floor((2 * hiddenSize) / heads);
  const act = c.enum('hidden_act', ['gelu', 'gelu_pytorch_tanh', 'silu'] as const, 'gelu');
  const rope = c.optional.bool('use_mem_rope', false) ? readRope(c, attentionHeadDim) : null;
  if (rope && c.optional.bool('use_long_context', false)) rope.maxPositionEmbeddings = 16384;
  return {
    vocabSize: c.optional.positiveInt('vocab_size', 32000),
    hiddenSize,
    layerTypes,
    numAttentionHeads: heads,
    numKeyValueHeads: c.optional.positiveInt('num_key_value_heads', heads),
    attentionHeadDim,
    intermediateSize: c.optional.positiveInt('intermediate_size', 4 * hiddenSize),
    hiddenAct: act === 'gelu_pytorch_tanh' ? 'gelu_tanh' : act,
    numMemBlocks: c.optional.positiveInt('num_mem_blocks', 1),
    useSharedAttentionAdapter: c.optional.bool('use_shared_attention_adapter', false),
    adapterRank: c.optional.positiveInt('adapter_rank', 128),
    rope,
    rmsNormEps: c.optional.number('rms_norm_eps', 1e-5),
    nMambaHeads,
    mambaHeadDim: Math.floor((expand * hiddenSize) / nMambaHeads),
    mambaDState: c.optional.positiveInt('mamba_d_state', 64),
    mambaDConv: c.optional.positiveInt('mamba_d_conv', 4),
    mambaNGroups: c.optional.positiveInt('mamba_ngroups', 1),
    mambaExpand: expand,
    chunkSize: c.optional.positiveInt('chunk_size', 256),
    timeStepMin: c.optional.number('time_step_min', 0.001),
    addBiasLinear: c.optional.bool('add_bias_linear', false),
    tieWordEmbeddings: c.optional.bool('tie_word_embeddings', true),
    eosTokenIds: intList(c, 'eos_token_id'),
    bosTokenId: firstInt(c, 'bos_token_id'),
  };
}

/** The block stack of a Zamba2 model: one Mamba-2 block per layer, hybrid layers with a shared transformer site. */
export function zamba2Spec(cfg: Zamba2Config, architecture: string): ModelSpec {
  const D = cfg.hiddenSize;
  const I = cfg.mambaExpand * D;
  const mamba = (prefix: string): MixerSpec => ({
    kind: 'mamba2',
    prefix,
    config: {
      hiddenSize: D,
      numHeads: cfg.nMambaHeads,
      headDim: cfg.mambaHeadDim,
      stateSize: cfg.mambaDState,
      nGroups: cfg.mambaNGroups,
      convKernel: cfg.mambaDConv,
      chunkSize: cfg.chunkSize,
      // Zamba2MambaMixer: conv1d always has a bias; dt clamped to (time_step_min, inf); gated norm eps 1e-5, groups of I / n_groups.
      useConvBias: true,
      useBias: cfg.addBiasLinear,
      timeStepLimit: [cfg.timeStepMin, Infinity],
      normEps: 1e-5,
      normGroupSize: I / cfg.mambaNGroups,
    },
  });
  const attention = {
    hiddenSize: D,
    inputSize: 2 * D,
    numHeads: cfg.numAttentionHeads,
    numKeyValueHeads: cfg.numKeyValueHeads,
    headDim: cfg.attentionHeadDim,
    rope: cfg.rope,
    // Zamba2Attention: scaling = (head_dim / 2) ** -0.5
    scale: (cfg.attentionHeadDim / 2) ** -0.5,
  };
  const hybridIds = cfg.layerTypes.flatMap((t, i) => (t === 'hybrid' ? [i] : []));
  const blocks: BlockSpec[] = cfg.layerTypes.map((t, i) => {
    if (t === 'linear_attention') {
      const p = `model.layers.${i}.`;
      return { label: 'M', mixerNorm: { kind: 'rms', weight: `${p}input_layernorm.weight`, eps: cfg.rmsNormEps }, mixers: [mamba(`${p}mamba.`)] };
    }
    const j = hybridIds.indexOf(i);
    const owner = hybridIds[j % cfg.numMemBlocks];
    const shared: SharedBlockSpec = {
      kind: 'zamba2',
      prefix: `model.layers.${owner}.shared_transformer.`,
      adapter: j,
      linear: `model.layers.${i}.linear.weight`,
      attention,
      adapterRank: cfg.adapterRank,
      qkvAdapters: cfg.useSharedAttentionAdapter,
      intermediate: cfg.intermediateSize,
      act: cfg.hiddenAct,
      mlpBias: cfg.addBiasLinear,
      eps: cfg.rmsNormEps,
    };
    const p = `model.layers.${i}.mamba_decoder.`;
    return { label: 'H', sharedBlock: shared, mixerNorm: { kind: 'rms', weight: `${p}input_layernorm.weight`, eps: cfg.rmsNormEps }, mixers: [mamba(`${p}mamba.`)] };
  });
  return {
    architecture,
    vocabSize: cfg.vocabSize,
    hiddenSize: D,
    embedding: 'model.embed_tokens.weight',
    blocks,
    finalNorm: { kind: 'rms', weight: 'model.final_layernorm.weight', eps: cfg.rmsNormEps },
    lmHead: cfg.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight',
    eosTokenIds: cfg.eosTokenIds,
    bosTokenId: cfg.bosTokenId,
  };
}
