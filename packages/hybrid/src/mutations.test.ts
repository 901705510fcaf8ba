/**
 * Named mutations the parity tests must catch (issue: tests that catch a wrong model).
 * Each mutation rebuilds a fixture model from its own weights with one detail of the
 * family changed, and the parity measure used by fixtures.test.ts must then exceed its
 * bound, while the unmutated model stays far inside it.
 */
import { Runtime, type LayerWeights } from '@statespace/core';
import { maxAbsError } from '@statespace/core/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { type LoadedModel, loadModel } from './load.js';
import { HybridModel } from './model.js';
import { Session } from './session.js';
import type { ModelSpec } from './spec.js';
import { fixtureDir, parityBound, reference, referenceRows } from './testing/fixtures.js';

const rt = await Runtime.create();
afterAll(() => rt.destroy());

/** The largest logit error against transformers over the recorded rows, in units of fixtures.test.ts's bound (parity holds below 1). */
async function parityError(model: HybridModel, name: string): Promise<number> {
  const ref = reference(name);
  const s = new Session(model);
  const [all] = await s.logitsAll(ref.input_ids);
  s.dispose();
  const V = model.spec.vocabSize;
  let worst = 0;
  for (const [pos, row] of referenceRows(ref)) worst = Math.max(worst, maxAbsError(all.subarray(pos * V, (pos + 1) * V), row) / parityBound(row));
  return worst;
}

function mutated(loaded: LoadedModel, change: (spec: ModelSpec) => void): HybridModel {
  const spec = structuredClone(loaded.spec) as ModelSpec;
  change(spec);
  const weights = (loaded.model as unknown as { w: LayerWeights }).w;
  return new HybridModel(rt, spec, weights);
}

const MUTATIONS: { name: string; fixture: string; change: (spec: ModelSpec) => void }[] = [
  {
    name: 'MoE top-k renormalisation flipped',
    fixture: 'granitemoehybrid_moe',
    change: (spec) => {
      for (const b of spec.blocks) if (b.channel?.kind === 'moe') b.channel.normTopK = !b.channel.normTopK;
    },
  },
  {
    name: 'residual_multiplier dropped',
    fixture: 'granitemoehybrid',
    change: (spec) => {
      for (const b of spec.blocks) b.residualMultiplier = undefined;
    },
  },
];

describe('named mutations fail parity', () => {
  for (const m of MUTATIONS) {
    it(m.name, async () => {
      const loaded = await loadModel(rt, fixtureDir(m.fixture));
      const clean = await parityError(loaded.model, m.fixture);
      const bad = await parityError(mutated(loaded, m.change), m.fixture);
      // The real model is well inside the bound; the mutant is outside it.
      expect(clean).toBeLessThan(0.5);
      expect(bad, `${m.name}: ${bad} x the bound`).toBeGreaterThan(1);
      loaded.model.dispose();
    });
  }
});
