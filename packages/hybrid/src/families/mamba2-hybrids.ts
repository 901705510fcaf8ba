/**
 * The Mamba-2 + attention hybrids: Bamba, Granite 4.0 hybrid
 * (`granitemoehybrid`), Nemotron-H and Falcon-H1. Reference: transformers 5.17
 * `models/bamba`, `models/granitemoehybrid`, `models/nemotron_h`, `models/falcon_h1`.
 */
import type { ConfigReader } from '@statespace/checkpoint';
import { StatespaceError } from '@statespace/core';
import { firstInt, intList } from './config-utils.js';
import type { BlockSpec, ChannelSpec, MixerSpec, ModelSpec } from '../spec.js';
import { readRope } from './rope.js';

/** Mamba-2 mixer settings shared by the hybrids (prefixes differ per family). */
export interface HybridMamba2Config {
  numHeads: number;
  headDim: number;
  stateSize: number;
  nGroups: number;
  convKernel: number;
  expand: number;
  chunkSize: number;
  useConvBias: boolean;
  useBias: boolean;
  timeStepLimit: [number, number];
  normEps: number;
  /** Gated-norm group size (intermediate / n_groups in Nemotron-H and Zamba2; the whole width elsewhere). */
  normGroupSize?: number;
  /** Falcon-H1 without mamba_rms_norm: y · silu(z) and no norm. */
  gatedNorm?: boolean;
}

function mamba2Mixer(prefix: string, hidden: number, m: HybridMamba2Config): MixerSpec {
  return {
    kind: 'mamba2',
    prefix,
    config: {
      hiddenSize: hidden,
      numHeads: m.numHeads,
      headDim: m.headDim,
      stateSize: m.stateSize,
      nGroups: m.nGroups,
      convKernel: m.convKernel,
      chunkSize: m.chunkSize,
      useConvBias: m.useConvBias,
      useBias: m.useBias,
      timeStepLimit: m.timeStepLimit,
      normEps: m.normEps,
      ...(m.normGroupSize !== undefined ? { normGroupSize: m.normGroupSize } : {}),
      ...(m.gatedNorm === false ? { gatedNorm: false } : {}),
    },
  };
}

/** The `mamba_*` keys Bamba and Granite 4.0 hybrid share, with transformers' defaults (mamba_d_head 'auto' = expand·hidden / heads). */
function readBambaStyleMamba2(c: ConfigReader, hidden: number, eps: number): HybridMamba2Config {
  const nHeads = c.optional.positiveInt('mamba_n_heads', 128);
  const expand = c.optional.positiveInt('mamba_expand', 2);
  return {
    numHeads: nHeads,
    headDim: c.raw('mamba_d_head') === 'auto' || !c.has('mamba_d_head') ? (expand * hidden) / nHeads : c.positiveInt('mamba_d_head'),
    stateSize: c.optional.positiveInt('mamba_d_state', 256),
    nGroups: c.optional.positiveInt('mamba_n_groups', 1),
    convKernel: c.optional.positiveInt('mamba_d_conv', 4),
    expand,
    chunkSize: c.optional.positiveInt('mamba_chunk_size', 256),
    useConvBias: c.optional.bool('mamba_conv_bias', true),
    useBias: c.optional.bool('mamba_proj_bias', false),
    timeStepLimit: ((c.optional.numberArray('time_step_limit', 2) as [number, number] | undefined) ?? [0, Infinity]),
    normEps: eps,
  };}

function eos(c: ConfigReader): Pick<ModelSpec, 'eosTokenIds' | 'bosTokenId'> {
  const e = intList(c, 'eos_token_id');
  return { eosTokenIds: e, bosTokenId: firstInt(c, 'bos_token_id') };
}

const MLP = { gate: 'gate_proj.weight', up: 'up_proj.weight', down: 'down_proj.weight' };

/** Bamba: attention at `attn_layer_indices`, Mamba-2 elsewhere, SwiGLU feed-forward in every layer. */
export function bambaSpec(c: ConfigReader, architecture: string): ModelSpec {
  const hidden = c.optional.positiveInt('hidden_size', 4096);
  const layers = c.optional.positiveInt('num_hidden_layers', 32);
  const heads = c.optional.positiveInt('num_attention_heads', 32);
  const headDim = c.optional.positiveInt('head_dim', hidden / heads);
  const eps = c.optional.number('rms_norm_eps', 1e-5);
  const attnIdx = new Set((c.optional.intArray('attn_layer_indices') ?? []));
  const m = readBambaStyleMamba2(c, hidden, eps);

  const rope = readRope(c, headDim, { partialRotaryFactor: 0.5 });
  const blocks: BlockSpec[] = [];
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}.`;
    const attn = attnIdx.has(i);
    blocks.push({
      label: attn ? 'A' : 'M',
      mixerNorm: { kind: 'rms', weight: `${p}input_layernorm.weight`, eps },
      mixers: [
        attn
          ? {
              kind: 'attention',
              prefix: `${p}self_attn.`,
              config: { hiddenSize: hidden, numHeads: heads, numKeyValueHeads: c.optional.positiveInt('num_key_value_heads', 8), headDim, rope, qkvBias: c.optional.bool('attention_bias', false), oBias: c.optional.bool('attention_bias', false) },
            }
          : mamba2Mixer(`${p}mamba.`, hidden, m),
      ],
      channelNorm: { kind: 'rms', weight: `${p}pre_ff_layernorm.weight`, eps },
      channel: { kind: 'glu', prefix: `${p}feed_forward.`, names: MLP, intermediate: c.optional.positiveInt('intermediate_size', 14336) },
    });
  }
  const tied = c.optional.bool('tie_word_embeddings', false);
  return {
    architecture,
    vocabSize: c.optional.positiveInt('vocab_size', 128000),
    hiddenSize: hidden,
    embedding: 'model.embed_tokens.weight',
    blocks,
    finalNorm: { kind: 'rms', weight: 'model.final_layernorm.weight', eps },
    lmHead: tied ? 'model.embed_tokens.weight' : 'lm_head.weight',
    ...eos(c),
  };
}

/**
 * Granite 4.0 hybrid: `layer_types` (mamba / attention), muP multipliers
 * (embedding_multiplier, residual_multiplier, attention_multiplier as the
 * attention scale, logits_scaling), a shared SwiGLU MLP in every layer and,
 * with num_local_experts > 0, a top-k MoE beside it (3-D expert weights are
 * split per expert by {@link granitePrepareNames}).
 */
export function graniteSpec(c: ConfigReader, architecture: string): ModelSpec {
  const hidden = c.optional.positiveInt('hidden_size', 4096);
  const layers = c.optional.positiveInt('num_hidden_layers', 32);
  const heads = c.optional.positiveInt('num_attention_heads', 32);
  const headDim = hidden / heads;
  const eps = c.optional.number('rms_norm_eps', 1e-6);
  const types = c.has('layer_types') ? c.stringArray('layer_types') : c.stringArray('layers_block_type');
  const m = readBambaStyleMamba2(c, hidden, eps);

  const rope = c.optional.string('position_embedding_type', 'nope') === 'rope' ? readRope(c, headDim) : null;
  const experts = c.optional.int('num_local_experts', 8);
  const residual = c.optional.number('residual_multiplier', 1);
  const shared = { names: { gateUp: 'shared_mlp.input_linear.weight', down: 'shared_mlp.output_linear.weight' }, intermediate: c.optional.positiveInt('shared_intermediate_size', 1024) };
  const blocks: BlockSpec[] = [];
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}.`;
    const attn = types[i] === 'attention' || types[i] === 'full_attention';
    const channel: ChannelSpec =
      experts > 0
        ? {
            kind: 'moe',
            prefix: p,
            numExperts: experts,
            topK: c.optional.positiveInt('num_experts_per_tok', 2),
            normTopK: true,
            router: 'block_sparse_moe.router.layer.weight',
            expert: { gateUp: 'block_sparse_moe.experts.{e}.input_linear.weight', down: 'block_sparse_moe.experts.{e}.output_linear.weight' },
            intermediate: c.optional.positiveInt('intermediate_size', 11008),
            shared,
          }
        : { kind: 'glu', prefix: p, names: shared.names, intermediate: shared.intermediate };
    blocks.push({
      label: attn ? 'A' : 'M',
      mixerNorm: { kind: 'rms', weight: `${p}input_layernorm.weight`, eps },
      mixers: [
        attn
          ? {
              kind: 'attention',
              prefix: `${p}self_attn.`,
              config: { hiddenSize: hidden, numHeads: heads, numKeyValueHeads: c.optional.positiveInt('num_key_value_heads', heads), headDim, rope, scale: c.optional.number('attention_multiplier', 1), qkvBias: c.optional.bool('attention_bias', false), oBias: c.optional.bool('attention_bias', false) },
            }
          : mamba2Mixer(`${p}mamba.`, hidden, m),
      ],
      channelNorm: { kind: 'rms', weight: `${p}post_attention_layernorm.weight`, eps },
      channel,
      residualMultiplier: residual,
    });
  }
  const tied = c.optional.bool('tie_word_embeddings', false);
  return {
    architecture,
    vocabSize: c.optional.positiveInt('vocab_size', 32000),
    hiddenSize: hidden,
    embedding: 'model.embed_tokens.weight',
    embeddingMultiplier: c.optional.number('embedding_multiplier', 1),
    blocks,
    finalNorm: { kind: 'rms', weight: 'model.norm.weight', eps },
    lmHead: tied ? 'model.embed_tokens.weight' : 'lm_head.weight',
    logitsScaling: c.optional.number('logits_scaling', 1),
    ...eos(c),
  };
}

/** Granite stores experts as 3-D tensors; these are the per-expert names they are split into. */
export function granitePrepareNames(c: ConfigReader): { source: string; target: string; count: number }[] {
  const experts = c.optional.int('num_local_experts', 8);
  if (experts <= 0) return [];
  const out: { source: string; target: string; count: number }[] = [];
  for (let i = 0; i < c.optional.positiveInt('num_hidden_layers', 32); i++) {
    const p = `model.layers.${i}.block_sparse_moe.`;
    out.push({ source: `${p}input_linear.weight`, target: `${p}experts.{e}.input_linear.weight`, count: experts });
    out.push({ source: `${p}output_linear.weight`, target: `${p}experts.{e}.output_linear.weight`, count: experts });
  }
  return out;
}

/**
 * Nemotron-H's MoE layer ('E', NemotronHMoE): relu² experts routed by sigmoid scores plus
 * `e_score_correction_bias`, top-k inside the `topk_group` best of `n_group` groups, weights
 * renormalised (norm_topk_prob) and scaled by routed_scaling_factor; a relu² shared expert of
 * moe_shared_expert_intermediate_size on the layer's input; with moe_latent_size the routed experts
 * run between fc1_latent_proj and fc2_latent_proj.
 */
function nemotronHMoe(c: ConfigReader, prefix: string, hidden: number): ChannelSpec {
  const experts = c.optional.positiveInt('n_routed_experts', 8);
  const nGroup = c.optional.positiveInt('n_group', 1);
  const topkGroup = c.optional.positiveInt('topk_group', 1);
  const topK = c.optional.positiveInt('num_experts_per_tok', 2);
  const act = c.optional.string('mlp_hidden_act', 'relu2');
  if (act !== 'relu2') throw new StatespaceError('UNSUPPORTED_CONFIG', `${c.file}: nemotron_h mlp_hidden_act ${JSON.stringify(act)} is not supported (relu2 is)`);
  if (experts % nGroup !== 0 || experts / nGroup < 2 || topkGroup > nGroup || topK > topkGroup * (experts / nGroup)) {
    throw new StatespaceError('UNSUPPORTED_CONFIG', `${c.file}: nemotron_h routing n_routed_experts=${experts}, n_group=${nGroup}, topk_group=${topkGroup}, num_experts_per_tok=${topK} is not a valid grouped top-k (groups of at least 2 experts, k within the kept groups)`);
  }
  const latent = c.optional.positiveInt('moe_latent_size');
  return {
    kind: 'moe',
    prefix,
    numExperts: experts,
    topK,
    normTopK: c.optional.bool('norm_topk_prob', true),
    router: 'gate.weight',
    routing: { kind: 'sigmoid_grouped', correctionBias: 'gate.e_score_correction_bias', nGroup, topkGroup, scale: c.optional.number('routed_scaling_factor', 1) },
    expert: { up: 'experts.{e}.up_proj.weight', down: 'experts.{e}.down_proj.weight' },
    expertKind: 'relu2',
    intermediate: c.optional.positiveInt('moe_intermediate_size', 7688),
    shared: { names: { up: 'shared_experts.up_proj.weight', down: 'shared_experts.down_proj.weight' }, intermediate: c.optional.positiveInt('moe_shared_expert_intermediate_size', 7688), kind: 'relu2' },
    ...(latent ? { latent: { size: latent, down: 'fc1_latent_proj.weight', up: 'fc2_latent_proj.weight' } } : {}),
  };
}

/** Nemotron-H: one mixer per block from `layers_block_type` / `hybrid_override_pattern` (M Mamba-2, * attention, - relu² MLP, E MoE). */
export function nemotronHSpec(c: ConfigReader, architecture: string): ModelSpec {
  const hidden = c.optional.positiveInt('hidden_size', 4096);
  const eps = c.optional.number('layer_norm_epsilon', 1e-5);
  let types: string[];
  if (c.has('layers_block_type')) types = c.stringArray('layers_block_type');
  else {
    const pattern = c.string('hybrid_override_pattern');
    const map: Record<string, string> = { M: 'mamba', '*': 'attention', '-': 'mlp', E: 'moe' };
    types = [...pattern].map((ch) => map[ch] ?? ch);
  }
  if (c.optional.bool('mlp_bias', false)) throw new StatespaceError('UNSUPPORTED_CONFIG', `${c.file}: nemotron_h with mlp_bias=true is not supported (MLP, expert and latent projections without biases are)`);
  const heads = c.optional.positiveInt('num_attention_heads', 32);
  const nHeads = c.optional.positiveInt('mamba_num_heads', 128);
  const headDim = c.optional.positiveInt('mamba_head_dim', 64);
  const nGroups = c.optional.positiveInt('n_groups', 8);
  const inter = nHeads * headDim;
  const m: HybridMamba2Config = {
    numHeads: nHeads,
    headDim,
    stateSize: c.optional.positiveInt('ssm_state_size', 128),
    nGroups,
    convKernel: c.optional.positiveInt('conv_kernel', 4),
    expand: c.optional.positiveInt('expand', 2),
    chunkSize: c.optional.positiveInt('chunk_size', 128),
    useConvBias: c.optional.bool('use_conv_bias', true),
    useBias: c.optional.bool('use_bias', false),
    // transformers clamps dt to (time_step_min, inf) in Nemotron-H's mixer.
    timeStepLimit: [c.optional.number('time_step_min', 0.001), Infinity],
    normEps: eps,
    normGroupSize: inter / nGroups,
  };
  const blocks: BlockSpec[] = types.map((t, i) => {
    const p = `backbone.layers.${i}.`;
    const norm = { kind: 'rms' as const, weight: `${p}norm.weight`, eps };
    if (t === 'mamba' || t === 'linear_attention') return { label: 'M', mixerNorm: norm, mixers: [mamba2Mixer(`${p}mixer.`, hidden, m)] };
    if (t === 'attention' || t === 'full_attention') {
      return {
        label: '*',
        mixerNorm: norm,
        mixers: [
          {
            kind: 'attention',
            prefix: `${p}mixer.`,
            config: { hiddenSize: hidden, numHeads: heads, numKeyValueHeads: c.optional.positiveInt('num_key_value_heads', 8), headDim: c.optional.positiveInt('head_dim', 128), rope: null, qkvBias: c.optional.bool('attention_bias', false), oBias: c.optional.bool('attention_bias', false) },
          },
        ],
      };
    }
    if (t === 'mlp') return { label: '-', mixers: [], channelNorm: norm, channel: { kind: 'relu2', prefix: `${p}mixer.`, intermediate: c.optional.positiveInt('intermediate_size', 21504) } };
    if (t === 'moe') return { label: 'E', mixers: [], channelNorm: norm, channel: nemotronHMoe(c, `${p}mixer.`, hidden) };
    throw new StatespaceError('UNSUPPORTED_CONFIG', `${c.file}: nemotron_h layer type ${JSON.stringify(t)} (layer ${i}) is not supported (mamba / M, attention / *, mlp / -, moe / E are)`);
  });
  const tied = c.optional.bool('tie_word_embeddings', false);
  return {
    architecture,
    vocabSize: c.optional.positiveInt('vocab_size', 131072),
    hiddenSize: hidden,
    embedding: 'backbone.embeddings.weight',
    blocks,
    finalNorm: { kind: 'rms', weight: 'backbone.norm_f.weight', eps },
    lmHead: tied ? 'backbone.embeddings.weight' : 'lm_head.weight',
    ...eos(c),
  };
}
