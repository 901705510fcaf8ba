/**
 * Parity with Hugging Face transformers 5.17 on the committed tiny fixtures:
 * logits within 1e-4 at every recorded position and the same argmax at every
 * prompt position; prefill vs token-by-token agreement of the whole model. The
 * 16 greedy tokens are checked through the CLI contract (apps/cli/src/cli.test.ts).
 */
import { Runtime } from '@statespace/core';
import { maxAbsError } from '@statespace/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LoadedModel, loadModel } from './load.js';
import { argmaxHost } from './sampling.js';
import { Session } from './session.js';
import { fixtureDir, parityBound, reference, referenceRows } from './testing/fixtures.js';

// Model-level tests use a runtime without buffer poisoning (kernel tests poison; here every
// allocation would force a submit and hide the batching a real run has).
const rt = await Runtime.create();

/** Fixtures with awkward sizes (hidden 56-80, vocab 331, d_state 24, head dims 24-48, GQA): row and lane tails inside a model. */
export const AWKWARD_FIXTURES = ['mamba1_awkward', 'mamba2_awkward', 'llama_awkward', 'granitemoehybrid_awkward'];

/** LFM2, Nemotron-H MoE layers (plain and latent), Falcon-H1 with mamba_rms_norm + projectors_bias (norm before and after the gate). */
export const MORE_FAMILY_FIXTURES = ['lfm2', 'nemotron_h_moe', 'nemotron_h_moe_latent', 'falcon_h1_rmsnorm', 'falcon_h1_rmsnorm_gated'];

export const FAMILY_FIXTURES = ['mamba1', 'falcon_mamba', 'mamba2', 'llama', 'jamba', 'bamba', 'granitemoehybrid', 'granitemoehybrid_moe', 'nemotron_h', 'falcon_h1', 'qwen3_next', 'zamba2', ...AWKWARD_FIXTURES, ...MORE_FAMILY_FIXTURES];

describe.each(FAMILY_FIXTURES)('%s matches transformers', (name) => {
  const ref = reference(name);
  let loaded: LoadedModel;
  beforeAll(async () => {
    loaded = await loadModel(rt, fixtureDir(name));
  });
  afterAll(() => loaded.model.dispose());
  it('logits within 1e-4 and argmax at every prompt position', async () => {
    const { model, spec } = loaded;
    const session = new Session(model);
    const [all] = await session.logitsAll(ref.input_ids);
    const V = spec.vocabSize;
    for (const [pos, row] of referenceRows(ref)) {
      expect(maxAbsError(all.subarray(pos * V, (pos + 1) * V), row), `position ${pos}`).toBeLessThan(parityBound(row));
    }
    const argmax = ref.input_ids.map((_, t) => argmaxHost(all.subarray(t * V, (t + 1) * V)));
    expect(argmax).toEqual(ref.logits_argmax);
    session.dispose();
  });
  it('prefill and token-by-token give the same last logits', async () => {
    const { model } = loaded;
    const a = new Session(model);
    const [prefill] = await a.prefill(ref.input_ids);
    const b = new Session(model);
    let last: Float32Array | undefined;
    for (const id of ref.input_ids.slice(0, 12)) [last] = await b.step(id);
    const c = new Session(model);
    const [part] = await c.prefill(ref.input_ids.slice(0, 12));
    expect(maxAbsError(last!, part)).toBeLessThan(1e-4);
    // prefill of the rest continuing from the stepped state equals one full prefill
    const [rest] = await b.prefill(ref.input_ids.slice(12));
    expect(maxAbsError(rest, prefill)).toBeLessThan(1e-4);
    for (const s of [a, b, c]) s.dispose();
  });
});

describe('the embedded default model matches transformers', () => {
  it('last-position logits of the three recorded prompts within 1e-4', async () => {
    const { readFileSync } = await import('node:fs');
    const dir = fixtureDir('../../models/default');
    const ref = JSON.parse(readFileSync(`${dir}/reference.json`, 'utf8')) as { prompts: { input_ids: number[]; logits_last: number[] }[] };
    const { model } = await loadModel(rt, dir);
    for (const p of ref.prompts) {
      const s = new Session(model);
      const [last] = await s.prefill(p.input_ids);
      expect(maxAbsError(last, p.logits_last)).toBeLessThan(1e-4);
      s.dispose();
    }
    model.dispose();
  });
});
