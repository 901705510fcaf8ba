/**
 * @statespace/hybrid: the layer scheduler, every model family (pure or hybrid),
 * custom hybrid ratios and the generation session.
 *
 * @example
 * ```ts
 * import { Runtime } from '@statespace/core';
 * import { loadModel, Session } from '@statespace/hybrid';
 * const rt = await Runtime.create();
 * const { model } = await loadModel(rt, './my-mamba2');
 * const session = new Session(model);
 * for await (const t of session.generate([1, 2, 3], { maxNewTokens: 8 })) console.log(t);
 * ```
 * @packageDocumentation
 */
export {
  type BlockSpec,
  type ChannelSpec,
  type GluNames,
  type MixerKind,
  type MixerSpec,
  type ModelSpec,
  type NormSpec,
  type SharedBlockSpec,
  patternOf,
} from './spec.js';
export { HybridModel, type LogitsSelection, ModelState, type ModelStateCheckpoint } from './model.js';
export {
  DEFAULT_PREFILL_CHUNK,
  type GenerateOptions,
  type PrefillOptions,
  type PrefillProgress,
  Session,
  type SessionMemory,
  type SessionOptions,
  type SessionSnapshot,
} from './session.js';
export { DecodeEngine, type DecodeEngineStats, type DecodeSelection, GpuSampler } from './decode-engine.js';
export { type SamplingOptions, argmaxHost, sampleToken, samplerSettings, seededRandom } from './sampling.js';
export { type HybridComposition, composeModel, composeSpec, patternFromRatio } from './compose.js';
export { type LoadModelOptions, type LoadedModel, loadModel, readModelSpec } from './load.js';
export { type ModelWeightSpec, modelWeights, randomWeightValues, randomWeights } from './weights.js';
export { type ChannelMixer, GluMlp, MoeLayer, Relu2Mlp, channelWeightShapes, createChannelMixer, sub } from './channel.js';
export {
  MOE_MAX_GROUPS,
  type MoeGroupedRoutingOptions,
  createMoeAccumulateKernel,
  createMoeGroupedRoutingKernel,
  createMoeRoutingKernel,
  moeAccumulate,
  moeGroupedRouting,
  moeGroupedRoutingReference,
  moeRouting,
  moeRoutingReference,
} from './moe.js';
export { concatLastDim, concatLastDimReference, createConcatKernel } from './concat.js';
export { Zamba2SharedBlock, type SharedBlockWeight } from './zamba2-block.js';
export { type MixerFactory, mixerFactories } from './mixers.js';
export { type Family, families, familyOf } from './families/index.js';
