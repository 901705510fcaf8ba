import { Runtime, StatespaceError } from '@statespace/core';
import { describe, expect, it } from 'vitest';
import { composeModel, composeSpec } from './compose.js';
import { Session } from './session.js';
import { patternOf } from './spec.js';

const rt = await Runtime.create();

// S4D (L), attention (A) and SwiGLU MLPs; hidden 40 and d_state 10 (5 complex modes) so no size is a tile multiple
const composition = {
  pattern: 'LAL',
  hiddenSize: 40,
  vocabSize: 83,
  tieWordEmbeddings: false,
  s4d: { stateSize: 10, init: 'inv' as const, dtMin: 0.01, dtMax: 0.2 },
  attention: { numHeads: 4, numKeyValueHeads: 2 },
  mlp: { intermediateSize: 72 },
};
const prompt = Array.from({ length: 23 }, (_, i) => (i * 29 + 5) % 83);

function maxAbs(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Number.isNaN(a[i] - b[i]) ? Infinity : Math.abs(a[i] - b[i]));
  return m;
}

async function collect(it: AsyncIterable<number>): Promise<number[]> {
  const out: number[] = [];
  for await (const t of it) out.push(t);
  return out;
}

describe("composeModel with S4D layers ('L')", () => {
  it("builds 's4d' mixers from the s4d block, with S4D-Inv initial values", async () => {
    const spec = composeSpec(composition);
    expect(patternOf(spec)).toBe('LAL');
    expect(spec.blocks[0].mixers[0]).toMatchObject({ kind: 's4d', config: { hiddenSize: 40, stateSize: 10, init: 'inv', dtMin: 0.01, dtMax: 0.2, bidirectional: false } });
    expect(() => composeSpec({ ...composition, pattern: 'LX' })).toThrow(/use M, m, 3, A, \*, S, D, L or -/);
  });

  it('prefill == token-by-token decode (logits of every position within 1e-4), and greedy plans == eager', async () => {
    const model = composeModel(rt, composition, { seed: 7 });
    const V = composition.vocabSize;
    const all = await rt.readFloat(model.forward(rt.upload(new Int32Array(prompt), [1, prompt.length], 'i32'), model.createState(1), 'all'));
    expect(all.length).toBe(prompt.length * V);
    const state = model.createState(1);
    let worst = 0;
    for (let t = 0; t < prompt.length; t++) {
      const logits = await rt.readFloat(model.forward(rt.upload(new Int32Array([prompt[t]]), [1, 1], 'i32'), state, 'last'));
      worst = Math.max(worst, maxAbs(logits, all.subarray(t * V, (t + 1) * V)));
    }
    expect(worst).toBeLessThan(1e-4);
    // a prompt in two chunks (the second continues from the S4D state by convolution)
    const split = model.createState(1);
    model.forward(rt.upload(new Int32Array(prompt.slice(0, 9)), [1, 9], 'i32'), split, 'last');
    const rest = await rt.readFloat(model.forward(rt.upload(new Int32Array(prompt.slice(9)), [1, prompt.length - 9], 'i32'), split, 'all'));
    expect(maxAbs(rest, all.subarray(9 * V))).toBeLessThan(1e-4);

    const planned = new Session(model);
    const tokens = await collect(planned.generate(prompt, { greedy: true, ignoreEos: true, maxNewTokens: 12 }));
    const eager = new Session(model);
    eager.usePlans = false;
    expect(await collect(eager.generate(prompt, { greedy: true, ignoreEos: true, maxNewTokens: 12 }))).toEqual(tokens);
    expect(tokens).toHaveLength(12);
  });

  it('a bidirectional S4D model prefills but refuses to decode with S4D_BIDIRECTIONAL', async () => {
    const model = composeModel(rt, { ...composition, pattern: 'L-', s4d: { stateSize: 10, bidirectional: true } }, { seed: 2 });
    const state = model.createState(1);
    const logits = await rt.readFloat(model.forward(rt.upload(new Int32Array(prompt), [1, prompt.length], 'i32'), state, 'last'));
    expect(logits.every(Number.isFinite)).toBe(true);
    let code: string | undefined;
    try {
      model.forward(rt.upload(new Int32Array([1]), [1, 1], 'i32'), state, 'last');
    } catch (e) {
      code = StatespaceError.is(e) ? e.code : undefined;
    }
    expect(code).toBe('S4D_BIDIRECTIONAL');
  });
});
