/**
 * The `backbone.*` layout Mamba, FalconMamba and Mamba-2 checkpoints share:
 * `backbone.embeddings`, blocks `backbone.layers.{i}` of norm + mixer, `backbone.norm_f`,
 * and an lm_head tied to the embeddings or not.
 */
import type { MixerSpec, ModelSpec } from '../spec.js';

/** The spec of a pure SSM in the backbone layout; `mixer(i, prefix)` gives layer i's mixer. */
export function backboneSpec(o: {
  architecture: string;
  vocabSize: number;
  hiddenSize: number;
  layers: number;
  eps: number;
  tieWordEmbeddings: boolean;
  eosTokenId?: number;
  bosTokenId?: number;
  mixer: (prefix: string) => MixerSpec;
}): ModelSpec {
  return {
    architecture: o.architecture,
    vocabSize: o.vocabSize,
    hiddenSize: o.hiddenSize,
    embedding: 'backbone.embeddings.weight',
    blocks: Array.from({ length: o.layers }, (_, i) => ({
      label: 'M',
      mixerNorm: { kind: 'rms' as const, weight: `backbone.layers.${i}.norm.weight`, eps: o.eps },
      mixers: [o.mixer(`backbone.layers.${i}.mixer.`)],
    })),
    finalNorm: { kind: 'rms', weight: 'backbone.norm_f.weight', eps: o.eps },
    lmHead: o.tieWordEmbeddings ? 'backbone.embeddings.weight' : 'lm_head.weight',
    eosTokenIds: o.eosTokenId !== undefined ? [o.eosTokenId] : undefined,
    bosTokenId: o.bosTokenId,
  };
}
