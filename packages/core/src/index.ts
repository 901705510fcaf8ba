/**
 * @statespace/core: tensors, the WebGPU device (browser and Node), the kernel
 * runtime and the basic ops every model needs.
 *
 * @example
 * ```ts
 * import { Runtime, rmsNorm } from '@statespace/core';
 * const rt = await Runtime.create();
 * console.log(rt.adapterName);
 * ```
 * @packageDocumentation
 */
export * from './errors.js';
export { seededRandom } from './random.js';
export * from './dtype.js';
export * from './device.js';
export * from './kernel.js';
export * from './tensor.js';
export * from './runtime.js';
export { CapturedPlan, type CaptureOptions, type CapturedPlanParts, type PlanCommand, type PlanOwner } from './plan.js';
export * from './layer.js';
export * from './recurrent-state.js';
export * from './ops/matmul.js';
export * from './ops/matmul-tiled.js';
export * from './ops/norm.js';
export * from './ops/elementwise.js';
export * from './ops/embedding.js';
export * from './ops/softmax.js';
export * from './ops/top-k.js';
export { type TokenSamplerBuffers, type TokenSamplingParams, createSampleTokensKernel, createTokenSamplerBuffers, pcgHash, sampleTokenReference, sampleTokens, samplerUniform } from './ops/sample-tokens.js';
export { ROW_THREADS, wgslRowReduce } from './ops/reduce.js';
export * from './ops/glu.js';
export * from './ops/add-rms-norm.js';
export { type NormGemvConv, type NormGemvConvAttrs, type NormGemvInputs, type NormGemvKind, type PendingNormSpec, PendingNorm, canNormGemv, eagerNormGemvFits, linear, normGemv, normGemvRows, normedTensor } from './ops/norm-gemv.js';
