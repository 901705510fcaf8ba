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
export * from './recurrent-gated-delta-rule.js';
export * from './chunk-gated-delta-rule.js';
export * from './gated-delta-rule.js';
export * from './split-projections.js';
export * from './rms-norm-gated.js';
export * from './gated-deltanet-mixer.js';
export * from './gated-deltanet-reference.js';
