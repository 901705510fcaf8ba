/**
 * @statespace/deltanet: Gated DeltaNet (the gated delta rule) in WGSL: chunked (WY) prefill and
 * fused recurrent decode kernels, and Qwen3-Next's linear-attention layer built from them.
 *
 * @example
 * ```ts
 * import { Runtime } from '@statespace/core';
 * import { GatedDeltaNetMixer } from '@statespace/deltanet';
 * const rt = await Runtime.create();
 * const mixer = new GatedDeltaNetMixer(rt, config, weightsOfLayer); // transformers' names, relative to the layer
 * const state = mixer.createState(1);
 * const y = mixer.forward(x, state); // x (1, seqlen, hidden)
 * ```
 * @packageDocumentation
 */
export type { DeltaRuleAttrs, DeltaRuleShape } from './delta-rule-shape.js';
export { MAX_HEAD_K_DIM, L2NORM_EPS } from './delta-rule-shape.js';
export { RECURRENT_TILE_V, createRecurrentGatedDeltaRuleKernel } from './recurrent-gated-delta-rule.js';
export {
  CHUNK_AUX_WIDTH,
  CHUNK_PREPARE_THREADS,
  CHUNK_SCAN_TILE_V,
  type ChunkSegment,
  type DeltaRuleDims,
  MAX_CHUNK_SIZE,
  chunkGatedDeltaRuleReference,
  createChunkGatedDeltaRulePrepareKernel,
  createChunkGatedDeltaRuleScanKernel,
} from './chunk-gated-delta-rule.js';
export { type GatedDeltaRuleOptions, type QkvHeads, gatedDeltaRule, gatedDeltaRuleQkv, gatedDeltaRuleReference } from './gated-delta-rule.js';
export {
  type GatedDeltaNetHeads,
  type SplitProjections,
  createSplitProjectionsKernel,
  splitProjections,
  splitProjectionsReference,
} from './split-projections.js';
export { RMS_NORM_GATED_THREADS, createRmsNormGatedKernel, rmsNormGated, rmsNormGatedReference } from './rms-norm-gated.js';
export { type GatedDeltaNetConfig, GatedDeltaNetMixer, GatedDeltaNetState } from './gated-deltanet-mixer.js';
export { type GatedDeltaNetHostState, type GatedDeltaNetHostWeights, gatedDeltaNetReference } from './gated-deltanet-reference.js';
