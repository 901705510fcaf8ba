/**
 * Mamba-3 through the hybrid loader: mamba_ssm checkpoints with `ssm_cfg.layer: "Mamba3"` (fixtures/mamba3, made by
 * tools/fixtures/make_mamba3_fixtures.py from mamba_ssm's own Mamba3 module) load as MambaLMHeadModel and match
 * the recorded outputs: logits within 1e-4, argmax at every position, 16 greedy tokens through Session; the prompt
 * fed token by token gives the prefill's logits. composeModel places Mamba-3 layers with '3'.
 */
import { Runtime } from '@statespace/core';
import { maxAbsError } from '@statespace/core/testing';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { composeModel, composeSpec } from './compose.js';
import { type LoadedModel, loadModel } from './load.js';
import { argmaxHost } from './sampling.js';
import { Session } from './session.js';
import { patternOf } from './spec.js';
import { type Reference, parityBound, referenceRows } from './testing/fixtures.js';

const rt = await Runtime.create();
const BESIDE = fileURLToPath(new URL('../../../fixtures/mamba3/', import.meta.url));
const DIR = existsSync(BESIDE) ? BESIDE : `${process.cwd()}/fixtures/mamba3/`;

async function collect(it: AsyncIterable<number>): Promise<number[]> {
  const out: number[] = [];
  for await (const t of it) out.push(t);
  return out;
}

const CASES = [
  { name: 'siso-rope-half', config: { mimo: false, ropeFraction: 0.5, outProjNorm: false, aFloor: 0.5 } },
  { name: 'siso-rope-full-norm', config: { mimo: false, ropeFraction: 1, outProjNorm: true } },
  { name: 'mimo-r4', config: { mimo: true, mimoRank: 4, nGroups: 2, outProjNorm: false } },
  { name: 'mimo-r2-norm', config: { mimo: true, mimoRank: 2, ropeFraction: 1, outProjNorm: true } },
];

describe.each(CASES)('mamba_ssm Mamba3 $name', ({ name, config }) => {
  const r = JSON.parse(readFileSync(`${DIR}${name}/reference.json`, 'utf8')) as Reference & { vocab_size: number };
  let loaded: LoadedModel;
  beforeAll(async () => {
    loaded = await loadModel(rt, `${DIR}${name}`);
  });
  afterAll(() => loaded.model.dispose());

  it('loads as MambaLMHeadModel with mamba3 mixers of the config', () => {
    expect(loaded.family.architecture).toBe('MambaLMHeadModel');
    expect(loaded.spec.vocabSize).toBe(203);
    expect(patternOf(loaded.spec)).toMatch(/^M+$/);
    expect(loaded.spec.blocks[0].mixers[0]).toMatchObject({ kind: 'mamba3', config });
  });

  it('logits within 1e-4, argmax everywhere, 16 greedy tokens, token-by-token == prefill', async () => {
    const session = new Session(loaded.model);
    const [all] = await session.logitsAll(r.input_ids);
    const V = loaded.spec.vocabSize;
    for (const [pos, row] of referenceRows(r)) {
      expect(maxAbsError(all.subarray(pos * V, (pos + 1) * V), row), `position ${pos}`).toBeLessThan(parityBound(row));
    }
    expect(r.input_ids.map((_, t) => argmaxHost(all.subarray(t * V, (t + 1) * V)))).toEqual(r.logits_argmax);
    session.dispose();

    const g = new Session(loaded.model);
    expect(await collect(g.generate(r.input_ids, { maxNewTokens: 16, greedy: true, ignoreEos: true }))).toEqual(r.greedy_new_tokens);
    g.dispose();

    // the whole prompt one token at a time: every position's logits as the prefill's
    const model = loaded.model;
    const state = model.createState(1);
    let worst = 0;
    for (let t = 0; t < r.input_ids.length; t++) {
      const logits = await rt.readFloat(model.forward(rt.upload(new Int32Array([r.input_ids[t]]), [1, 1], 'i32'), state, 'last'));
      worst = Math.max(worst, maxAbsError(logits, all.subarray(t * V, (t + 1) * V)));
    }
    expect(worst).toBeLessThan(1e-4);
    state.dispose();
  });
});

describe("composeModel with Mamba-3 layers ('3')", () => {
  const composition = {
    pattern: '3A3',
    hiddenSize: 40,
    vocabSize: 71,
    mamba3: { numHeads: 5, headDim: 16, stateSize: 12, mimoRank: 2 },
    attention: { numHeads: 4, numKeyValueHeads: 2 },
  };
  const prompt = Array.from({ length: 13 }, (_, i) => (i * 31 + 3) % 71);

  it('builds mamba3 mixers; prefill == token-by-token; greedy plans == eager', async () => {
    const spec = composeSpec(composition);
    expect(patternOf(spec)).toBe('3A3');
    expect(spec.blocks[0].mixers[0]).toMatchObject({ kind: 'mamba3', config: { hiddenSize: 40, numHeads: 5, headDim: 16, stateSize: 12, mimo: true, mimoRank: 2, ropeFraction: 0.5 } });
    const model = composeModel(rt, composition, { seed: 3 });
    const V = composition.vocabSize;
    const all = await rt.readFloat(model.forward(rt.upload(new Int32Array(prompt), [1, prompt.length], 'i32'), model.createState(1), 'all'));
    const state = model.createState(1);
    let worst = 0;
    for (let t = 0; t < prompt.length; t++) {
      const logits = await rt.readFloat(model.forward(rt.upload(new Int32Array([prompt[t]]), [1, 1], 'i32'), state, 'last'));
      worst = Math.max(worst, maxAbsError(logits, all.subarray(t * V, (t + 1) * V)));
    }
    expect(worst).toBeLessThan(1e-4);
    const planned = new Session(model);
    const tokens = await collect(planned.generate(prompt, { greedy: true, ignoreEos: true, maxNewTokens: 6 }));
    const eager = new Session(model);
    eager.usePlans = false;
    expect(await collect(eager.generate(prompt, { greedy: true, ignoreEos: true, maxNewTokens: 6 }))).toEqual(tokens);
    expect(tokens).toHaveLength(6);
    model.dispose();
  });
});
