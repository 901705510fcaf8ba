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
export * from './rope.js';
export { type DecodeQkvAttrs, type DecodeQkvInputs, type DecodeQkvPackedInputs, type DecodeQkvShape, canDecodeQkv, createDecodeQkvKernel, decodeQkv, decodeQkvPacked } from './decode-qkv.js';
export * from './flash-attention.js';
export * from './flash-decoding.js';
export * from './kv-cache.js';
export * from './sigmoid-gate.js';
export * from './attention-mixer.js';
