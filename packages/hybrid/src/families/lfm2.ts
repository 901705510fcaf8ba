/**
 * LFM2 (Lfm2ForCausalLM, Liquid AI): `layer_types` of gated short convolutions (`conv`:
 * in_proj → B, C, x; C · conv(B · x) of width conv_L_cache; out_proj) and GQA attention
 * (`full_attention`, per-head RMSNorm of q and k before RoPE, `out_proj`), each followed by a
 * SwiGLU feed-forward (w1 gate, w3 up, w2 down) whose width transformers derives from
 * intermediate_size / block_ff_dim with block_auto_adjust_ff_dim, block_ffn_dim_multiplier and
 * block_multiple_of. Pre-norms `operator_norm` and `ffn_norm`; the final norm is `embedding_norm`.
 * Reference: transformers 5.17 `models/lfm2`.
 */
import type { ConfigReader } from '@statespace/checkpoint';
import { StatespaceError } from '@statespace/core';
import { firstInt, intList } from './config-utils.js';
import type { BlockSpec, ModelSpec } from '../spec.js';
import { readRope } from './rope.js';

/**
 * The feed-forward width of an LFM2 config, computed as transformers' Lfm2MLP does:
 * with block_auto_adjust_ff_dim, int(2·I/3), then (unless block_ffn_dim_multiplier is null)
 * int(multiplier · that) rounded up to a multiple of block_multiple_of. I is block_ff_dim
 * when the config has it (the original LFM2 key), else intermediate_size.
 *
 * @example
 * ```ts
 * lfm2IntermediateSize(config); // LFM2-1.2B: block_ff_dim 12288, multiplier 1, multiple of 256 → 8192
 * ```
 */
export function lfm2IntermediateSize(c: ConfigReader): number {
  let size = c.has('block_ff_dim') ? c.positiveInt('block_ff_dim') : c.optional.positiveInt('intermediate_size', 12288);
  if (c.optional.bool('block_auto_adjust_ff_dim', true)) {
    size = Math.trunc((2 * size) / 3);
    // an explicit null skips the multiplier and the rounding; an absent key is transformers' default 1.0
    const multiplier = c.json.block_ffn_dim_multiplier === null ? null : c.optional.number('block_ffn_dim_multiplier', 1);
    if (multiplier !== null) {
      const multiple = c.optional.positiveInt('block_multiple_of', 256);
      size = Math.trunc(multiplier * size);
      size = multiple * Math.floor((size + multiple - 1) / multiple);
    }
  }
  if (!(size >= 1)) throw new StatespaceError('UNSUPPORTED_CONFIG', `${c.file}: lfm2 feed-forward width works out to ${size}; expected a positive size`);
  return size;
}

/** The block stack of an LFM2 model. */
export function lfm2Spec(c: ConfigReader, architecture: string): ModelSpec {
  const hidden = c.optional.positiveInt('hidden_size', 2560);
  const layers = c.optional.positiveInt('num_hidden_layers', 32);
  const heads = c.optional.positiveInt('num_attention_heads', 32);
  const kvHeads = c.optional.positiveInt('num_key_value_heads', 8);
  const headDim = c.optional.positiveInt('head_dim', Math.floor(hidden / heads));
  const eps = c.optional.number('norm_eps', 1e-5);
  let types: string[];
  if (c.has('layer_types')) types = c.stringArray('layer_types');
  else {
    const full = new Set(c.has('full_attn_idxs') ? c.intArray('full_attn_idxs') : Array.from({ length: layers }, (_, i) => i));
    types = Array.from({ length: layers }, (_, i) => (full.has(i) ? 'full_attention' : 'conv'));
  }
  if (types.length !== layers) {
    throw new StatespaceError('UNSUPPORTED_CONFIG', `${c.file}: lfm2 layer_types has ${types.length} entries, num_hidden_layers is ${layers}`);
  }
  const intermediate = lfm2IntermediateSize(c);
  const rope = readRope(c, headDim, { theta: c.optional.number('theta', 1000000) });
  const convBias = c.optional.bool('conv_bias', false);
  const convKernel = c.optional.positiveInt('conv_L_cache', 3);
  const blocks: BlockSpec[] = types.map((t, i) => {
    const p = `model.layers.${i}.`;
    let mixer: BlockSpec['mixers'][number];
    if (t === 'conv') {
      mixer = { kind: 'short_conv', prefix: `${p}conv.`, config: { hiddenSize: hidden, convKernel, bias: convBias } };
    } else if (t === 'full_attention') {
      mixer = {
        kind: 'attention',
        prefix: `${p}self_attn.`,
        config: {
          hiddenSize: hidden,
          numHeads: heads,
          numKeyValueHeads: kvHeads,
          headDim,
          rope,
          qkNorm: { eps },
          weightNames: { 'o_proj.weight': 'out_proj.weight', 'q_norm.weight': 'q_layernorm.weight', 'k_norm.weight': 'k_layernorm.weight' },
        },
      };
    } else {
      throw new StatespaceError('UNSUPPORTED_CONFIG', `${c.file}: lfm2 layer type ${JSON.stringify(t)} (layer ${i}) is not supported (conv and full_attention are)`);
    }
    return {
      label: t === 'conv' ? 'C' : 'A',
      mixerNorm: { kind: 'rms', weight: `${p}operator_norm.weight`, eps },
      mixers: [mixer],
      channelNorm: { kind: 'rms', weight: `${p}ffn_norm.weight`, eps },
      channel: { kind: 'glu', prefix: `${p}feed_forward.`, names: { gate: 'w1.weight', up: 'w3.weight', down: 'w2.weight' }, intermediate },
    };
  });
  const tied = c.has('tie_embedding') ? c.bool('tie_embedding') : c.optional.bool('tie_word_embeddings', true);
  return {
    architecture,
    vocabSize: c.optional.positiveInt('vocab_size', 65536),
    hiddenSize: hidden,
    embedding: 'model.embed_tokens.weight',
    blocks,
    finalNorm: { kind: 'rms', weight: 'model.embedding_norm.weight', eps },
    lmHead: tied ? 'model.embed_tokens.weight' : 'lm_head.weight',
    eosTokenIds: intList(c, 'eos_token_id'),
    bosTokenId: firstInt(c, 'bos_token_id'),
  };
}
