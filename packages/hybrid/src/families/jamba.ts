/**
 * Jamba (JambaForCausalLM): Mamba-1 layers with weighted RMS norms on dt, B and C,
 * attention (no RoPE) every `attn_layer_period` layers at `attn_layer_offset`,
 * MoE every `expert_layer_period` at `expert_layer_offset`. Reference:
 * transformers 5.17 `models/jamba` (JambaAttentionDecoderLayer, JambaMambaDecoderLayer,
 * JambaSparseMoeBlock: softmax over experts then top-k, no renormalisation).
 */
import type { ConfigReader } from '@statespace/checkpoint';
import { firstInt, intList } from './config-utils.js';
import type { BlockSpec, ChannelSpec, ModelSpec } from '../spec.js';

/** Typed JambaConfig with transformers' defaults. */
export interface JambaConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  rmsNormEps: number;
  numExperts: number;
  numExpertsPerTok: number;
  attnLayerPeriod: number;
  attnLayerOffset: number;
  expertLayerPeriod: number;
  expertLayerOffset: number;
  mambaDState: number;
  mambaDConv: number;
  mambaExpand: number;
  mambaDtRank: number;
  mambaConvBias: boolean;
  mambaProjBias: boolean;
  tieWordEmbeddings: boolean;
  eosTokenId?: number;
  bosTokenId?: number;
}

/** Reads a Jamba config.json. */
export function parseJambaConfig(c: ConfigReader): JambaConfig {
  const hiddenSize = c.optional.positiveInt('hidden_size', 4096);
  const numAttentionHeads = c.optional.positiveInt('num_attention_heads', 32);
  const rank = c.raw('mamba_dt_rank');
  return {
    vocabSize: c.optional.positiveInt('vocab_size', 65536),
    hiddenSize,
    intermediateSize: c.optional.positiveInt('intermediate_size', 14336),
    numHiddenLayers: c.optional.positiveInt('num_hidden_layers', 32),
    numAttentionHeads,
    numKeyValueHeads: c.optional.positiveInt('num_key_value_heads', 8),
    rmsNormEps: c.optional.number('rms_norm_eps', 1e-6),
    numExperts: c.optional.positiveInt('num_experts', 16),
    numExpertsPerTok: c.optional.positiveInt('num_experts_per_tok', 2),
    attnLayerPeriod: c.optional.positiveInt('attn_layer_period', 8),
    attnLayerOffset: c.optional.int('attn_layer_offset', 4),
    expertLayerPeriod: c.optional.positiveInt('expert_layer_period', 2),
    expertLayerOffset: c.optional.int('expert_layer_offset', 1),
    mambaDState: c.optional.positiveInt('mamba_d_state', 16),
    mambaDConv: c.optional.positiveInt('mamba_d_conv', 4),
    mambaExpand: c.optional.positiveInt('mamba_expand', 2),
    mambaDtRank: rank === undefined || rank === 'auto' ? Math.ceil(hiddenSize / 16) : c.positiveInt('mamba_dt_rank'),
    mambaConvBias: c.optional.bool('mamba_conv_bias', true),
    mambaProjBias: c.optional.bool('mamba_proj_bias', false),
    tieWordEmbeddings: c.optional.bool('tie_word_embeddings', false),
    eosTokenId: firstInt(c, 'eos_token_id'),
    bosTokenId: firstInt(c, 'bos_token_id'),
  };
}

/** The block stack of a Jamba model. */
export function jambaSpec(cfg: JambaConfig, architecture: string): ModelSpec {
  const blocks: BlockSpec[] = [];
  const headDim = cfg.hiddenSize / cfg.numAttentionHeads;
  for (let i = 0; i < cfg.numHiddenLayers; i++) {
    const p = `model.layers.${i}.`;
    const attention = i % cfg.attnLayerPeriod === cfg.attnLayerOffset;
    const moe = cfg.numExperts > 1 && i % cfg.expertLayerPeriod === cfg.expertLayerOffset;
    const mlpNames = { gate: 'gate_proj.weight', up: 'up_proj.weight', down: 'down_proj.weight' };
    const channel: ChannelSpec = moe
      ? {
          kind: 'moe',
          prefix: `${p}feed_forward.`,
          numExperts: cfg.numExperts,
          topK: cfg.numExpertsPerTok,
          normTopK: false,
          router: 'router.weight',
          expert: { gate: 'experts.{e}.gate_proj.weight', up: 'experts.{e}.up_proj.weight', down: 'experts.{e}.down_proj.weight' },
          intermediate: cfg.intermediateSize,
        }
      : { kind: 'glu', prefix: `${p}feed_forward.`, names: mlpNames, intermediate: cfg.intermediateSize };
    blocks.push({
      label: attention ? 'A' : 'M',
      mixerNorm: { kind: 'rms', weight: `${p}input_layernorm.weight`, eps: cfg.rmsNormEps },
      mixers: [
        attention
          ? {
              kind: 'attention',
              prefix: `${p}self_attn.`,
              config: { hiddenSize: cfg.hiddenSize, numHeads: cfg.numAttentionHeads, numKeyValueHeads: cfg.numKeyValueHeads, headDim, rope: null },
            }
          : {
              kind: 'mamba1',
              prefix: `${p}mamba.`,
              config: {
                hiddenSize: cfg.hiddenSize,
                intermediateSize: cfg.mambaExpand * cfg.hiddenSize,
                stateSize: cfg.mambaDState,
                convKernel: cfg.mambaDConv,
                timeStepRank: cfg.mambaDtRank,
                useBias: cfg.mambaProjBias,
                useConvBias: cfg.mambaConvBias,
                bcdtNorm: 'weighted',
                normEps: cfg.rmsNormEps,
              },
            },
      ],
      channelNorm: { kind: 'rms', weight: `${p}pre_ff_layernorm.weight`, eps: cfg.rmsNormEps },
      channel,
    });
  }
  return {
    architecture,
    vocabSize: cfg.vocabSize,
    hiddenSize: cfg.hiddenSize,
    embedding: 'model.embed_tokens.weight',
    blocks,
    finalNorm: { kind: 'rms', weight: 'model.final_layernorm.weight', eps: cfg.rmsNormEps },
    lmHead: cfg.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight',
    eosTokenIds: cfg.eosTokenId !== undefined ? [cfg.eosTokenId] : undefined,
    bosTokenId: cfg.bosTokenId,
  };
}
