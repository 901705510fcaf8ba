/**
 * Mamba-2 (Mamba2ForCausalLM). Reference: transformers 5.17
 * `models/mamba2/configuration_mamba2.py` and `modeling_mamba2.py`
 * (Mamba2Block: h + mixer(norm(h)); norm_f; tied lm_head).
 */
import type { ConfigReader } from '@statespace/checkpoint';
import { firstInt, intList } from './config-utils.js';
import type { ModelSpec } from '../spec.js';
import { backboneSpec } from './backbone.js';

/** Typed Mamba2Config with transformers' defaults. */
export interface Mamba2Config {
  vocabSize: number;
  hiddenSize: number;
  numHeads: number;
  headDim: number;
  stateSize: number;
  nGroups: number;
  numHiddenLayers: number;
  layerNormEpsilon: number;
  expand: number;
  convKernel: number;
  chunkSize: number;
  useBias: boolean;
  useConvBias: boolean;
  timeStepLimit: [number, number];
  tieWordEmbeddings: boolean;
  eosTokenId?: number;
  bosTokenId?: number;
}

/** Reads a Mamba-2 config.json. */
export function parseMamba2Config(c: ConfigReader): Mamba2Config {
  return {
    vocabSize: c.optional.int('vocab_size', 32768),
    hiddenSize: c.optional.int('hidden_size', 4096),
    numHeads: c.optional.int('num_heads', 128),
    headDim: c.optional.int('head_dim', 64),
    stateSize: c.optional.int('state_size', 128),
    nGroups: c.optional.int('n_groups', 8),
    numHiddenLayers: c.optional.int('num_hidden_layers', 64),
    layerNormEpsilon: c.optional.number('layer_norm_epsilon', 1e-5),
    expand: c.optional.int('expand', 2),
    convKernel: c.optional.int('conv_kernel', 4),
    chunkSize: c.optional.int('chunk_size', 256),
    useBias: c.optional.bool('use_bias', false),
    useConvBias: c.optional.bool('use_conv_bias', true),
    timeStepLimit: ((c.optional.numberArray('time_step_limit', 2) as [number, number] | undefined) ?? [0, Infinity]),
    tieWordEmbeddings: c.optional.bool('tie_word_embeddings', false),
    eosTokenId: firstInt(c, 'eos_token_id'),
    bosTokenId: firstInt(c, 'bos_token_id'),
  };
}

/** The block stack of a Mamba-2 model. */
export function mamba2Spec(cfg: Mamba2Config, architecture: string): ModelSpec {
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
      kind: 'mamba2',
      prefix,
      config: {
        hiddenSize: cfg.hiddenSize,
        numHeads: cfg.numHeads,
        headDim: cfg.headDim,
        stateSize: cfg.stateSize,
        nGroups: cfg.nGroups,
        convKernel: cfg.convKernel,
        chunkSize: cfg.chunkSize,
        useConvBias: cfg.useConvBias,
        useBias: cfg.useBias,
        timeStepLimit: cfg.timeStepLimit,
        normEps: cfg.layerNormEpsilon,
      },
    }),
  });
}
