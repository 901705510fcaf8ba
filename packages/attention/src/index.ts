/**
 * @statespace/attention: flash-style attention in WGSL (tiled prefill with
 * online softmax, flash-decoding), RoPE as transformers applies it, a paged
 * KV cache, and the attention sequence mixer used by Llama and the attention
 * layers of the hybrid models.
 *
 * @example
 * ```ts
 * import { AttentionMixer } from '@statespace/attention';
 * const attn = new AttentionMixer(rt, config, weights);
 * const cache = attn.createState(1);
 * const y = attn.forward(x, cache);
 * ```
 * @packageDocumentation
 */
export {
  type ApplyRopeOptions,
  type RopeConfig,
  type RopeKernelAttrs,
  type RopeScaling,
  type RopeShape,
  applyRope,
  createRopeKernel,
  ropeFrequencies,
  ropeIsDynamic,
  ropeReference,
  ropeTable,
} from './rope.js';
export { type DecodeQkvAttrs, type DecodeQkvInputs, type DecodeQkvPackedInputs, type DecodeQkvShape, canDecodeQkv, createDecodeQkvKernel, decodeQkv, decodeQkvPacked } from './decode-qkv.js';
export {
  type AttentionOptions,
  FLASH_BC,
  FLASH_BR,
  type FlashAttentionOptions,
  type FlashAttentionShape,
  type KVRun,
  MAX_HEAD_DIM,
  TILED_BC,
  TILED_MAX_HEAD_DIM,
  attendRuns,
  attentionReference,
  createFlashAttentionKernel,
  createTiledFlashAttentionKernel,
  flashAttention,
  tiledFlashRows,
} from './flash-attention.js';
export {
  DECODE_CHUNK,
  DECODE_GQA_MAX,
  type FlashDecodeRun,
  type FlashDecodeShape,
  type FlashDecodingPartials,
  type FreshToken,
  type GqaLayout,
  createDecodeCombineKernel,
  createFlashDecodeGqaKernel,
  createFlashDecodeKernel,
  createFlashDecodePairKernel,
  createFlashDecodeVec4Kernel,
  fitsFreshDecode,
  flashDecoding,
  flashDecodingPartials,
  flashDecodingPartialsFresh,
  gqaLayout,
} from './flash-decoding.js';
export { type KVAppendOptions, type KVCacheOptions, type KVCacheShape, KVCacheState } from './kv-cache.js';
export { createSigmoidGateKernel, sigmoidGate } from './sigmoid-gate.js';
export { AttentionMixer, type AttentionMixerConfig, FUSED_COMBINE_CHUNKS, attentionMixerReference } from './attention-mixer.js';
