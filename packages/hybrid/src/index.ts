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
export * from './spec.js';
export * from './model.js';
export * from './session.js';
export { DecodeEngine, type DecodeEngineStats, type DecodeSelection, GpuSampler } from './decode-engine.js';
export * from './sampling.js';
export * from './compose.js';
export * from './load.js';
export * from './weights.js';
export { type ChannelMixer, GluMlp, MoeLayer, Relu2Mlp, channelWeightShapes, createChannelMixer, sub } from './channel.js';
export * from './moe.js';
export * from './concat.js';
export { Zamba2SharedBlock, type SharedBlockWeight } from './zamba2-block.js';
export { type MixerFactory, mixerFactories } from './mixers.js';
export { type Family, families, familyOf } from './families/index.js';
