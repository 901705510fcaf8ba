import { Runtime } from '@statespace/core';
import { describe, expect, it } from 'vitest';
import { type HybridComposition, composeModel } from './compose.js';
import { Session } from './session.js';

const rt = await Runtime.create();

// A Samba-like 1:1 stack: Mamba-1, sliding-window attention, each followed by a SwiGLU MLP.
// W = 12 with 8-token KV pages: ring runs of 24 tokens (the runs leapfrog every 24 tokens).
const W = 12;
const composition = (boundedCache: boolean): HybridComposition => ({
  pattern: 'mSmS',
  hiddenSize: 64,
  vocabSize: 97,
  tieWordEmbeddings: false, // (tied random embeddings make greedy decoding repeat one token)
  mamba1: { stateSize: 8 },
  attention: { numHeads: 4, numKeyValueHeads: 2, slidingWindow: W, kvPageSize: 8, boundedCache },
  mlp: { intermediateSize: 128 },
});
const ring = composeModel(rt, composition(true), { seed: 3 });
const growing = composeModel(rt, composition(false), { seed: 3 }); // the same weights, every token kept
const prompt = Array.from({ length: 30 }, (_, i) => (i * 37 + 11) % 97); // longer than W and than one ring piece (13)
const greedy = { greedy: true, ignoreEos: true } as const;

async function collect(it: AsyncIterable<number>, stopAfter = Infinity): Promise<number[]> {
  const out: number[] = [];
  for await (const t of it) {
    out.push(t);
    if (out.length >= stopAfter) break;
  }
  return out;
}

function maxAbs(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('Samba-style hybrid: Mamba + sliding-window attention + MLP', () => {
  it('4 windows of greedy decode: captured plans == eager == a growing KV cache, logits within 1e-5', async () => {
    const planned = new Session(ring);
    const tokens = await collect(planned.generate(prompt, { ...greedy, maxNewTokens: 4 * W }));
    expect(planned.decodeStats()!.replays).toBeGreaterThan(20);
    expect(new Set(tokens).size).toBeGreaterThan(10);
    const eager = new Session(ring);
    eager.usePlans = false;
    expect(await collect(eager.generate(prompt, { ...greedy, maxNewTokens: 4 * W }))).toEqual(tokens);
    expect(await collect(new Session(growing).generate(prompt, { ...greedy, maxNewTokens: 4 * W }))).toEqual(tokens);
    // logits of every step, ring (decode plans) against growing, fed the same tokens
    const a = new Session(ring);
    const b = new Session(growing);
    let worst = maxAbs((await a.prefill(prompt))[0], (await b.prefill(prompt))[0]);
    for (const t of tokens) worst = Math.max(worst, maxAbs((await a.step(t))[0], (await b.step(t))[0]));
    expect(worst).toBeLessThan(1e-5);
    expect(a.decodeStats()!.replays).toBeGreaterThan(20);
  }, 300_000); // the heaviest model test on SwiftShader: ~50-120 s, more on a loaded 2-core machine

  it('decode memory stays flat: the same KV bytes at context W+1 and 4W (a growing cache grows)', async () => {
    const a = new Session(ring);
    const b = new Session(growing);
    await a.prefill(prompt.slice(0, W + 1));
    await b.prefill(prompt.slice(0, W + 1));
    const at = { ring: a.memory().kv, growing: b.memory().kv };
    for await (const t of a.generate(null, { ...greedy, maxNewTokens: 3 * W })) await b.step(t);
    // W+1 prompt tokens and 3W - 1 generated ones consumed (the last is carried): context 4W
    expect(a.memory().kv).toBe(at.ring);
    // 2 attention layers x 2 runs x 24 tokens x (K + V) x 2 kv heads x head_dim 16 x 4 bytes
    expect(at.ring).toBe(2 * 2 * 24 * 2 * 2 * 16 * 4);
    expect(b.memory().kv).toBeGreaterThan(at.growing);
    console.log(`KV bytes at context ${W + 1} and ${4 * W}: ring ${at.ring} and ${a.memory().kv}, growing ${at.growing} and ${b.memory().kv}`);
  });

  it('a stop token and a break roll the ring back: the state equals a fresh run', async () => {
    const full = await collect(new Session(ring).generate(prompt, { ...greedy, maxNewTokens: 40 }));
    // break after 27 tokens (a leapfrog of the ring lies between the mark and the rollback)
    const s = new Session(ring);
    expect(await collect(s.generate(prompt, { ...greedy, maxNewTokens: 40 }), 27)).toEqual(full.slice(0, 27));
    expect(await collect(s.generate(null, { ...greedy, maxNewTokens: 13 }))).toEqual(full.slice(27, 40));
    // a stop token: the first token of the run that did not occur before
    const at = full.findIndex((t, i) => i >= 20 && !full.slice(0, i).includes(t));
    expect(at).toBeGreaterThan(0);
    const stopped = new Session(ring);
    expect(await collect(stopped.generate(prompt, { ...greedy, maxNewTokens: 40, stopTokens: [full[at]] }))).toEqual(full.slice(0, at + 1));
    const rest = await collect(stopped.generate(null, { ...greedy, maxNewTokens: 40 - at - 1 }));
    expect(rest).toEqual(full.slice(at + 1));
    // and the logits after it equal a fresh session fed the same tokens
    const fresh = new Session(ring);
    const want = (await fresh.prefill([...prompt, ...full, 5]))[0];
    const got = (await stopped.prefill([5]))[0]; // the carried last token goes first
    expect(maxAbs(got, want)).toBeLessThan(1e-5);
  });
});
