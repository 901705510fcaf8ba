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
export { type CoreErrorCode, StatespaceError, assertArg, assertShape } from './errors.js';
export { seededRandom } from './random.js';
export {
  type DType,
  Q8_BLOCK,
  Q8_BLOCK_WORDS,
  Q8_GROUP,
  bf16BitsToF32,
  bytesPerElement,
  dequantizeQ8,
  f16BitsToF32,
  f16ToF32,
  f32To16,
  f32ToBf16Bits,
  f32ToF16Bits,
  isFloatWeightDType,
  quantizeQ8,
  roundTo,
  storageBytes,
  wgslLoadFloat,
  wgslLoadQ8x16,
  wgslStorageType,
} from './dtype.js';
export { type DeviceInfo, type RequestDeviceOptions, SWIFTSHADER_ICD, requestDevice } from './device.js';
export {
  type BindingDecl,
  type KernelDescriptor,
  MAX_WORKGROUPS_PER_DIM,
  type UniformLayout,
  type UniformType,
  WGSL_BUILTINS,
  WGSL_LINEAR_WORKGROUP,
  linearDispatch,
  memoWgsl,
  packUniforms,
  uniformByteSize,
  wgslBindings,
  wgslCompileSizes,
} from './kernel.js';
export { Tensor, type TensorLike, type TensorOwner, TensorView, numel, validateShape } from './tensor.js';
export { type MemoryStats, Runtime, type RuntimeOptions, type TypedData } from './runtime.js';
export { CapturedPlan, type CaptureOptions, type CapturedPlanParts, type PlanCommand, type PlanOwner } from './plan.js';
export {
  type LayerWeights,
  type MixerState,
  type SequenceMixer,
  type StateMemory,
  type WeightSpec,
  checkLayerWeights,
  checkMixerInput,
  packState,
  unpackState,
} from './layer.js';
export { RecurrentState } from './recurrent-state.js';
export { type MatmulAttrs, createGemvVec4Kernel, createMatmulKernel, gemvVecWidth, matmul, matmulReference, usesTiledMatmul } from './ops/matmul.js';
export {
  MAX_STACKED_WEIGHTS,
  TILED_MATMUL_CONFIGS,
  TILED_MATMUL_PROFILES,
  TILED_MATMUL_UNROLLED,
  type TiledMatmulAttrs,
  type TiledMatmulConfig,
  type TiledMatmulProfile,
  type TiledMatmulTarget,
  type TiledMatmulTile,
  type TiledMatmulChoice,
  chooseTiledMatmul,
  chooseTiledMatmulConfig,
  createSplitKReduceKernel,
  createTiledMatmulKernel,
  splitKSlice,
  stackedMatmulUniforms,
  tiledMatmulConfigName,
  tiledMatmulProfile,
  tiledMatmulStorageBytes,
  tiledMatmulThreads,
} from './ops/matmul-tiled.js';
export { chooseStackedMatmul, stackedMatmul } from './ops/matmul-stacked.js';
export { type NormAttrs, type NormKind, createNormKernel, gatedRmsNorm, layerNorm, normReference, rmsNorm } from './ops/norm.js';
export {
  type BinaryOp,
  type UnaryOp,
  binary,
  binaryReference,
  createBinaryKernel,
  createUnaryKernel,
  erfReference,
  unary,
  unaryReference,
  wgslActivations,
} from './ops/elementwise.js';
export { createEmbeddingKernel, embedding, embeddingReference } from './ops/embedding.js';
export { createSoftmaxKernel, softmax, softmaxReference } from './ops/softmax.js';
export { argmax, createTopKKernel, topK, topKReference } from './ops/top-k.js';
export { type SamplerDispatch, type TokenSamplerBuffers, type TokenSamplingParams, createSampleTokensKernel, createTokenSamplerBuffers, pcgHash, sampleTokenReference, sampleTokens, samplerDispatches, samplerUniform } from './ops/sample-tokens.js';
export { ROW_THREADS, wgslRowReduce } from './ops/reduce.js';
export { type GluActivation, type GluWeights, createGluKernel, glu, gluMatmul, gluReference } from './ops/glu.js';
export { addRmsNorm, createAddRmsNormKernel } from './ops/add-rms-norm.js';
export { type NormGemvConv, type NormGemvConvAttrs, type NormGemvInputs, type NormGemvKind, type PendingNormSpec, PendingNorm, canNormGemv, eagerNormGemvFits, linear, normGemv, normGemvRows, normedTensor } from './ops/norm-gemv.js';
