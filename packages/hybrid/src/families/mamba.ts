/**
 * Mamba (MambaForCausalLM) and FalconMamba (FalconMambaForCausalLM).
 * Reference: transformers 5.17 `models/mamba/configuration_mamba.py`,
 * `modeling_mamba.py` (MambaBlock: h + mixer(norm(h)); norm_f; tied lm_head) and
 * `models/falcon_mamba` (RMS norms without weight on dt, B and C inside the mixer).
 */
import type { ConfigReader } from '@statespace/checkpoint';
import { firstInt, intList } from './config-utils.js';
import type { ModelSpec } from '../spec.js';
import { backboneSpec } from './backbone.js';

/** Typed MambaConfig / FalconMambaConfig with transformers' defaults. */
export interface MambaConfig {
  vocabSize: number;
  hiddenSize: number;
  stateSize: number;
  numHiddenLayers: number;
  layerNormEpsilon: number;
  expand: number;
  convKernel: number;
  useBias: boolean;
  useConvBias: boolean;
  intermediateSize: number;
  timeStepRank: number;
  tieWordEmbeddings: boolean;
  /** FalconMamba: eps of the weightless RMS norms on dt, B, C (undefined for plain Mamba). */
  mixerRmsEps?: number;
  eosTokenId?: number;
  bosTokenId?: number;
}

/** Reads a Mamba or FalconMamba config.json. */
export function parseMambaConfig(c: ConfigReader): MambaConfig {
  const falcon = c.string('model_type') === 'falcon_mamba';
  const hiddenSize = c.optional.int('hidden_size', 768);
  const expand = c.optional.int('expand', 2);
  const rank = c.raw('time_step_rank');
  return {
    vocabSize: c.optional.int('vocab_size', 50280),
    hiddenSize,
    stateSize: c.optional.int('state_size', 16),
    numHiddenLayers: c.optional.int('num_hidden_layers', 32),
    layerNormEpsilon: c.optional.number('layer_norm_epsilon', 1e-5),
    expand,
    convKernel: c.optional.int('conv_kernel', 4),
    useBias: c.optional.bool('use_bias', false),
    useConvBias: c.optional.bool('use_conv_bias', true),
    intermediateSize: c.optional.int('intermediate_size', expand * hiddenSize),
    timeStepRank: rank === undefined || rank === 'auto' ? Math.ceil(hiddenSize / 16) : c.int('time_step_rank'),
    tieWordEmbeddings: c.optional.bool('tie_word_embeddings', true),
    mixerRmsEps: falcon ? c.optional.number('mixer_rms_eps', 1e-6) : undefined,
    eosTokenId: firstInt(c, 'eos_token_id'),
    bosTokenId: firstInt(c, 'bos_token_id'),
  };
}

/** The block stack of a Mamba / FalconMamba model. */
export function mambaSpec(cfg: MambaConfig, architecture: string): ModelSpec {
  return backboneSpec({
    architecture,
    vocabSize: cfg.vocabSize,
    hiddenSize: cfg.hiddenSize,
    layers: cfg.numHiddenLayers,
    eps: cfg.layerNormEpsilon,
    tieWordEmbeddings: cfg.tieWordEmbeddings,
    eosTokenId: cfg.eosTokenId,
    bosTokenId: cfg.bosTokenId,
    mixer: (prefix) => ({
      kind: 'mamba1',
      prefix,
      config: {
        hiddenSize: cfg.hiddenSize,
        intermediateSize: cfg.intermediateSize,
        stateSize: cfg.stateSize,
        convKernel: cfg.convKernel,
        timeStepRank: cfg.timeStepRank,
        useBias: cfg.useBias,
        useConvBias: cfg.useConvBias,
        bcdtNorm: cfg.mixerRmsEps !== undefined ? 'unweighted' : 'none',
        normEps: cfg.mixerRmsEps ?? cfg.layerNormEpsilon,
      },
    }),
  });
}
