import { describe, expect, it } from 'vitest';
import { getTestRuntime, randn, relError } from '@statespace/core/testing';
import { attendRuns, attentionReference, createTiledFlashAttentionKernel, flashAttention, tiledFlashRows, type FlashAttentionOptions } from './flash-attention.js';

const rt = await getTestRuntime();

interface Case {
  B: number;
  Lq: number;
  Lk?: number;
  H: number;
  Hkv: number;
  D: number;
  opts?: FlashAttentionOptions;
}

async function check(c: Case, seed: number): Promise<number> {
  const Lk = c.Lk ?? c.Lq;
  const q = randn(c.B * c.Lq * c.H * c.D, seed);
  const k = randn(c.B * Lk * c.Hkv * c.D, seed + 1);
  const v = randn(c.B * Lk * c.Hkv * c.D, seed + 2);
  const o = flashAttention(rt, rt.upload(q, [c.B, c.Lq, c.H, c.D]), rt.upload(k, [c.B, Lk, c.Hkv, c.D]), rt.upload(v, [c.B, Lk, c.Hkv, c.D]), c.opts);
  expect(o.shape).toEqual([c.B, c.Lq, c.H, c.D]);
  const ref = attentionReference(q, k, v, { B: c.B, Lq: c.Lq, Lk, H: c.H, Hkv: c.Hkv, D: c.D }, { ...c.opts });
  return relError(await rt.read(o), ref);
}

describe('flash attention (prefill)', () => {
  const lengths = [1, 2, 17, 64, 65, 300];
  for (const L of lengths) {
    it(`L=${L} H=2 D=16 batch 2`, async () => {
      expect(await check({ B: 2, Lq: L, H: 2, Hkv: 2, D: 16, opts: { path: 'prefill' } }, L)).toBeLessThan(1e-5);
    });
  }
  for (const D of [16, 32, 64, 128, 256]) {
    it(`head_dim ${D}, L=37, GQA 4:1`, async () => {
      expect(await check({ B: 1, Lq: 37, H: 4, Hkv: 1, D }, D)).toBeLessThan(1e-5);
    });
  }
  it('odd head_dim 40 and 80', async () => {
    expect(await check({ B: 1, Lq: 33, H: 2, Hkv: 1, D: 40 }, 3)).toBeLessThan(1e-5);
    expect(await check({ B: 2, Lq: 19, H: 2, Hkv: 2, D: 80 }, 4)).toBeLessThan(1e-5);
  });
  for (const [H, Hkv] of [[6, 3], [6, 2], [6, 1]] as [number, number][]) {
    it(`GQA H=${H} Hkv=${Hkv}, L=65`, async () => {
      expect(await check({ B: 2, Lq: 65, H, Hkv, D: 32 }, H * 10 + Hkv)).toBeLessThan(1e-5);
    });
  }
  for (const window of [1, 5, 32, 33, 100]) {
    it(`sliding window ${window}, L=129`, async () => {
      expect(await check({ B: 1, Lq: 129, H: 2, Hkv: 1, D: 32, opts: { slidingWindow: window } }, window)).toBeLessThan(1e-5);
    });
  }
  it('soft-cap and custom scale', async () => {
    expect(await check({ B: 1, Lq: 70, H: 2, Hkv: 2, D: 32, opts: { softcap: 2.5, scale: 0.9 } }, 5)).toBeLessThan(1e-5);
  });
  for (const [Lq, Lk] of [[1, 300], [5, 300], [64, 100], [33, 97]] as [number, number][]) {
    it(`queries continue after the cache: Lq=${Lq} Lk=${Lk}`, async () => {
      expect(await check({ B: 2, Lq, Lk, H: 4, Hkv: 2, D: 32, opts: { path: 'prefill' } }, Lq + Lk)).toBeLessThan(1e-5);
    });
  }
  it('query offset before the end (keys after the queries are ignored)', async () => {
    expect(await check({ B: 1, Lq: 20, Lk: 90, H: 2, Hkv: 1, D: 16, opts: { queryOffset: 40, slidingWindow: 25 } }, 6)).toBeLessThan(1e-5);
  });
  it('keeps the score matrix out of global memory (the memory it adds is O(L), measured)', async () => {
    // The runtime's own peak of live buffer bytes over one prefill call, inputs excluded: the output
    // and a (max, sum) pair per query row, never the L x L scores (16 MiB at L = 2048).
    const H = 2;
    const D = 32;
    const added = async (L: number) => {
      const [q, k, v] = [1, 2, 3].map((s) => rt.upload(randn(L * H * D, s), [1, L, H, D]));
      rt.flush();
      const before = rt.memory().liveBytes;
      rt.resetPeak();
      const o = flashAttention(rt, q, k, v, { path: 'prefill' });
      await rt.read(o);
      const peak = rt.memory().peakLiveBytes - before;
      for (const t of [q, k, v, o]) t.dispose();
      return peak;
    };
    const small = await added(256);
    const large = await added(2048);
    const perRow = H * (D + 2) * 4; // output row + (max, sum) per head
    expect(large).toBeLessThanOrEqual(1.25 * perRow * 2048 + 65536);
    expect(large).toBeGreaterThanOrEqual(2048 * H * D * 4); // the output is counted: the counter sees the call
    // 8x the tokens, 8x the memory (an L x L buffer would give 64x)
    expect(large / small).toBeLessThan(9);
  });
});

describe('tiled flash attention (prefill, forced on this adapter)', () => {
  const tiled = (opts: FlashAttentionOptions = {}): FlashAttentionOptions => ({ ...opts, path: 'prefill', prefillKernel: 'tiled' });
  // Every (Br, D) variant the tile chooser makes on this adapter's 32 KiB: 64 rows at D ≤ 64, 32 at D = 80 (Dp = 96), 16 at D = 128.
  for (const [D, Lq, H, Hkv] of [[28, 33, 6, 2], [48, 130, 4, 4], [64, 31, 6, 2], [80, 33, 4, 4], [128, 33, 6, 2]] as [number, number, number, number][]) {
    it(`D=${D} Lq=${Lq} H/Hkv=${H}/${Hkv} (${tiledFlashRows(D, H / Hkv, rt.limits)} rows)`, async () => {
      expect(await check({ B: 1, Lq, H, Hkv, D, opts: tiled() }, D + Lq)).toBeLessThan(1e-5);
    });
  }
  it('one query and queries after a cache (Lq 1 and 130 against Lk 200, batch 2)', async () => {
    expect(await check({ B: 2, Lq: 1, Lk: 200, H: 6, Hkv: 2, D: 64, opts: tiled() }, 11)).toBeLessThan(1e-5);
    expect(await check({ B: 2, Lq: 130, Lk: 200, H: 6, Hkv: 2, D: 64, opts: tiled() }, 12)).toBeLessThan(1e-5);
  });
  it('queryOffset before the end, sliding windows smaller than a tile and larger, soft-cap', async () => {
    expect(await check({ B: 1, Lq: 40, Lk: 120, H: 4, Hkv: 4, D: 32, opts: tiled({ queryOffset: 50, slidingWindow: 7 }) }, 13)).toBeLessThan(1e-5);
    expect(await check({ B: 1, Lq: 130, H: 6, Hkv: 2, D: 64, opts: tiled({ slidingWindow: 45 }) }, 14)).toBeLessThan(1e-5);
    expect(await check({ B: 1, Lq: 130, H: 4, Hkv: 4, D: 48, opts: tiled({ softcap: 2.5, scale: 0.9, slidingWindow: 100 }) }, 15)).toBeLessThan(1e-5);
  });
  it('two KV runs with poisoned tails (first/last carry), window across the boundary', async () => {
    const [B, H, Hkv, D, L, cut, cap] = [2, 6, 2, 64, 150, 70, 96];
    const q = randn(B * L * H * D, 21);
    const k = randn(B * L * Hkv * D, 22);
    const v = randn(B * L * Hkv * D, 23);
    const part = (x: Float32Array, from: number, n: number) => {
      const t = rt.empty([B, cap, Hkv, D]); // poisoned rows past n
      const rows = new Float32Array(B * cap * Hkv * D).fill(Number.NaN);
      for (let b = 0; b < B; b++) rows.set(x.subarray((b * L + from) * Hkv * D, (b * L + from + n) * Hkv * D), b * cap * Hkv * D);
      rt.write(t, rows);
      return t;
    };
    const runs = [
      { k: part(k, 0, cut), v: part(v, 0, cut), start: 0, length: cut },
      { k: part(k, cut, L - cut), v: part(v, cut, L - cut), start: cut, length: L - cut },
    ];
    for (const opts of [{}, { slidingWindow: 40, softcap: 3 }]) {
      const o = attendRuns(rt, rt.upload(q, [B, L, H, D]), runs, 0, tiled(opts));
      const ref = attentionReference(q, k, v, { B, Lq: L, Lk: L, H, Hkv, D }, opts);
      expect(relError(await rt.read(o), ref)).toBeLessThan(1e-5);
    }
  });
  it('never visits a key tile above the diagonal: a late query tile sees its keys, the first sees one', () => {
    const shape = { B: 1, Lq: 4096, H: 16, Hkv: 4, D: 64, qOffset: 0, segStart: 0, segLen: 4096, segCap: 4096, first: true, last: true };
    const k = createTiledFlashAttentionKernel(shape, {}, 64);
    expect(k.dispatch).toEqual([256, 4, 1]); // 16 queries x 4 heads of a KV head per workgroup
    expect(k.wgsl).toMatch(/let kHi = min\(u\.segStart \+ u\.segLen, qposMax \+ 1u\)/);
    expect(k.wgsl).toMatch(/let full = /);
  });
  it('refuses what it does not take (D=256, D=30; the simple kernel takes them, tested above)', () => {
    expect(tiledFlashRows(256, 1, rt.limits)).toBeNull();
    expect(tiledFlashRows(30, 1, rt.limits)).toBeNull();
    const q = rt.upload(randn(8 * 2 * 30, 1), [1, 8, 2, 30]);
    expect(() => flashAttention(rt, q, q, q, tiled())).toThrow(/tiled prefill kernel does not take head_dim 30/);
    q.dispose();
  });
});

describe('flash decoding', () => {
  for (const Lk of [1, 2, 17, 255, 256, 257, 300, 700]) {
    it(`one query against ${Lk} keys, GQA 4:2, batch 2`, async () => {
      expect(await check({ B: 2, Lq: 1, Lk, H: 4, Hkv: 2, D: 32, opts: { path: 'decode' } }, Lk)).toBeLessThan(1e-5);
    });
  }
  for (const D of [16, 48, 64, 80, 128, 200, 256]) {
    it(`head_dim ${D}, 300 keys`, async () => {
      expect(await check({ B: 1, Lq: 1, Lk: 300, H: 2, Hkv: 1, D }, D + 1)).toBeLessThan(1e-5);
    });
  }
  it('sliding window and soft-cap', async () => {
    expect(await check({ B: 1, Lq: 1, Lk: 600, H: 2, Hkv: 2, D: 32, opts: { slidingWindow: 300, softcap: 3 } }, 9)).toBeLessThan(1e-5);
    expect(await check({ B: 1, Lq: 1, Lk: 600, H: 2, Hkv: 2, D: 32, opts: { slidingWindow: 7 } }, 10)).toBeLessThan(1e-5);
  });
});
