/**
 * Falcon-H1 (FalconH1ForCausalLM): attention and Mamba-2 side by side in every
 * layer on the same normed input, their outputs scaled and summed, then a
 * SwiGLU feed-forward. Its muP multipliers are applied where transformers applies
 * them: input/output multipliers on the two branches, embedding and lm_head
 * multipliers, and the per-row ones (ssm_multipliers on in_proj, key_multiplier,
 * mlp_multipliers) folded into the weights at load time. `mamba_rms_norm` (grouped gated RMSNorm,
 * norm before or after the gate) and `projectors_bias` (Mamba out_proj bias) as transformers builds them.
 * Reference: transformers 5.17 `models/falcon_h1`.
 */
import { StatespaceError } from '@statespace/core';
import type { ConfigReader } from '@statespace/checkpoint';
import { firstInt, intList } from './config-utils.js';
import type { BlockSpec, ModelSpec } from '../spec.js';
import { readRope } from './rope.js';

/** The block stack of a Falcon-H1 model. */
export function falconH1Spec(c: ConfigReader, architecture: string): ModelSpec {
  const hidden = c.optional.positiveInt('hidden_size', 4096);
  const layers = c.optional.positiveInt('num_hidden_layers', 32);
  const heads = c.optional.positiveInt('num_attention_heads', 32);
  const headDim = c.optional.positiveInt('head_dim', hidden / heads);
  const kvHeads = c.optional.positiveInt('num_key_value_heads', 8);
  const eps = c.optional.number('rms_norm_eps', 1e-5);
  const expand = c.optional.positiveInt('mamba_expand', 2);
  const dSsm = c.has('mamba_d_ssm') ? c.positiveInt('mamba_d_ssm') : expand * hidden;
  const nHeads = c.optional.positiveInt('mamba_n_heads', 128);
  const dHead = c.raw('mamba_d_head') === 'auto' || !c.has('mamba_d_head') ? dSsm / nHeads : c.positiveInt('mamba_d_head');
  const nGroups = c.optional.positiveInt('mamba_n_groups', 1);
  const dState = c.optional.positiveInt('mamba_d_state', 256);
  // mamba_rms_norm: FalconH1RMSNormGated over groups of d_ssm / mamba_n_groups, normalising y before
  // the silu(z) gate (mamba_norm_before_gate, transformers' default) or y·silu(z) after it; without it
  // the mixer output is y·silu(z) and there is no norm weight. projectors_bias: Mamba's out_proj has a bias.
  const rmsNorm = c.optional.bool('mamba_rms_norm', false);
  const normBeforeGate = c.optional.bool('mamba_norm_before_gate', true);
  const projectorsBias = c.optional.bool('projectors_bias', false);
  const inProjBias = c.optional.bool('mamba_proj_bias', false);
  const attnBias = c.optional.bool('attention_bias', false);
  if (rmsNorm && dSsm % nGroups !== 0) {
    throw new StatespaceError('UNSUPPORTED_CONFIG', `${c.file}: falcon_h1 mamba_rms_norm needs mamba_n_groups (${nGroups}) to divide mamba_d_ssm (${dSsm})`);
  }
  const rope = readRope(c, headDim);
  const ssmMult = c.optional.numberArray('ssm_multipliers', 5) ?? [1, 1, 1, 1, 1];
  const [gateMult, downMult] = c.optional.numberArray('mlp_multipliers', 2) ?? [1, 1];
  const keyMult = c.optional.number('key_multiplier', 1);
  const gts = nGroups * dState;
  const sections: [number, number][] = [
    [0, dSsm],
    [dSsm, 2 * dSsm],
    [2 * dSsm, 2 * dSsm + gts],
    [2 * dSsm + gts, 2 * dSsm + 2 * gts],
    [2 * dSsm + 2 * gts, 2 * dSsm + 2 * gts + nHeads],
  ];
  const weightScales: NonNullable<ModelSpec['weightScales']> = [];
  const blocks: BlockSpec[] = [];
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}.`;
    // transformers multiplies in_proj's output (its bias included) by the µP vector, and k_proj's output by key_multiplier.
    sections.forEach((rows, j) => {
      if (ssmMult[j] === 1) return;
      weightScales.push({ name: `${p}mamba.in_proj.weight`, rows, factor: ssmMult[j] });
      if (inProjBias) weightScales.push({ name: `${p}mamba.in_proj.bias`, rows, factor: ssmMult[j] });
    });
    if (keyMult !== 1) {
      weightScales.push({ name: `${p}self_attn.k_proj.weight`, factor: keyMult });
      if (attnBias) weightScales.push({ name: `${p}self_attn.k_proj.bias`, factor: keyMult });
    }
    if (gateMult !== 1) weightScales.push({ name: `${p}feed_forward.gate_proj.weight`, factor: gateMult });
    if (downMult !== 1) weightScales.push({ name: `${p}feed_forward.down_proj.weight`, factor: downMult });
    blocks.push({
      label: 'P',
      mixerNorm: { kind: 'rms', weight: `${p}input_layernorm.weight`, eps },
      mixers: [
        {
          kind: 'mamba2',
          prefix: `${p}mamba.`,
          inMultiplier: c.optional.number('ssm_in_multiplier', 1),
          outMultiplier: c.optional.number('ssm_out_multiplier', 1),
          config: {
            hiddenSize: hidden,
            numHeads: nHeads,
            headDim: dHead,
            stateSize: dState,
            nGroups,
            convKernel: c.optional.positiveInt('mamba_d_conv', 4),
            chunkSize: c.optional.positiveInt('mamba_chunk_size', 256),
            useConvBias: c.optional.bool('mamba_conv_bias', true),
            useBias: inProjBias,
            outProjBias: projectorsBias,
            timeStepLimit: ((c.optional.numberArray('time_step_limit', 2) as [number, number] | undefined) ?? [0, Infinity]),
            normEps: eps,
            gatedNorm: rmsNorm,
            ...(rmsNorm ? { normGroupSize: dSsm / nGroups, normBeforeGate } : {}),
          },
        },
        {
          kind: 'attention',
          prefix: `${p}self_attn.`,
          inMultiplier: c.optional.number('attention_in_multiplier', 1),
          outMultiplier: c.optional.number('attention_out_multiplier', 1),
          config: { hiddenSize: hidden, numHeads: heads, numKeyValueHeads: kvHeads, headDim, rope, qkvBias: attnBias, oBias: attnBias },
        },
      ],
      channelNorm: { kind: 'rms', weight: `${p}pre_ff_layernorm.weight`, eps },
      channel: { kind: 'glu', prefix: `${p}feed_forward.`, names: { gate: 'gate_proj.weight', up: 'up_proj.weight', down: 'down_proj.weight' }, intermediate: c.optional.positiveInt('intermediate_size', 14336) },
    });
  }
  const tied = c.optional.bool('tie_word_embeddings', false);
  const lmMult = c.optional.number('lm_head_multiplier', 1);
  return {
    architecture,
    vocabSize: c.optional.positiveInt('vocab_size', 128000),
    hiddenSize: hidden,
    embedding: 'model.embed_tokens.weight',
    embeddingMultiplier: c.optional.number('embedding_multiplier', 1),
    blocks,
    finalNorm: { kind: 'rms', weight: 'model.final_layernorm.weight', eps },
    lmHead: tied ? 'model.embed_tokens.weight' : 'lm_head.weight',
    logitsScaling: 1 / lmMult,
    weightScales,
    eosTokenIds: intList(c, 'eos_token_id'),
    bosTokenId: firstInt(c, 'bos_token_id'),
  };
}
