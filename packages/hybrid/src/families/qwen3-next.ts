/**
 * Qwen3-Next (Qwen3NextForCausalLM): Gated DeltaNet and gated full attention in
 * `layer_types` (3:1 by default), a sparse MoE with a sigmoid-gated shared expert
 * every `decoder_sparse_step` layers (dense SwiGLU in `mlp_only_layers`), and
 * zero-centred RMSNorms (scale 1 + w). Reference: transformers 5.17 `models/qwen3_next`.
 */
import type { ConfigReader } from '@statespace/checkpoint';
import { firstInt, intList } from './config-utils.js';
import type { BlockSpec, ChannelSpec, ModelSpec } from '../spec.js';
import { readRope } from './rope.js';

/** The block stack of a Qwen3-Next model. */
export function qwen3NextSpec(c: ConfigReader, architecture: string): ModelSpec {
  const hidden = c.optional.positiveInt('hidden_size', 2048);
  const layers = c.optional.positiveInt('num_hidden_layers', 48);
  const heads = c.optional.positiveInt('num_attention_heads', 16);
  const headDim = c.optional.positiveInt('head_dim', 256);
  const eps = c.optional.number('rms_norm_eps', 1e-6);
  const interval = c.optional.positiveInt('full_attention_interval', 4);
  const types = c.has('layer_types') ? c.stringArray('layer_types') : Array.from({ length: layers }, (_, i) => ((i + 1) % interval === 0 ? 'full_attention' : 'linear_attention'));
  const rope = readRope(c, headDim, { partialRotaryFactor: 0.25 });
  const numExperts = c.optional.int('num_experts', 512);
  const sparseStep = c.optional.positiveInt('decoder_sparse_step', 1);
  const mlpOnly = new Set((c.optional.intArray('mlp_only_layers') ?? []));
  const MLP = { gate: 'gate_proj.weight', up: 'up_proj.weight', down: 'down_proj.weight' };
  const blocks: BlockSpec[] = [];
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}.`;
    const full = types[i] === 'full_attention';
    const moe = !mlpOnly.has(i) && numExperts > 0 && (i + 1) % sparseStep === 0;
    const channel: ChannelSpec = moe
      ? {
          kind: 'moe',
          prefix: `${p}mlp.`,
          numExperts,
          topK: c.optional.positiveInt('num_experts_per_tok', 10),
          normTopK: c.optional.bool('norm_topk_prob', true),
          router: 'gate.weight',
          expert: { gate: 'experts.{e}.gate_proj.weight', up: 'experts.{e}.up_proj.weight', down: 'experts.{e}.down_proj.weight' },
          intermediate: c.optional.positiveInt('moe_intermediate_size', 512),
          shared: {
            names: { gate: 'shared_expert.gate_proj.weight', up: 'shared_expert.up_proj.weight', down: 'shared_expert.down_proj.weight' },
            intermediate: c.optional.positiveInt('shared_expert_intermediate_size', 512),
            gate: 'shared_expert_gate.weight',
          },
        }
      : { kind: 'glu', prefix: `${p}mlp.`, names: MLP, intermediate: c.optional.positiveInt('intermediate_size', 5632) };
    blocks.push({
      label: full ? 'A' : 'D',
      mixerNorm: { kind: 'rms_unit', weight: `${p}input_layernorm.weight`, eps },
      mixers: [
        full
          ? {
              kind: 'attention',
              prefix: `${p}self_attn.`,
              config: {
                hiddenSize: hidden,
                numHeads: heads,
                numKeyValueHeads: c.optional.positiveInt('num_key_value_heads', 2),
                headDim,
                rope,
                qkvBias: c.optional.bool('attention_bias', false),
                oBias: c.optional.bool('attention_bias', false),
                qkNorm: { eps, unitOffset: true },
                outputGate: true,
              },
            }
          : {
              kind: 'gated_deltanet',
              prefix: `${p}linear_attn.`,
              config: {
                hiddenSize: hidden,
                numKeyHeads: c.optional.positiveInt('linear_num_key_heads', 16),
                numValueHeads: c.optional.positiveInt('linear_num_value_heads', 32),
                headKDim: c.optional.positiveInt('linear_key_head_dim', 128),
                headVDim: c.optional.positiveInt('linear_value_head_dim', 128),
                convKernel: c.optional.positiveInt('linear_conv_kernel_dim', 4),
                normEps: eps,
              },
            },
      ],
      channelNorm: { kind: 'rms_unit', weight: `${p}post_attention_layernorm.weight`, eps },
      channel,
    });
  }
  const tied = c.optional.bool('tie_word_embeddings', false);
  return {
    architecture,
    vocabSize: c.optional.positiveInt('vocab_size', 151936),
    hiddenSize: hidden,
    embedding: 'model.embed_tokens.weight',
    blocks,
    finalNorm: { kind: 'rms_unit', weight: 'model.norm.weight', eps },
    lmHead: tied ? 'model.embed_tokens.weight' : 'lm_head.weight',
    eosTokenIds: intList(c, 'eos_token_id'),
    bosTokenId: firstInt(c, 'bos_token_id'),
  };
}
