/**
 * Llama (LlamaForCausalLM), the attention-only baseline. Reference: transformers
 * 5.17 `models/llama` (LlamaDecoderLayer: h + attn(input_layernorm(h)), then
 * h + mlp(post_attention_layernorm(h)); SwiGLU MLP; GQA; RoPE).
 */
import type { ConfigReader } from '@statespace/checkpoint';
import { firstInt, intList } from './config-utils.js';
import type { BlockSpec, ModelSpec } from '../spec.js';
import { type RopeConfig, readRope } from './rope.js';

/** Typed LlamaConfig with transformers' defaults. */
export interface LlamaConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  rmsNormEps: number;
  attentionBias: boolean;
  mlpBias: boolean;
  hiddenAct: 'silu' | 'gelu' | 'gelu_pytorch_tanh';
  rope: RopeConfig;
  tieWordEmbeddings: boolean;
  eosTokenId?: number;
  bosTokenId?: number;
}

/** Reads a Llama config.json. */
export function parseLlamaConfig(c: ConfigReader): LlamaConfig {
  const hiddenSize = c.optional.positiveInt('hidden_size', 4096);
  const numAttentionHeads = c.optional.positiveInt('num_attention_heads', 32);
  const headDim = c.optional.positiveInt('head_dim', hiddenSize / numAttentionHeads);
  return {
    vocabSize: c.optional.positiveInt('vocab_size', 32000),
    hiddenSize,
    intermediateSize: c.optional.positiveInt('intermediate_size', 11008),
    numHiddenLayers: c.optional.positiveInt('num_hidden_layers', 32),
    numAttentionHeads,
    numKeyValueHeads: c.optional.positiveInt('num_key_value_heads', numAttentionHeads),
    headDim,
    rmsNormEps: c.optional.number('rms_norm_eps', 1e-6),
    attentionBias: c.optional.bool('attention_bias', false),
    mlpBias: c.optional.bool('mlp_bias', false),
    hiddenAct: c.enum('hidden_act', ['silu', 'gelu', 'gelu_pytorch_tanh'] as const, 'silu'),
    rope: readRope(c, headDim),
    tieWordEmbeddings: c.optional.bool('tie_word_embeddings', false),
    eosTokenId: firstInt(c, 'eos_token_id'),
    bosTokenId: firstInt(c, 'bos_token_id'),
  };
}

/** The attention mixer config for a Llama-style layer. */
export function llamaAttentionConfig(cfg: Pick<LlamaConfig, 'hiddenSize' | 'numAttentionHeads' | 'numKeyValueHeads' | 'headDim' | 'rope' | 'attentionBias'>): Record<string, unknown> {
  return {
    hiddenSize: cfg.hiddenSize,
    numHeads: cfg.numAttentionHeads,
    numKeyValueHeads: cfg.numKeyValueHeads,
    headDim: cfg.headDim,
    rope: cfg.rope,
    qkvBias: cfg.attentionBias,
    oBias: cfg.attentionBias,
  };
}

/** The block stack of a Llama model. */
export function llamaSpec(cfg: LlamaConfig, architecture: string): ModelSpec {
  const blocks: BlockSpec[] = [];
  const act = cfg.hiddenAct === 'gelu_pytorch_tanh' ? 'gelu_tanh' : cfg.hiddenAct;
  for (let i = 0; i < cfg.numHiddenLayers; i++) {
    const p = `model.layers.${i}.`;
    blocks.push({
      label: 'A',
      mixerNorm: { kind: 'rms', weight: `${p}input_layernorm.weight`, eps: cfg.rmsNormEps },
      mixers: [{ kind: 'attention', prefix: `${p}self_attn.`, config: llamaAttentionConfig(cfg) }],
      channelNorm: { kind: 'rms', weight: `${p}post_attention_layernorm.weight`, eps: cfg.rmsNormEps },
      channel: { kind: 'glu', prefix: `${p}mlp.`, names: { gate: 'gate_proj.weight', up: 'up_proj.weight', down: 'down_proj.weight' }, act, intermediate: cfg.intermediateSize },
    });
  }
  return {
    architecture,
    vocabSize: cfg.vocabSize,
    hiddenSize: cfg.hiddenSize,
    embedding: 'model.embed_tokens.weight',
    blocks,
    finalNorm: { kind: 'rms', weight: 'model.norm.weight', eps: cfg.rmsNormEps },
    lmHead: cfg.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight',
    eosTokenIds: cfg.eosTokenId !== undefined ? [cfg.eosTokenId] : undefined,
    bosTokenId: cfg.bosTokenId,
  };
}
