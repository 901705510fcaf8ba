/**
 * A composed hybrid (Mamba-1, Mamba-2, attention, MLP) with q8 weight matrices, against the same
 * model built from the dequantised weights in f32: the kernels that read q8 (embedding, vec4 gemv,
 * fused norm + gemv with its conv epilogue and q/k/v stack, conv + x_proj, the tiled prefill matmul)
 * must give what f32 kernels give on the values q8 stands for.
 */
import { type Tensor, roundTo } from '@statespace/core';
import { getTestRuntime, relError } from '@statespace/core/testing';
import { describe, expect, it } from 'vitest';
import { type HybridComposition, composeModel, composeSpec } from './compose.js';
import { HybridModel } from './model.js';
import { Session } from './session.js';
import { modelWeights, randomWeightValues } from './weights.js';

const rt = await getTestRuntime(); // poisons every new buffer with NaN
rt.fastKernels = true; // the fused and vec4 decode kernels, as on a GPU

// hidden 64, d_inner 128, MLP 112 (groups of 32 across rows): rows of whole 16-weight words (the fast
// q8 paths); vocab 97 and dt_rank 4 take the element-load paths; N of most projections is not a multiple of 8.
const composition: HybridComposition = {
  pattern: 'mMA-',
  hiddenSize: 64,
  vocabSize: 97,
  mamba1: { stateSize: 8 },
  mamba2: { numHeads: 2, headDim: 64, stateSize: 8 },
  attention: { numHeads: 2, numKeyValueHeads: 1, headDim: 32 },
  mlp: { intermediateSize: 112 },
};

/** Prefill (9 tokens: the tiled matmul) then 2 decode steps (the fused kernels): the 3 logit rows. */
async function run(model: HybridModel): Promise<Float32Array[]> {
  const session = new Session(model);
  const out: Float32Array[] = [...(await session.prefill([5, 9, 2, 77, 13, 40, 3, 96, 0]))];
  for (const t of [4, 90]) out.push(...(await session.step(t)));
  session.dispose();
  return out;
}

describe('q8 weights in a composed Mamba-1 + Mamba-2 + attention + MLP hybrid', () => {
  it('logits equal the f32 model of the dequantised weights; weights cost ~1.125 bytes; only matrices are q8', async () => {
    const spec = composeSpec(composition);
    const seed = 3;
    const q8: Record<string, Tensor> = {};
    const deq: Record<string, Tensor> = {};
    modelWeights(spec).forEach((w, i) => {
      const values = randomWeightValues(w, seed * 100003 + i + 1); // as composeModel's randomWeights
      q8[w.name] = rt.upload(values, w.shape, w.f32 ? 'f32' : 'q8', w.name);
      deq[w.name] = rt.upload(w.f32 ? values : roundTo(values, 'q8'), w.shape, 'f32', w.name);
      if (!w.f32) expect(w.shape.length, w.name).toBe(2);
    });
    expect(q8[spec.embedding].dtype).toBe('q8');
    expect(spec.lmHead).toBe(spec.embedding); // tied: the lm_head reads the q8 embedding table
    const qModel = new HybridModel(rt, spec, q8);
    const dModel = new HybridModel(rt, spec, deq);

    // (weights stored as f32 by mistake would give the logits of the undequantised weights: not these)
    const got = await run(qModel);
    const want = await run(dModel);
    expect(got.length).toBe(3);
    for (let i = 0; i < got.length; i++) expect(relError(got[i], want[i]), `row ${i}`).toBeLessThan(1e-4);

    // composeModel's dtype option builds the same q8 weights (same names, dtypes and bytes)
    const composed = composeModel(rt, composition, { seed, dtype: 'q8' });
    expect(composed.fingerprint).toBe('random:3:q8');
    expect(await composed.computeFingerprint()).toBe(await qModel.computeFingerprint());
    expect(await composed.computeFingerprint()).not.toBe(await dModel.computeFingerprint());

    const ratio = qModel.weightBytes() / dModel.weightBytes();
    expect(ratio).toBeGreaterThan(1.125 / 4);
    expect(ratio).toBeLessThan(0.33); // the f32 norms, conv kernels and SSM parameters are a few percent
    for (const m of [qModel, dModel, composed]) m.dispose();
  }, 300_000); // ~60-150 s on SwiftShader, more on a loaded 2-core machine
});
