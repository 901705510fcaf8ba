/**
 * RoPE settings from a config: transformers 5 writes `rope_parameters`
 * ({rope_theta, rope_type, partial_rotary_factor, factor, ...}); older configs
 * write `rope_theta` and `rope_scaling`. Both are read here.
 */
import type { ConfigReader } from '@statespace/checkpoint';

/** The attention mixer's RoPE config. */
export interface RopeConfig {
  theta: number;
  /** Rotated features per head (head_dim × partial_rotary_factor). */
  rotaryDim: number;
  /** rope_type and its parameters (linear, dynamic, llama3, yarn, ...), or undefined for the default. */
  scaling?: Record<string, unknown>;
  maxPositionEmbeddings?: number;
}

/** Reads RoPE settings for heads of `headDim`. */
export function readRope(c: ConfigReader, headDim: number, defaults: { theta?: number; partialRotaryFactor?: number } = {}): RopeConfig {
  const params = c.optional.object('rope_parameters');
  const legacy = c.optional.object('rope_scaling');
  const theta = params?.optional.number('rope_theta', c.optional.number('rope_theta', defaults.theta ?? 10000)) ?? c.optional.number('rope_theta', defaults.theta ?? 10000);
  const factor = params?.optional.number('partial_rotary_factor', c.optional.number('partial_rotary_factor', defaults.partialRotaryFactor ?? 1)) ?? c.optional.number('partial_rotary_factor', defaults.partialRotaryFactor ?? 1);
  const source = params ?? legacy;
  let scaling: Record<string, unknown> | undefined;
  if (source) {
    const type = String(source.raw('rope_type') ?? source.raw('type') ?? 'default');
    if (type !== 'default') scaling = { ...source.json, rope_type: type };
  }
  return {
    theta,
    rotaryDim: Math.floor(headDim * factor),
    scaling,
    maxPositionEmbeddings: c.has('max_position_embeddings') ? c.int('max_position_embeddings') : undefined,
  };
}
