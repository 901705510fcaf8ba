import { describe, expect, it } from 'vitest';
import { roundTo } from '@statespace/core';
import { getTestRuntime, randn, relError } from '@statespace/core/testing';
import { canDecodeQkv, decodeQkv, decodeQkvPacked } from './decode-qkv.js';
import { KVCacheState } from './kv-cache.js';
import { applyRope, ropeReference, ropeTable } from './rope.js';

const rt = await getTestRuntime(); // every new buffer starts as NaN

/** Rows [from, from + n) of each head row (stride S) of x (rows, S): the first D features. */
function heads(x: Float32Array, rows: number, S: number, D: number): Float32Array {
  const out = new Float32Array(rows * D);
  for (let r = 0; r < rows; r++) out.set(x.subarray(r * S, r * S + D), r * D);
  return out;
}

describe('decodeQkv: one token q, k, v rotated and written into the cache in one dispatch', () => {
  // Awkward sizes: GQA 6:2 and 5:5, partial rotary (R < D), head_dim 28 / 48 / 20, q rows wider than
  // D (a [query | gate] projection), k rows wider than D, q/k norms with and without (1 + w), no rope.
  const cases = [
    { B: 2, H: 6, Hkv: 2, D: 28, R: 16, Sq: 56, Sk: 28, norm: false, unit: false, rope: true },
    { B: 1, H: 5, Hkv: 5, D: 48, R: 48, Sq: 48, Sk: 52, norm: true, unit: true, rope: true },
    { B: 3, H: 4, Hkv: 1, D: 20, R: 20, Sq: 20, Sk: 20, norm: true, unit: false, rope: false },
  ];
  for (const c of cases) {
    it(`B=${c.B} H=${c.H} Hkv=${c.Hkv} D=${c.D} R=${c.R} q stride ${c.Sq} k stride ${c.Sk}${c.norm ? ' q/k norm' : ''}${c.unit ? ' (1+w)' : ''}${c.rope ? '' : ' no rope'}`, async () => {
      const { B, H, Hkv, D, R, Sq, Sk } = c;
      const T = 37;
      const slot = 29;
      const position = 301;
      const seed = B * 100 + H * 10 + D;
      const q = randn(B * H * Sq, seed);
      const k = randn(B * Hkv * Sk, seed + 1);
      const v = randn(B * Hkv * D, seed + 2);
      const qw = roundTo(randn(D, seed + 3), 'bf16');
      const kw = roundTo(randn(D, seed + 4), 'bf16');
      const table = ropeTable({ theta: 10000, rotaryDim: R }, 0, position + 3);
      const cacheK = rt.empty([B, T, Hkv, D]);
      const cacheV = rt.empty([B, T, Hkv, D]);
      const norm = (w: Float32Array) => (c.norm ? { weight: rt.upload(w, [D], 'bf16'), eps: 1e-6, unitOffset: c.unit } : undefined);
      const qh = decodeQkv(rt, {
        q: rt.upload(q, [B, 1, H, Sq]),
        k: rt.upload(k, [B, 1, Hkv, Sk]),
        v: rt.upload(v, [B, 1, Hkv, D]),
        headDim: D,
        rope: c.rope ? { table: rt.upload(table, [position + 3, R]), position } : undefined,
        qNorm: norm(qw),
        kNorm: norm(kw),
        cache: { k: cacheK, v: cacheV, slot },
      });
      const row = c.rope ? table.subarray(position * R, (position + 1) * R) : null;
      const ref = (x: Float32Array, n: number, w: Float32Array) =>
        ropeReference(x, { B, L: 1, H: n, D }, row, c.rope ? R : 0, c.norm ? { weight: w, eps: 1e-6, unitOffset: c.unit } : undefined);
      expect(relError(await rt.read(qh), ref(heads(q, B * H, Sq, D), H, qw))).toBeLessThan(1e-6);
      const gotK = await rt.read(cacheK);
      const gotV = await rt.read(cacheV);
      const wantK = ref(heads(k, B * Hkv, Sk, D), Hkv, kw);
      for (let b = 0; b < B; b++) {
        const at = (t: number) => ((b * T + t) * Hkv) * D;
        expect(relError(gotK.subarray(at(slot), at(slot + 1)), wantK.subarray(b * Hkv * D, (b + 1) * Hkv * D))).toBeLessThan(1e-6);
        expect(Array.from(gotV.subarray(at(slot), at(slot + 1)))).toEqual(Array.from(v.subarray(b * Hkv * D, (b + 1) * Hkv * D)));
        // the other rows of the run are untouched (still the NaN poison)
        expect(gotK.subarray(at(slot - 1), at(slot)).every(Number.isNaN)).toBe(true);
        expect(gotV.subarray(at(slot + 1), at(slot + 2)).every(Number.isNaN)).toBe(true);
      }
    });
  }

  it('decodeQkvPacked reads q, k, v side by side in one row (a stacked projection) and equals decodeQkv', async () => {
    const B = 2, H = 6, Hkv = 2, D = 20, R = 12, T = 9, slot = 4, position = 17;
    const W = (H + 2 * Hkv) * D;
    const qkv = randn(B * W, 5);
    const part = (from: number, n: number) => {
      const out = new Float32Array(B * n);
      for (let b = 0; b < B; b++) out.set(qkv.subarray(b * W + from, b * W + from + n), b * n);
      return out;
    };
    const table = rt.upload(ropeTable({ theta: 10000, rotaryDim: R }, 0, 20), [20, R]);
    const nw = { weight: rt.upload(randn(D, 6), [D]), eps: 1e-6 };
    const caches = [0, 1].map(() => ({ k: rt.empty([B, T, Hkv, D]), v: rt.empty([B, T, Hkv, D]), slot }));
    const common = { headDim: D, rope: { table, position }, qNorm: nw, kNorm: nw };
    const packed = decodeQkvPacked(rt, { ...common, qkv: rt.upload(qkv, [B, 1, W]), numHeads: H, numKeyValueHeads: Hkv, cache: caches[0] });
    const split = decodeQkv(rt, {
      ...common,
      q: rt.upload(part(0, H * D), [B, 1, H, D]),
      k: rt.upload(part(H * D, Hkv * D), [B, 1, Hkv, D]),
      v: rt.upload(part((H + Hkv) * D, Hkv * D), [B, 1, Hkv, D]),
      cache: caches[1],
    });
    expect(Array.from(await rt.read(packed))).toEqual(Array.from(await rt.read(split)));
    for (const key of ['k', 'v'] as const) {
      const a = await rt.read(caches[0][key]);
      const b = await rt.read(caches[1][key]);
      for (let b0 = 0; b0 < B; b0++) {
        const at = (b0 * T + slot) * Hkv * D;
        expect(Array.from(a.subarray(at, at + Hkv * D))).toEqual(Array.from(b.subarray(at, at + Hkv * D)));
        expect(a.subarray(at, at + Hkv * D).some(Number.isNaN)).toBe(false);
      }
    }
    expect(() => decodeQkvPacked(rt, { ...common, qkv: rt.upload(qkv.subarray(0, B * (W - D)), [B, 1, W - D]), numHeads: H, numKeyValueHeads: Hkv, cache: caches[0] })).toThrow(/expected \[B, 1/);
  });

  it('takes q and k norms only together and alike', () => {
    const w = rt.upload(randn(8, 1), [8]);
    const w16 = rt.upload(randn(8, 1), [8], 'f16');
    expect(canDecodeQkv(rt, {})).toBe(true);
    expect(canDecodeQkv(rt, { qNorm: { weight: w, eps: 1e-6 } })).toBe(false);
    expect(canDecodeQkv(rt, { qNorm: { weight: w, eps: 1e-6 }, kNorm: { weight: w16, eps: 1e-6 } })).toBe(false);
    expect(canDecodeQkv(rt, { qNorm: { weight: w, eps: 1e-6 }, kNorm: { weight: w, eps: 1e-6, unitOffset: true } })).toBe(false);
  });

  it('KVCacheState.appendDecodeToken equals rope + append token by token, across page runs and in a ring', async () => {
    const B = 2, H = 4, Hkv = 2, D = 24, R = 24;
    const P = 40;
    const table = rt.upload(ropeTable({ theta: 10000, rotaryDim: R }, 0, P), [P, R]);
    // runs of at most 2 pages of 4 tokens: the first run moved into a larger one at token 4, then new runs
    for (const options of [{ pageSize: 4, maxRunPages: 2 }, { pageSize: 4, window: 6 }]) {
      const fused = new KVCacheState(rt, { batch: B, numKeyValueHeads: Hkv, headDim: D }, options);
      const plain = new KVCacheState(rt, { batch: B, numKeyValueHeads: Hkv, headDim: D }, options);
      const attend = { slidingWindow: options.window };
      for (let t = 0; t < 19; t++) {
        const q = rt.upload(randn(B * H * D, 10 + t), [B, 1, H, D]);
        const k = rt.upload(randn(B * Hkv * D, 40 + t), [B, 1, Hkv, D]);
        const v = rt.upload(randn(B * Hkv * D, 70 + t), [B, 1, Hkv, D]);
        const qh = fused.appendDecodeToken(q, k, v, { rope: { table, position: t } });
        expect(qh).not.toBeNull();
        const a = await rt.read(fused.attend(qh!, attend));
        plain.append(k, v, { rope: { table, position: t } });
        const b = await rt.read(plain.attend(applyRope(rt, q, { table, position: t }), attend));
        expect(relError(a, b), `token ${t} ${options.window ? 'ring' : 'pages'}`).toBeLessThan(1e-6);
      }
      expect(fused.length).toBe(19);
      expect(fused.runCount).toBe(plain.runCount);
      if (!options.window) expect(fused.runCount).toBeGreaterThan(2); // the appends crossed run boundaries
    }
  });
});
