/**
 * The benchmark models: random weights (seeded) at the published shapes of
 * mamba-130m, mamba2-130m, a ~350M Granite 4.0 hybrid and a ~350M Llama,
 * all built through the hybrid composer.
 */
import type { HybridComposition } from '@statespace/hybrid';

export interface BenchModel {
  name: string;
  composition: HybridComposition;
  /** transformers config for the same shape (bench/torch_baseline.py reads these). */
  torch: Record<string, unknown>;
}

const VOCAB = 50280;

export const BENCH_MODELS: BenchModel[] = [
  {
    name: 'mamba-130m',
    composition: { pattern: 'm'.repeat(24), hiddenSize: 768, vocabSize: VOCAB, mamba1: { stateSize: 16, expand: 2, convKernel: 4 } },
    torch: { model_type: 'mamba', hidden_size: 768, num_hidden_layers: 24, state_size: 16, expand: 2, conv_kernel: 4, vocab_size: VOCAB },
  },
  {
    name: 'mamba2-130m',
    composition: { pattern: 'M'.repeat(24), hiddenSize: 768, vocabSize: VOCAB, mamba2: { numHeads: 24, headDim: 64, stateSize: 128, nGroups: 1, chunkSize: 256 } },
    torch: { model_type: 'mamba2', hidden_size: 768, num_hidden_layers: 24, num_heads: 24, head_dim: 64, state_size: 128, n_groups: 1, expand: 2, chunk_size: 256, vocab_size: VOCAB },
  },
  {
    name: 'granite-hybrid-350m',
    composition: {
      pattern: Array.from({ length: 28 }, (_, i) => (i === 9 || i === 19 ? 'A' : 'M')).join(''),
      hiddenSize: 768,
      vocabSize: VOCAB,
      mamba2: { numHeads: 48, headDim: 32, stateSize: 128, nGroups: 1, chunkSize: 256 },
      attention: { numHeads: 12, numKeyValueHeads: 4 },
      mlp: { intermediateSize: 2048 },
    },
    torch: {
      model_type: 'granitemoehybrid',
      hidden_size: 768,
      num_hidden_layers: 28,
      layer_types: Array.from({ length: 28 }, (_, i) => (i === 9 || i === 19 ? 'attention' : 'mamba')),
      num_attention_heads: 12,
      num_key_value_heads: 4,
      mamba_n_heads: 48,
      mamba_d_head: 32,
      mamba_d_state: 128,
      mamba_n_groups: 1,
      mamba_chunk_size: 256,
      shared_intermediate_size: 2048,
      num_local_experts: 0,
      position_embedding_type: 'rope',
      vocab_size: VOCAB,
    },
  },
  {
    name: 'llama-350m',
    composition: { pattern: 'A'.repeat(24), hiddenSize: 1024, vocabSize: VOCAB, attention: { numHeads: 16, numKeyValueHeads: 4 }, mlp: { intermediateSize: 2816 } },
    torch: { model_type: 'llama', hidden_size: 1024, num_hidden_layers: 24, num_attention_heads: 16, num_key_value_heads: 4, intermediate_size: 2816, vocab_size: VOCAB },
  },
];

/** Decode-vs-context chart models: pure Mamba-2, 1:7 hybrid and pure attention of one size. */
export const CHART_MODELS: BenchModel[] = [
  ['pure Mamba-2', 'MMMMMMMM'],
  ['1:7 hybrid', 'MMMMAMMM'],
  ['pure attention', 'AAAAAAAA'],
].map(([name, pattern]) => ({
  name,
  composition: { pattern, hiddenSize: 768, vocabSize: VOCAB, mamba2: { numHeads: 24, headDim: 64, stateSize: 128, chunkSize: 256 }, attention: { numHeads: 12, numKeyValueHeads: 4 }, mlp: { intermediateSize: 2048 } },
  torch: {},
}));
