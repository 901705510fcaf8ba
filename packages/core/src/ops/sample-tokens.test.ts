import { describe, expect, it } from 'vitest';
import { getTestRuntime, randn, rng } from '../testing.js';
import { type TokenSamplingParams, createTokenSamplerBuffers, pcgHash, sampleTokenReference, sampleTokens, samplerDispatches, samplerUniform } from './sample-tokens.js';

const rt = await getTestRuntime(); // poisons every new buffer with NaN

/** Logits with ties, a -Infinity and a NaN, at an awkward vocabulary size. */
function awkwardLogits(M: number, V: number, seed: number): Float32Array {
  const x = randn(M * V, seed, 2.5);
  const r = rng(seed + 1);
  for (let i = 0; i < M * V; i++) {
    const roll = r();
    if (roll < 0.05) x[i] = 1.5; // ties
    else if (roll < 0.06) x[i] = -Infinity;
    else if (roll < 0.065 && V > 1) x[i] = Number.NaN;
  }
  return x;
}

async function runSampler(x: Float32Array, M: number, V: number, params: TokenSamplingParams, step: number, history: number[][], D = V) {
  const buffers = createTokenSamplerBuffers(rt, M, V, history);
  const out = rt.empty([M], 'i32');
  let padded = x;
  if (D !== V) {
    padded = new Float32Array(M * D).fill(1e30); // columns past the vocabulary must never win
    for (let m = 0; m < M; m++) padded.set(x.subarray(m * V, (m + 1) * V), m * D);
  }
  sampleTokens(rt, rt.upload(padded, [M, 1, D]), out, buffers, params, step, V);
  const ids = Array.from(await rt.read(out));
  const presence = Array.from(await rt.read(buffers.presence));
  return { ids, presence };
}

describe('the random stream', () => {
  it('is the PCG hash chain (known values) and uniform in [0, 1)', () => {
    // pcg_hash of Jarzynski & Olano, "Hash Functions for GPU Rendering" (2020), evaluated with Python's integers
    expect(pcgHash(0)).toBe(129708002);
    expect(pcgHash(1)).toBe(2831084092);
    expect(pcgHash(12345)).toBe(4099845390);
    let sum = 0;
    const n = 20000;
    for (let i = 0; i < n; i++) {
      const u = samplerUniform(3, i, i % 5);
      expect(u >= 0 && u < 1).toBe(true);
      sum += u;
    }
    expect(Math.abs(sum / n - 0.5)).toBeLessThan(0.01);
  });
});

describe('sampleTokens on the GPU equals its CPU reference', () => {
  const grid: Omit<TokenSamplingParams, 'seed'>[] = [
    { temperature: 0, topK: 0, topP: 1, penalty: 1 },
    { temperature: 0, topK: 0, topP: 1, penalty: 1.3 },
    { temperature: 1, topK: 0, topP: 1, penalty: 1 },
    { temperature: 0.7, topK: 0, topP: 0.9, penalty: 1 },
    { temperature: 1.3, topK: 5, topP: 1, penalty: 1.2 },
    { temperature: 0.8, topK: 40, topP: 0.95, penalty: 1.1 },
    { temperature: 2, topK: 1, topP: 1, penalty: 1 },
    { temperature: 0.5, topK: 0, topP: 0.3, penalty: 0.8 },
  ];
  const shapes = [
    { M: 1, V: 1 },
    { M: 3, V: 7 },
    { M: 2, V: 333, D: 340 },
    { M: 1, V: 5003 },
  ];
  for (const { M, V, D } of shapes) {
    it(`M=${M} V=${V}${D ? ` stride ${D}` : ''}: every setting, several steps`, async () => {
      let compared = 0;
      let total = 0;
      for (const [g, base] of grid.entries()) {
        for (const step of [0, 1, 17]) {
          const seed = 1000 + g * 7 + V;
          const params = { ...base, seed };
          const x = awkwardLogits(M, V, seed + step);
          const history = Array.from({ length: M }, (_, m) => [0, 2, V - 1, (m * 5) % V]);
          const { ids, presence } = await runSampler(x, M, V, params, step, history, D);
          for (let m = 0; m < M; m++) {
            const ref = sampleTokenReference(x.subarray(m * V, (m + 1) * V), params, new Set(history[m]), samplerUniform(seed, step, m));
            total++;
            expect(ids[m] >= 0 && ids[m] < V, `id ${ids[m]} in range`).toBe(true);
            if (ref.margin > 1e-5) {
              compared++;
              expect(ids[m], `row ${m} ${JSON.stringify(params)} step ${step}`).toBe(ref.token);
            }
            if (params.penalty !== 1) expect(presence[m * V + ids[m]]).toBe(1);
          }
        }
      }
      // The margin rule only skips the rare draws that land on a boundary.
      expect(compared).toBeGreaterThanOrEqual(total * 0.95);
    });
  }

  // Rows of many slices: a vocabulary-sized row (49 whole slices and a short one) and one of 137 slices (several
  // per thread in the pick's scan), top-k then top-p, the penalty, into poisoned scratch.
  for (const V of [50_280, 140_003]) {
    it(`V=${V}: top-p, top-k then top-p${V < 100_000 ? ', top-k and plain temperature' : ''} across slices equal the reference`, async () => {
      const M = 2;
      let compared = 0;
      let total = 0;
      const settings = [
        { temperature: 0.7, topK: 0, topP: 0.9, penalty: 1 },
        { temperature: 0.9, topK: 50, topP: 0.8, penalty: 1.15 },
        { temperature: 1.1, topK: 0, topP: 1, penalty: 1 },
        { temperature: 0.6, topK: 2000, topP: 1, penalty: 1 },
      ].slice(0, V < 100_000 ? 4 : 2);
      for (const [g, base] of settings.entries()) {
        for (const step of V < 100_000 ? [0, 5] : [3]) {
          const params = { ...base, seed: 77 + g };
          const x = awkwardLogits(M, V, 31 + step + g);
          const history = [[1, 2, 3], [V - 2]];
          const { ids, presence } = await runSampler(x, M, V, params, step, history);
          for (let m = 0; m < M; m++) {
            const ref = sampleTokenReference(x.subarray(m * V, (m + 1) * V), params, new Set(history[m]), samplerUniform(params.seed, step, m));
            total++;
            if (ref.margin > 1e-5) {
              compared++;
              expect(ids[m], `row ${m} ${JSON.stringify(params)} step ${step}`).toBe(ref.token);
            }
            if (params.penalty !== 1) expect(presence[m * V + ids[m]]).toBe(1);
          }
        }
      }
      // one token's weight is ~1/V of the kept mass here, so more draws land within the margin rule's 1e-5
      expect(compared, `${compared} of ${total} draws compared`).toBeGreaterThanOrEqual(total * 0.6);
    });
  }

  it('greedy over 137 slices: a tie between one thread\'s two slices goes to the lower index; an all-NaN row picks 0', async () => {
    const V = 140_003;
    const x = randn(2 * V, 5);
    x[5] = 50; // row 0: slices 0 and 128 are the same thread's in the maxima's fold
    x[128 * 1024 + 7] = 50;
    x.fill(Number.NaN, V);
    const { ids, presence } = await runSampler(x, 2, V, { temperature: 0, topK: 0, topP: 1, penalty: 1.2, seed: 3 }, 0, []);
    expect(ids).toEqual([5, 0]);
    expect([presence[5], presence[V]]).toEqual([1, 1]);
  });

  it('runs 3 dispatches for plain temperature, 11 for top-k or top-p, 19 for both', () => {
    const count = (p: Omit<TokenSamplingParams, 'seed' | 'penalty'>) => samplerDispatches(p, 50_280).length;
    expect(count({ temperature: 1, topK: 0, topP: 1 })).toBe(3);
    expect(count({ temperature: 0.7, topK: 0, topP: 0.9 })).toBe(11);
    expect(count({ temperature: 0.7, topK: 40, topP: 1 })).toBe(11);
    expect(count({ temperature: 0.7, topK: 50_280, topP: 1 })).toBe(3); // top-k of the whole vocabulary keeps all
    expect(count({ temperature: 0.7, topK: 40, topP: 0.95 })).toBe(19);
    expect(count({ temperature: 0, topK: 40, topP: 0.95 })).toBe(3); // greedy: the maxima, then the pick
  });

  it('never picks a NaN, a -Infinity or a token that top-k / top-p removed', async () => {
    const V = 64;
    const M = 256;
    const row = new Float32Array(V).map((_, j) => (j < 4 ? 3 - j * 0.1 : -2));
    row[4] = Number.NaN;
    row[5] = -Infinity;
    const x = new Float32Array(M * V);
    for (let m = 0; m < M; m++) x.set(row, m * V);
    const { ids } = await runSampler(x, M, V, { temperature: 5, topK: 3, topP: 1, penalty: 1, seed: 9 }, 0, []);
    expect(new Set(ids)).toEqual(new Set([0, 1, 2]));
    const nucleus = await runSampler(x, M, V, { temperature: 1, topK: 0, topP: 0.45, penalty: 1, seed: 9 }, 0, []);
    // Z = 1 + e^-0.1 + e^-0.2 + e^-0.3 + 58 e^-5 = 3.856: token 0 alone holds 26% of it, tokens 0 and 1 49% (>= 45%).
    expect(new Set(nucleus.ids)).toEqual(new Set([0, 1]));
  });

  it('draws tokens with the softmax probabilities (chi-square over 2048 rows)', async () => {
    const V = 6;
    const M = 2048;
    const row = Float32Array.from([1.2, 0.3, -0.4, 2.0, 0.0, -1.5]);
    const x = new Float32Array(M * V);
    for (let m = 0; m < M; m++) x.set(row, m * V);
    const T = 0.8;
    const { ids } = await runSampler(x, M, V, { temperature: T, topK: 0, topP: 1, penalty: 1, seed: 12345 }, 3, []);
    const p = Array.from(row, (v) => Math.exp(v / T));
    const z = p.reduce((a, b) => a + b, 0);
    const counts = new Array(V).fill(0);
    for (const id of ids) counts[id]++;
    const chi2 = counts.reduce((a, c, j) => a + (c - (M * p[j]) / z) ** 2 / ((M * p[j]) / z), 0);
    expect(chi2).toBeLessThan(25.7); // 5 degrees of freedom, p = 1e-4
  });

  it('refuses bad settings and buffers with a typed error', () => {
    const buffers = createTokenSamplerBuffers(rt, 1, 8);
    const logits = rt.zeros([1, 8]);
    const out = rt.empty([1], 'i32');
    const ok = { temperature: 1, topK: 0, topP: 1, penalty: 1, seed: 1 };
    expect(() => sampleTokens(rt, logits, out, buffers, { ...ok, topP: 0 }, 0)).toThrow(/topP/);
    expect(() => sampleTokens(rt, logits, out, buffers, { ...ok, penalty: Number.NaN }, 0)).toThrow(/penalty/);
    expect(() => sampleTokens(rt, logits, out, buffers, ok, 0, 9)).toThrow(/vocab/);
    expect(() => sampleTokens(rt, logits, out, createTokenSamplerBuffers(rt, 1, 7), ok, 0)).toThrow(/presence/);
  });
});
