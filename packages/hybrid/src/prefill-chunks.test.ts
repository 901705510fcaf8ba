import { Runtime } from '@statespace/core';
import { maxAbsError } from '@statespace/core/testing';
import { describe, expect, it } from 'vitest';
import { type HybridComposition, composeModel } from './compose.js';
import { argmaxHost } from './sampling.js';
import { type PrefillProgress, Session } from './session.js';

const rt = await Runtime.create({ poison: true });

function randomIds(n: number, vocab: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => ((s = (s * 1664525 + 1013904223) >>> 0) % vocab));
}

// Long enough for several passes that end mid-way through an SSD chunk and a ring window (SwiftShader runs
// a few hundred tokens per second for these models here, so 200 keeps the file near 20 s).
const L = 200;
const models: [string, HybridComposition][] = [
  [
    'Mamba-2 + attention + sliding-window attention',
    {
      pattern: 'MAS',
      hiddenSize: 64,
      vocabSize: 97,
      mamba2: { numHeads: 4, headDim: 32, stateSize: 16, chunkSize: 16 },
      attention: { numHeads: 4, numKeyValueHeads: 2, slidingWindow: 24 },
      mlp: { intermediateSize: 96 },
    },
  ],
  ['Mamba-1', { pattern: 'mm', hiddenSize: 64, vocabSize: 97, mamba1: { stateSize: 16, expand: 2, convKernel: 4 } }],
];

describe('prefill in passes (the state carried between forward passes)', () => {
  for (const [name, composition] of models) {
    it(`${name}: ${L} tokens in passes of 70 and 25 give the one-pass last logits; progress arrives in order`, async () => {
      const model = composeModel(rt, composition, { seed: 3 });
      const ids = randomIds(L, composition.vocabSize, 7);
      const one = new Session(model, { prefillChunk: 0 });
      const [ref] = await one.prefill(ids);
      const events: PrefillProgress[] = [];
      const chunked = new Session(model, { prefillChunk: 70 });
      const [got] = await chunked.prefill(ids, { onProgress: (p) => events.push(p) });
      expect(events).toEqual([{ done: 70, total: L }, { done: 140, total: L }, { done: L, total: L }]);
      expect(chunked.length).toBe(L);
      expect(maxAbsError(got, ref)).toBeLessThan(1e-5);
      // a prefill that continues a state, in passes that end mid-way through the ring window and the SSD chunk
      const [more] = await chunked.prefill(ids.slice(0, 60), { prefillChunk: 25 });
      const [moreRef] = await one.prefill(ids.slice(0, 60));
      expect(maxAbsError(more, moreRef)).toBeLessThan(1e-5);
      // generate with a prompt prefills in passes too: its first token is the one-pass argmax
      const steps: number[] = [];
      const fresh = new Session(model);
      const first: number[] = [];
      for await (const t of fresh.generate(ids, { greedy: true, maxNewTokens: 1, prefillChunk: 90, onProgress: (p) => steps.push(p.done) })) first.push(t);
      expect(steps).toEqual([90, 180, L]);
      expect(first).toEqual([argmaxHost(ref)]);
      fresh.dispose();
      one.dispose();
      chunked.dispose();
      model.dispose();
    }, 60000);
  }
  it('rejects a bad prefillChunk with a typed error', () => {
    const model = composeModel(rt, models[1][1], { seed: 1 });
    expect(() => new Session(model, { prefillChunk: -1 })).toThrow(/prefillChunk must be an integer >= 0/);
    model.dispose();
  });
});
