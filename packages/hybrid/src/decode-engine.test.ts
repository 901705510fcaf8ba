/**
 * The decode engine on every fixture: captured and replayed steps give transformers'
 * greedy tokens and the same logits as steps recorded through the kernels; plans are
 * rebuilt where the structure changes (KV chunk and run boundaries); tokens in flight are
 * undone at a stop token or a cancellation.
 */
import { Runtime } from '@statespace/core';
import { maxAbsError } from '@statespace/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel } from './load.js';
import { Session } from './session.js';
import { fixtureDir, reference } from './testing/fixtures.js';
import { composeModel } from './compose.js';

const rt = await Runtime.create();
const AWKWARD = ['mamba1_awkward', 'mamba2_awkward', 'llama_awkward', 'granitemoehybrid_awkward']; // as in fixtures.test.ts
const MORE = ['lfm2', 'nemotron_h_moe', 'nemotron_h_moe_latent', 'falcon_h1_rmsnorm', 'falcon_h1_rmsnorm_gated']; // as in fixtures.test.ts
const FAMILIES = ['mamba1', 'falcon_mamba', 'mamba2', 'llama', 'jamba', 'bamba', 'granitemoehybrid', 'granitemoehybrid_moe', 'nemotron_h', 'falcon_h1', 'qwen3_next', 'zamba2', ...AWKWARD, ...MORE];

async function collect(gen: AsyncGenerator<number, void, undefined>): Promise<number[]> {
  const out: number[] = [];
  for await (const t of gen) out.push(t);
  return out;
}

afterAll(() => rt.destroy());

describe.each(FAMILIES)('%s through the decode engine', (name) => {
  it('replayed greedy steps give transformers tokens, and logits equal to eager steps', async () => {
    const ref = reference(name);
    const { model } = await loadModel(rt, fixtureDir(name));
    const planned = new Session(model);
    const tokens = await collect(planned.generate(ref.input_ids, { maxNewTokens: 16, ignoreEos: true }));
    expect(tokens).toEqual(ref.greedy_new_tokens);
    const stats = planned.decodeStats()!;
    // 15 steps: two captures make the plan, the rest replay it.
    expect(stats.captures, stats.lastRefusal ?? '').toBeLessThanOrEqual(3);
    expect(stats.replays).toBeGreaterThanOrEqual(12);
    expect(stats.eager).toBe(0);

    // Step by step, plan against kernels: the logits of every step agree.
    const a = new Session(model);
    const b = new Session(model);
    b.usePlans = false;
    await a.prefill(ref.input_ids);
    await b.prefill(ref.input_ids);
    let worst = 0;
    for (const t of ref.greedy_new_tokens.slice(0, 5)) {
      const [la] = await a.step(t);
      const [lb] = await b.step(t);
      worst = Math.max(worst, maxAbsError(la, lb));
    }
    expect(worst).toBeLessThan(1e-5);
    expect(a.decodeStats()!.replays).toBeGreaterThanOrEqual(2);
    expect(b.decodeStats()!.replays).toBe(0);
    for (const s of [planned, a, b]) s.dispose();
    model.dispose();
  });
});

describe('the fused decode kernels inside the models', () => {
  // GPUs run them by default; software adapters only when asked (their barriers are slow there).
  // Mamba-2 gated norm (whole vector, groups, norm-before-gate), attention, GLU and MoE MLPs.
  // Of the newer families, the two with fused paths of their own: LFM2's short conv reading the pending norm,
  // Falcon-H1's grouped norm-before-gate (the MoE layers run unfused; their models are in FAMILIES above).
  // The awkward fixtures (odd widths and vocabularies) stand in for mamba1, mamba2 and llama: the same
  // kernels, with their row and lane tails. Two runtimes for the whole loop, so each pipeline compiles once.
  let fast: Runtime;
  let plainRt: Runtime;
  beforeAll(async () => {
    fast = await Runtime.create();
    fast.fastKernels = true;
    plainRt = await Runtime.create();
    plainRt.fastKernels = false;
  });
  afterAll(() => {
    fast.destroy();
    plainRt.destroy();
  });
  for (const name of ['nemotron_h', 'falcon_h1', ...AWKWARD, 'lfm2', 'falcon_h1_rmsnorm']) {
    it(`${name}: fused steps give the unfused logits and transformers' greedy tokens`, async () => {
      const ref = reference(name);
      const { model: fused } = await loadModel(fast, fixtureDir(name));
      const { model: plain } = await loadModel(plainRt, fixtureDir(name));
      const a = new Session(fused);
      const b = new Session(plain);
      await a.prefill(ref.input_ids);
      await b.prefill(ref.input_ids);
      let worst = 0;
      for (const t of ref.greedy_new_tokens.slice(0, 3)) {
        const [la] = await a.step(t);
        const [lb] = await b.step(t);
        worst = Math.max(worst, maxAbsError(la, lb));
      }
      expect(worst).toBeLessThan(1e-5);
      const c = new Session(fused);
      expect(await collect(c.generate(ref.input_ids, { maxNewTokens: 4, ignoreEos: true }))).toEqual(ref.greedy_new_tokens.slice(0, 4));
      // The fused kernels really ran: a one-token step records fewer dispatches than the plain one.
      const countOf = async (m: typeof fused, r: Runtime) => {
        const st = m.createState(1);
        const ids = r.upload(new Int32Array([1]), [1, 1], 'i32');
        const d0 = r.dispatchCount;
        m.forward(ids, st, 'last').dispose();
        const n = r.dispatchCount - d0;
        await r.sync();
        ids.dispose();
        st.dispose();
        return n;
      };
      expect(await countOf(fused, fast)).toBeLessThan(await countOf(plain, plainRt));
      for (const s of [a, b, c]) s.dispose();
      fused.dispose();
      plain.dispose();
      fast.trimPool();
      plainRt.trimPool();
    }, 300_000); // SwiftShader runs the fused kernels' barriers slowly
  }
});

describe('plans across structure changes', () => {
  it('a hybrid decoding past KV page runs and flash-decoding chunks matches the eager path at every step', async () => {
    // Pages of 256 tokens grow in runs; chunks of 256 keys: 300 steps cross both.
    const model = composeModel(rt, { pattern: 'MA', hiddenSize: 48, vocabSize: 97, mamba2: { numHeads: 2, headDim: 48, stateSize: 8 }, attention: { numHeads: 2, numKeyValueHeads: 1, headDim: 24 } }, { seed: 3 });
    const a = new Session(model);
    const b = new Session(model);
    b.usePlans = false;
    const prompt = [5, 9, 2];
    let [la] = await a.prefill(prompt);
    let [lb] = await b.prefill(prompt);
    let worst = 0;
    for (let i = 0; i < 300; i++) {
      const t = (i * 31 + 7) % 97;
      [la] = await a.step(t);
      [lb] = await b.step(t);
      worst = Math.max(worst, maxAbsError(la, lb));
    }
    expect(worst).toBeLessThan(1e-5);
    const stats = a.decodeStats()!;
    expect(stats.replays).toBeGreaterThan(280);
    expect(stats.captures).toBeGreaterThanOrEqual(4); // rebuilt at the chunk / run boundaries
    a.dispose();
    b.dispose();
    model.dispose();
  });
});

describe('tokens in flight', () => {
  it('a stop token leaves the state as if nothing ran past it', async () => {
    const ref = reference('mamba2');
    const { model } = await loadModel(rt, fixtureDir('mamba2'));
    const free = new Session(model);
    const all = await collect(free.generate(ref.input_ids, { maxNewTokens: 12, ignoreEos: true }));
    // Stop at the first token that differs from its predecessor (a token not seen before it).
    const k = all.findIndex((t, i) => all.indexOf(t) === i && i >= 3);
    const stopAt = k >= 0 ? k : 3;
    const piped = new Session(model);
    const got = await collect(piped.generate(ref.input_ids, { maxNewTokens: 12, stopTokens: [all[stopAt]], inFlight: 4 }));
    expect(got).toEqual(all.slice(0, stopAt + 1));
    expect(piped.unconsumed).toEqual([all[stopAt]]);
    // Continue both from the same tokens: one token at a time, no pipelining.
    const single = new Session(model);
    const same = await collect(single.generate(ref.input_ids, { maxNewTokens: 12, stopTokens: [all[stopAt]], inFlight: 1 }));
    expect(same).toEqual(got);
    const [x] = await piped.step(3);
    const [y] = await single.step(3);
    expect(piped.length).toBe(single.length);
    expect(maxAbsError(x, y)).toBeLessThan(1e-4);
    for (const s of [free, piped, single]) s.dispose();
    model.dispose();
  });

  it('cancellation yields nothing more and rolls the state back to the tokens returned', async () => {
    const ref = reference('llama');
    const { model } = await loadModel(rt, fixtureDir('llama'));
    const controller = new AbortController();
    const s = new Session(model);
    const got: number[] = [];
    for await (const t of s.generate(ref.input_ids, { maxNewTokens: 16, ignoreEos: true, signal: controller.signal, inFlight: 4 })) {
      got.push(t);
      if (got.length === 5) controller.abort();
    }
    expect(got).toEqual(ref.greedy_new_tokens.slice(0, 5));
    // Every returned token was fed, nothing after it.
    expect(s.length).toBe(ref.input_ids.length + 5);
    expect(s.unconsumed).toBeNull();
    const [next] = await s.step(ref.greedy_new_tokens[5]);
    const fresh = new Session(model);
    const [want] = await fresh.prefill([...ref.input_ids, ...ref.greedy_new_tokens.slice(0, 6)]);
    expect(maxAbsError(next, want)).toBeLessThan(1e-4);
    s.dispose();
    fresh.dispose();
    model.dispose();
  });

  it('breaking out of the loop carries the last token returned, with nothing fed past it', async () => {
    const ref = reference('bamba');
    const { model } = await loadModel(rt, fixtureDir('bamba'));
    const s = new Session(model);
    const got: number[] = [];
    for await (const t of s.generate(ref.input_ids, { maxNewTokens: 16, ignoreEos: true, inFlight: 4 })) {
      got.push(t);
      expect(s.length).toBe(ref.input_ids.length + got.length - 1); // tokens before the one returned
      if (got.length === 4) break;
    }
    expect(got).toEqual(ref.greedy_new_tokens.slice(0, 4));
    expect(s.length).toBe(ref.input_ids.length + 3);
    expect(s.unconsumed).toEqual([got[3]]);
    const rest = await collect(s.generate(null, { maxNewTokens: 12, ignoreEos: true }));
    expect(rest).toEqual(ref.greedy_new_tokens.slice(4, 16));
    s.dispose();
    model.dispose();
  });

  it('rejects out-of-domain options with INVALID_ARGUMENT', async () => {
    const model = composeModel(rt, { pattern: 'M', hiddenSize: 32, vocabSize: 50, mamba2: { numHeads: 2, headDim: 32, stateSize: 8 } }, { seed: 1 });
    const s = new Session(model);
    for (const bad of [{ temperature: -1 }, { temperature: NaN }, { topP: 5 }, { topP: 0 }, { maxNewTokens: 2.5 }, { maxNewTokens: 0 }, { seed: -3 }, { topK: 1.5 }, { repetitionPenalty: 0 }, { inFlight: 0 }]) {
      let code = '';
      try {
        await collect(s.generate([1, 2], bad));
      } catch (err) {
        code = (err as { code?: string }).code ?? String(err);
      }
      expect(code, JSON.stringify(bad)).toBe('INVALID_ARGUMENT');
    }
    expect(s.length).toBe(0);
    s.dispose();
    model.dispose();
  });
});
