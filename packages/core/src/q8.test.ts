import { describe, expect, it } from 'vitest';
import { Q8_BLOCK_WORDS, Q8_GROUP, bytesPerElement, dequantizeQ8, quantizeQ8, roundTo, storageBytes, wgslLoadFloat } from './dtype.js';
import { createGemvVec4Kernel, createMatmulKernel, matmul, matmulReference } from './ops/matmul.js';
import { TILED_MATMUL_CONFIGS, createTiledMatmulKernel } from './ops/matmul-tiled.js';
import { embedding, embeddingReference } from './ops/embedding.js';
import { canNormGemv, normGemv, normGemvReference } from './ops/norm-gemv.js';
import { getTestRuntime, maxAbsError, randn, relError, worstRowError } from './testing.js';
import type { KernelDescriptor } from './kernel.js';

const rt = await getTestRuntime(); // poisons every new buffer with NaN
rt.fastKernels = true;

/** The scale quantizeQ8 gives group g of `w` (max|w| / 127 in f32). */
function groupScale(w: Float32Array, g: number): number {
  let amax = 0;
  for (let i = g * Q8_GROUP; i < Math.min(w.length, (g + 1) * Q8_GROUP); i++) amax = Math.max(amax, Math.abs(w[i]));
  return Math.fround(amax / 127);
}

describe('q8 quantiser (CPU)', () => {
  it('round trip: every element within scale/2 of its group; sizes of whole 144-byte blocks', () => {
    for (const n of [1, 31, 128, 300, 1000]) {
      const w = randn(n, n, 0.3);
      for (let g = 0; g * Q8_GROUP < n; g += 3) w[g * Q8_GROUP] *= 40; // groups of very different scales
      const words = quantizeQ8(w);
      expect(words.length).toBe(Math.ceil(n / 128) * Q8_BLOCK_WORDS);
      expect(storageBytes('q8', n)).toBe(words.length * 4);
      const back = dequantizeQ8(words, n);
      for (let i = 0; i < n; i++) {
        const s = groupScale(w, Math.floor(i / Q8_GROUP));
        expect(Math.abs(back[i] - w[i]), `n=${n} i=${i}`).toBeLessThanOrEqual(s / 2 + 1e-7 * Math.abs(w[i]));
      }
      expect(roundTo(w, 'q8')).toEqual(back);
      expect(roundTo(back, 'q8')).toEqual(back); // re-quantising dequantised values gives them back (tests may upload roundTo'd weights)
    }
    expect(bytesPerElement('q8')).toBe(1.125);
    expect(storageBytes('q8', 129)).toBe(288);
  });

  it('layout: int8 bytes little-endian in 32 words, then the 4 group scales; all-zero and one-huge-value groups', () => {
    const w = new Float32Array(160);
    for (let i = 0; i < 32; i++) w[i] = i - 16; // group 0: scale 16/127
    // group 1 (32..63) all zero
    w[64] = 1e6; // group 2: one huge value, the rest far below its scale
    for (let i = 65; i < 96; i++) w[i] = 1;
    for (let i = 96; i < 160; i++) w[i] = -2.5; // group 3, and group 4 in a second (partial) block
    const words = quantizeQ8(w);
    expect(words.length).toBe(2 * Q8_BLOCK_WORDS);
    const scales = new Float32Array(words.buffer);
    expect(scales[32]).toBe(Math.fround(16 / 127));
    expect(scales[33]).toBe(0);
    expect(scales[34]).toBe(Math.fround(1e6 / 127));
    expect(scales[Q8_BLOCK_WORDS + 32]).toBe(Math.fround(2.5 / 127));
    expect(scales[Q8_BLOCK_WORDS + 33]).toBe(0); // groups past the end are empty
    // element 0 = -16 -> q = -127 (0x81) in byte 0 of word 0; element 3 = -13 -> q = round(-13 * 127 / 16) = -103
    expect(words[0] & 0xff).toBe(0x81);
    expect((words[0] >>> 24) << 24 >> 24).toBe(-103);
    const back = dequantizeQ8(words, 160);
    for (let i = 32; i < 64; i++) expect(back[i]).toBe(0);
    expect(back[64]).toBe(Math.fround(127 * Math.fround(1e6 / 127)));
    expect(Math.abs(back[64] - 1e6)).toBeLessThan(0.1);
    for (let i = 65; i < 96; i++) expect(back[i]).toBe(0); // 1 is far below half a step of 1e6/127
    for (let i = 96; i < 160; i++) expect(back[i]).toBeCloseTo(-2.5, 6);
  });

  it('rejects non-finite values and short word arrays with typed errors', () => {
    expect(() => quantizeQ8(new Float32Array([1, NaN]))).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => quantizeQ8(new Float32Array([Infinity]))).toThrow(/element 0 is Infinity/);
    expect(() => dequantizeQ8(new Uint32Array(35), 1)).toThrow(expect.objectContaining({ code: 'SHAPE_MISMATCH' }));
  });

  it('the element loader is one function of the element index', () => {
    expect(wgslLoadFloat('loadW', 'w', 'q8')).toMatch(/^fn loadW\(i: u32\) -> f32 \{ let b = \(i >> 7u\) \* 36u;/);
  });
});

describe('q8 tensors on the GPU', () => {
  it('upload quantises, read dequantises: exactly the CPU words and values', async () => {
    const w = randn(37 * 67, 5);
    const t = rt.upload(w, [37, 67], 'q8');
    expect(t.dtype).toBe('q8');
    expect(t.byteSize).toBe(storageBytes('q8', 37 * 67));
    expect(new Uint32Array(await rt.readBytes(t.buffer, t.byteSize))).toEqual(quantizeQ8(w));
    expect(await rt.readFloat(t)).toEqual(roundTo(w, 'q8'));
    const again = rt.upload(quantizeQ8(w), [37, 67], 'q8'); // packed words are taken as they are
    expect(await rt.readFloat(again)).toEqual(roundTo(w, 'q8'));
    expect(() => rt.write(t, new Int32Array(37 * 67))).toThrow(expect.objectContaining({ code: 'DTYPE_MISMATCH' }));
    expect(() => rt.upload(new Float32Array(10), [3, 4], 'q8')).toThrow(expect.objectContaining({ code: 'SHAPE_MISMATCH' }));
    t.dispose();
    again.dispose();
  });
});


/** Runs `kernel` on x (M, K) and q8 W; compares with matmulReference on the dequantised W. */
async function checkKernel(kernel: KernelDescriptor, M: number, N: number, K: number, transposeB: boolean, bias: boolean): Promise<number> {
  const seed = M * 7919 + N * 31 + K;
  const x = randn(M * K, seed);
  const w = randn(N * K, seed + 1);
  const b = randn(N, seed + 2);
  const ref = matmulReference(x, roundTo(w, 'q8'), M, N, K, bias ? b : undefined, transposeB);
  const y = rt.empty([M, N]); // NaN until written
  const inputs = [rt.upload(x, [M, K]), rt.upload(w, transposeB ? [N, K] : [K, N], 'q8'), ...(bias ? [rt.upload(b, [N])] : [])];
  rt.run(kernel, [...inputs, y]);
  const out = (await rt.read(y)) as Float32Array;
  for (const t of [...inputs, y]) t.dispose();
  return worstRowError(out, ref, M, N);
}

describe('kernels reading q8 weights agree with their references on the dequantised weights', () => {
  // vec4 gemv: N not a multiple of the rows per workgroup (2 narrow, 8 wide), K = 128, 256, 384,
  // K = 48 and 80 (16-weight words, groups straddling rows), M up to 8, with and without bias.
  const gemvCases = [
    { M: 1, N: 37, K: 128, bias: true },
    { M: 3, N: 4099, K: 256, bias: false },
    { M: 8, N: 13, K: 384, bias: true },
    { M: 2, N: 19, K: 48, bias: false },
    { M: 1, N: 5, K: 80, bias: true },
  ];
  it(`vec4 gemv: ${gemvCases.map((c) => `${c.M}x${c.N}x${c.K}${c.bias ? '+b' : ''}`).join(', ')}`, async () => {
    for (const c of gemvCases) {
      const kernel = createGemvVec4Kernel(c, 'q8', c.bias);
      expect(kernel.name).toBe('matmul_gemv_vec4');
      expect(await checkKernel(kernel, c.M, c.N, c.K, true, c.bias), JSON.stringify(c)).toBeLessThan(1e-5);
    }
    expect(() => createGemvVec4Kernel({ M: 1, N: 4, K: 40 }, 'q8', false)).toThrow(expect.objectContaining({ code: 'SHAPE_MISMATCH' }));
  });

  it('element loads: the reduction gemv and the plain loop at odd K, W (N, K) and (K, N)', async () => {
    const gemv = createMatmulKernel({ M: 2, N: 19, K: 67 }, { weightDtype: 'q8', gemv: true, bias: true });
    expect(gemv.name).toBe('matmul_gemv');
    expect(await checkKernel(gemv, 2, 19, 67, true, true)).toBeLessThan(1e-5);
    const simple = createMatmulKernel({ M: 3, N: 5, K: 67 }, { weightDtype: 'q8', simple: true });
    expect(simple.name).toBe('matmul_simple');
    expect(await checkKernel(simple, 3, 5, 67, true, false)).toBeLessThan(1e-5);
    const simpleKn = createMatmulKernel({ M: 3, N: 7, K: 40 }, { weightDtype: 'q8', simple: true, transposeB: false, bias: true });
    expect(await checkKernel(simpleKn, 3, 7, 40, false, true)).toBeLessThan(1e-5);
  });

  it('register-blocked tiled matmul: 16-weight words (K % 16 == 0) and element loads (odd K, W (K, N))', async () => {
    const tile = TILED_MATMUL_CONFIGS['32x64'];
    const cases = [
      { M: 37, N: 70, K: 256, transposeB: true, bias: true },
      { M: 33, N: 129, K: 48, transposeB: true, bias: false },
      { M: 7, N: 20, K: 67, transposeB: true, bias: true },
      { M: 9, N: 40, K: 128, transposeB: false, bias: false },
    ];
    for (const c of cases) {
      const kernel = createTiledMatmulKernel(c, tile, { weightDtype: 'q8', transposeB: c.transposeB, bias: c.bias });
      expect(kernel.cacheKey).toContain(c.transposeB && c.K % 16 === 0 ? 'vw' : 'sw');
      expect(await checkKernel(kernel, c.M, c.N, c.K, c.transposeB, c.bias), JSON.stringify(c)).toBeLessThan(1e-5);
    }
  });

  it('matmul() picks the vec4 gemv at decode and the tiled kernel at prefill for q8 weights', async () => {
    const K = 128;
    const N = 21;
    const w = randn(N * K, 11);
    const wt = rt.upload(w, [N, K], 'q8');
    for (const M of [1, 12]) {
      const x = randn(M * K, 12 + M);
      const y = matmul(rt, rt.upload(x, [M, K]), wt);
      expect(worstRowError(await rt.readFloat(y), matmulReference(x, roundTo(w, 'q8'), M, N, K), M, N)).toBeLessThan(1e-5);
    }
  });

  it('embedding gathers dequantised rows of a q8 table (D = 67 and 128)', async () => {
    for (const D of [67, 128]) {
      const V = 50;
      const table = randn(V * D, D);
      const ids = new Int32Array([3, 49, 0, 3, 17]);
      const y = embedding(rt, rt.upload(ids, [5]), rt.upload(table, [V, D], 'q8'), { scale: 1.5 });
      expect(await rt.readFloat(y)).toEqual(embeddingReference(ids, roundTo(table, 'q8'), D, 1.5));
    }
  });
});

describe('fused norm + gemv with q8 weights', () => {
  // N not a multiple of the rows per workgroup (4 below N = 2048, 8 above), K = 128, 256, 384 and
  // 48 (16-weight words, groups across rows), M = 1 and 2, plain, gated with groups, glu, conv, stack.
  it('add_rms with bias (1x37x128, 2x4099x256) and gated_rms in groups (2x19x48, G = 12)', async () => {
    for (const { kind, M, N, K, G } of [
      { kind: 'add_rms', M: 1, N: 37, K: 128 },
      { kind: 'add_rms', M: 2, N: 4099, K: 256 },
      { kind: 'gated_rms', M: 2, N: 19, K: 48, G: 12 },
    ] as const) {
      const seed = M * 1000 + N + K;
      const x = randn(M * K, seed);
      const branch = randn(M * K, seed + 1);
      const z = randn(M * K, seed + 2, 2);
      const normWeight = randn(K, seed + 3);
      const weight = randn(N * K, seed + 4);
      const bias = randn(N, seed + 5);
      const ref = normGemvReference({ kind, M, K, N, x, branch: kind === 'add_rms' ? branch : undefined, alpha: 0.7, z, zOffset: 0, zStride: K, normWeight, eps: 1e-5, groupSize: G, weight: roundTo(weight, 'q8'), bias });
      const wt = rt.upload(weight, [N, K], 'q8');
      expect(canNormGemv(rt, M, K, wt, G ? K / G : 1)).toBe(true);
      const sum = rt.empty([M, K]);
      const y = normGemv(rt, {
        kind, x: rt.upload(x, [M, K]), branch: kind === 'add_rms' ? rt.upload(branch, [M, K]) : undefined, alpha: 0.7, sum: kind === 'add_rms' ? sum : undefined,
        z: rt.upload(z, [M, K]), normWeight: rt.upload(normWeight, [K]), eps: 1e-5, groupSize: G, weight: wt, bias: rt.upload(bias, [N]),
      });
      expect(relError(await rt.read(y), ref.y), `${kind} ${M}x${N}x${K}`).toBeLessThan(1e-5);
      if (kind === 'add_rms') expect(maxAbsError(await rt.read(sum), ref.sum)).toBeLessThan(1e-6);
    }
    expect(canNormGemv(rt, 1, 40, rt.upload(randn(4 * 40, 1), [4, 40], 'q8'))).toBe(false); // K not a multiple of 16
  });

  it('glu (1x13x384), conv epilogue (2x45x128) and a stack of three (1x(24+8+7)x128)', async () => {
    const silu = (v: number) => v / (1 + Math.exp(-v));
    {
      const [M, N, K] = [1, 13, 384];
      const x = randn(M * K, 1);
      const normWeight = randn(K, 2);
      const gate = randn(N * K, 3);
      const up = randn(N * K, 4);
      const common = { kind: 'add_rms' as const, M, K, N, x, normWeight, eps: 1e-6 };
      const g = normGemvReference({ ...common, weight: roundTo(gate, 'q8') }).y;
      const u = normGemvReference({ ...common, weight: roundTo(up, 'q8') }).y;
      const y = normGemv(rt, { kind: 'add_rms', x: rt.upload(x, [M, K]), normWeight: rt.upload(normWeight, [K]), eps: 1e-6, weight: rt.upload(gate, [N, K], 'q8'), glu: { up: rt.upload(up, [N, K], 'q8'), act: 'silu' } });
      expect(relError(await rt.read(y), g.map((v, i) => silu(v) * u[i])), 'glu').toBeLessThan(1e-5);
    }
    {
      const [M, N, K, start, C, taps] = [2, 45, 128, 7, 29, 4];
      const normWeight = randn(K, 5);
      const weight = randn(N * K, 6);
      const convW = randn(C * taps, 7);
      const state = randn(M * C * (taps - 1), 8);
      const x = randn(M * K, 9);
      const gpuState = rt.upload(state, [M, C, taps - 1]);
      const want = normGemvReference({ kind: 'add_rms', M, K, N, x, normWeight, eps: 1e-5, weight: roundTo(weight, 'q8'), conv: { weight: convW, state, taps, start, activation: 'silu' } });
      const y = normGemv(rt, { kind: 'add_rms', x: rt.upload(x, [M, K]), normWeight: rt.upload(normWeight, [K]), eps: 1e-5, weight: rt.upload(weight, [N, K], 'q8'), conv: { weight: rt.upload(convW, [C, 1, taps]), state: gpuState, start, activation: 'silu' } });
      expect(relError(await rt.read(y), want.y), 'conv').toBeLessThan(1e-5);
      expect(maxAbsError(await rt.read(gpuState), state)).toBeLessThan(1e-5);
    }
    {
      const [M, K, rows] = [1, 128, [24, 8, 7]];
      const x = randn(M * K, 10);
      const normWeight = randn(K, 11);
      const ws = rows.map((n, i) => randn(n * K, 12 + i));
      const N = rows.reduce((a, b) => a + b, 0);
      const all = new Float32Array(N * K);
      ws.forEach((w, i) => all.set(roundTo(w, 'q8'), rows.slice(0, i).reduce((a, b) => a + b, 0) * K));
      const ref = normGemvReference({ kind: 'add_rms', M, K, N, x, normWeight, eps: 1e-5, weight: all });
      const [first, ...rest] = ws.map((w, i) => rt.upload(w, [rows[i], K], 'q8'));
      const y = normGemv(rt, { kind: 'add_rms', x: rt.upload(x, [M, K]), normWeight: rt.upload(normWeight, [K]), eps: 1e-5, weight: first, stack: rest });
      expect(relError(await rt.read(y), ref.y), 'stack').toBeLessThan(1e-5);
    }
  });
});
