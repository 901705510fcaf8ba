import { configReader } from '@statespace/checkpoint';
import { StatespaceError } from '@statespace/core';
import { describe, expect, it } from 'vitest';
import { patternOf } from '../spec.js';
import { familyOf } from './index.js';
import { lfm2IntermediateSize, lfm2Spec } from './lfm2.js';

describe('lfm2 config', () => {
  it('feed-forward width as transformers computes it', () => {
    // LFM2-1.2B and LFM2-350M (hub configs name it block_ff_dim), the fixture, no adjustment, a null multiplier
    expect(lfm2IntermediateSize(configReader({ block_ff_dim: 12288, block_multiple_of: 256, block_ffn_dim_multiplier: 1.0, block_auto_adjust_ff_dim: true }))).toBe(8192);
    expect(lfm2IntermediateSize(configReader({ block_ff_dim: 6656, intermediate_size: 1, block_multiple_of: 256, block_ffn_dim_multiplier: 1.0 }))).toBe(4608);
    expect(lfm2IntermediateSize(configReader({ intermediate_size: 200, block_multiple_of: 32, block_ffn_dim_multiplier: 1.5 }))).toBe(224);
    expect(lfm2IntermediateSize(configReader({ intermediate_size: 200, block_auto_adjust_ff_dim: false }))).toBe(200);
    expect(lfm2IntermediateSize(configReader({ intermediate_size: 200, block_ffn_dim_multiplier: null }))).toBe(133);
  });

  it('layer types from layer_types or full_attn_idxs, tied head by default', () => {
    const c = configReader({ model_type: 'lfm2', hidden_size: 64, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2, full_attn_idxs: [1, 3], intermediate_size: 96 });
    const spec = familyOf(c).spec(c);
    expect(patternOf(spec)).toBe('CACA');
    expect(spec.lmHead).toBe(spec.embedding);
    expect(spec.blocks[1].mixers[0].config.weightNames).toEqual({ 'o_proj.weight': 'out_proj.weight', 'q_norm.weight': 'q_layernorm.weight', 'k_norm.weight': 'k_layernorm.weight' });
    expect((spec.blocks[1].mixers[0].config.rope as { theta: number }).theta).toBe(1000000);
  });

  it('refuses an unknown layer type with a typed error', () => {
    const c = configReader({ model_type: 'lfm2', num_hidden_layers: 2, layer_types: ['conv', 'sliding_attention'] });
    let code = '';
    try {
      lfm2Spec(c, 'Lfm2ForCausalLM');
    } catch (e) {
      code = StatespaceError.is(e) ? e.code : 'other';
    }
    expect(code).toBe('UNSUPPORTED_CONFIG');
  });
});
