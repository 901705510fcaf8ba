import { describe, expect, it } from 'vitest';
import { roundTo } from '@statespace/core';
import { getTestRuntime, randn, relError } from '@statespace/core/testing';
import { applyRope, ropeFrequencies, ropeReference, ropeTable, type RopeConfig } from './rope.js';

const rt = await getTestRuntime();

describe('rope frequencies (transformers ROPE_INIT_FUNCTIONS)', () => {
  it('default: 1 / theta^(2i/dim), float32', () => {
    const { invFreq, attentionFactor } = ropeFrequencies({ theta: 10000, rotaryDim: 8 });
    expect(attentionFactor).toBe(1);
    // Against 1 / 10000^(2i/8) in float64 (0.1^i): torch computes in float32, so within 2 ulp of f32.
    expect(invFreq.length).toBe(4);
    invFreq.forEach((f, i) => expect(Math.abs(f - 0.1 ** i) / 0.1 ** i, `i=${i}`).toBeLessThan(2.4e-7));
    // and the values are float32 numbers (torch's inv_freq dtype)
    for (const f of invFreq) expect(Math.fround(f)).toBe(f);
  });
  it('linear divides every frequency by the factor', () => {
    const a = ropeFrequencies({ theta: 500000, rotaryDim: 64 }).invFreq;
    const b = ropeFrequencies({ theta: 500000, rotaryDim: 64, scaling: { rope_type: 'linear', factor: 4 } }).invFreq;
    for (let i = 0; i < 32; i++) expect(b[i]).toBeCloseTo(a[i] / 4, 10);
  });
  it('dynamic equals default up to max_position_embeddings and grows the base past it', () => {
    const cfg: RopeConfig = { theta: 10000, rotaryDim: 32, maxPositionEmbeddings: 128, scaling: { rope_type: 'dynamic', factor: 2 } };
    const plain = ropeFrequencies({ theta: 10000, rotaryDim: 32 }).invFreq;
    expect(Array.from(ropeFrequencies(cfg, 100).invFreq)).toEqual(Array.from(plain));
    const long = ropeFrequencies(cfg, 256).invFreq;
    const base = 10000 * ((2 * 256) / 128 - 1) ** (32 / 30);
    expect(long[5]).toBeCloseTo(1 / base ** (10 / 32), 6);
    expect(long[0]).toBe(1);
  });
  it('llama3 keeps high frequencies, divides low ones, blends between', () => {
    const scaling = { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
    const plain = ropeFrequencies({ theta: 500000, rotaryDim: 128 }).invFreq;
    const scaled = ropeFrequencies({ theta: 500000, rotaryDim: 128, scaling }).invFreq;
    let kept = 0, divided = 0, blended = 0;
    for (let i = 0; i < 64; i++) {
      const wavelen = (2 * Math.PI) / plain[i];
      if (wavelen < 8192 / 4) { expect(scaled[i]).toBe(plain[i]); kept++; }
      else if (wavelen > 8192) { expect(scaled[i]).toBeCloseTo(plain[i] / 8, 12); divided++; }
      else { expect(scaled[i]).toBeLessThan(plain[i]); expect(scaled[i]).toBeGreaterThan(plain[i] / 8); blended++; }
    }
    expect(kept * divided * blended).toBeGreaterThan(0);
  });
  it('yarn: attention factor 0.1·ln(factor)+1, extrapolate high and interpolate low frequencies', () => {
    const cfg: RopeConfig = { theta: 10000, rotaryDim: 64, scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 4096 } };
    const { invFreq, attentionFactor } = ropeFrequencies(cfg);
    expect(attentionFactor).toBeCloseTo(0.1 * Math.log(4) + 1, 12);
    const plain = ropeFrequencies({ theta: 10000, rotaryDim: 64 }).invFreq;
    expect(invFreq[0]).toBeCloseTo(plain[0], 7);
    expect(invFreq[31]).toBeCloseTo(plain[31] / 4, 9);
    const mscaled = ropeFrequencies({ ...cfg, scaling: { ...cfg.scaling, mscale: 1, mscale_all_dim: 1 } });
    expect(mscaled.attentionFactor).toBe(1);
  });
  it('rejects unknown rope types', () => {
    expect(() => ropeFrequencies({ theta: 1e4, rotaryDim: 8, scaling: { rope_type: 'mrope' } })).toThrow(/not supported/);
  });
  it('the table holds cos then sin of position · inv_freq, times the attention factor', () => {
    const t = ropeTable({ theta: 10000, rotaryDim: 4 }, 3, 2);
    expect(t[0]).toBeCloseTo(Math.cos(3), 6);
    expect(t[2]).toBeCloseTo(Math.sin(3), 6);
    expect(t[4 + 1]).toBeCloseTo(Math.cos(4 * 0.01), 6);
    // Every entry for 1000 positions against cos/sin computed in float64: the float32 angle torch
    // forms (position · inv_freq, both f32) is off by at most ~2 ulp of the angle.
    const R = 8;
    const big = ropeTable({ theta: 10000, rotaryDim: R }, 0, 1000);
    let worst = 0;
    for (let p = 0; p < 1000; p++) {
      for (let i = 0; i < R / 2; i++) {
        const angle = p * 10000 ** (-(2 * i) / R);
        const tol = 2.4e-7 * angle + 1e-7;
        worst = Math.max(worst, Math.abs(big[p * R + i] - Math.cos(angle)) / tol, Math.abs(big[p * R + R / 2 + i] - Math.sin(angle)) / tol);
      }
    }
    expect(worst).toBeLessThan(1);
  });
});

describe('rope kernel', () => {
  const cases: [string, { B: number; L: number; H: number; D: number; R: number; pos: number }][] = [
    ['full rotary', { B: 2, L: 7, H: 3, D: 16, R: 16, pos: 0 }],
    ['partial rotary 1/4 at position 1000', { B: 1, L: 13, H: 2, D: 64, R: 16, pos: 1000 }],
    ['head_dim 256, one token', { B: 2, L: 1, H: 5, D: 256, R: 128, pos: 37 }],
  ];
  for (const [name, c] of cases) {
    it(name, async () => {
      const cfg: RopeConfig = { theta: 10000, rotaryDim: c.R };
      const x = randn(c.B * c.L * c.H * c.D, c.D);
      const table = ropeTable(cfg, c.pos, c.L);
      const full = rt.upload(ropeTable(cfg, 0, c.pos + c.L), [c.pos + c.L, c.R]);
      const y = applyRope(rt, rt.upload(x, [c.B, c.L, c.H, c.D]), { table: full, position: c.pos });
      const ref = new Float32Array(x.length);
      for (let b = 0; b < c.B; b++) {
        const n = c.L * c.H * c.D;
        ref.set(ropeReference(x.subarray(b * n, (b + 1) * n), { ...c, B: 1 }, table, c.R), b * n);
      }
      expect(relError(await rt.read(y), ref)).toBeLessThan(1e-5);
    });
  }
  it('fused RMSNorm (unit offset, bf16 weight) on the query half of [query | gate] rows', async () => {
    const B = 2, L = 5, H = 3, D = 32, R = 8;
    const qg = randn(B * L * H * 2 * D, 7);
    const w = randn(D, 8, 0.2);
    const cfg: RopeConfig = { theta: 10000, rotaryDim: R };
    const table = ropeTable(cfg, 0, L);
    const y = applyRope(rt, rt.upload(qg, [B, L, H, 2 * D]), {
      table: rt.upload(table, [L, R]), headDim: D, norm: { weight: rt.upload(w, [D], 'bf16'), eps: 1e-6, unitOffset: true },
    });
    expect(y.shape).toEqual([B, L, H, D]);
    const q = new Float32Array(B * L * H * D);
    for (let r = 0; r < B * L * H; r++) q.set(qg.subarray(r * 2 * D, r * 2 * D + D), r * D);
    const ref = new Float32Array(q.length);
    for (let b = 0; b < B; b++) {
      const n = L * H * D;
      ref.set(ropeReference(q.subarray(b * n, (b + 1) * n), { B: 1, L, H, D }, table, R, { weight: roundTo(w, 'bf16'), eps: 1e-6, unitOffset: true }), b * n);
    }
    expect(relError(await rt.read(y), ref)).toBeLessThan(1e-5);
  });
  it('scatters a token range into rows of a larger buffer and leaves the rest alone', async () => {
    const B = 2, L = 6, H = 2, D = 16, T = 10;
    const x = randn(B * L * H * D, 9);
    const out = rt.upload(new Float32Array(B * T * H * D).fill(7), [B, T, H, D]);
    applyRope(rt, rt.upload(x, [B, L, H, D]), { out, outToken: 3, firstToken: 2, count: 4 });
    const got = await rt.read(out);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        for (let j = 0; j < H * D; j++) {
          const want = t >= 3 && t < 7 ? x[(b * L + (t - 3 + 2)) * H * D + j] : 7;
          expect(got[(b * T + t) * H * D + j]).toBe(want);
        }
      }
    }
  });
  it('rejects a table too short for the positions', () => {
    const x = rt.upload(randn(2 * 16, 1), [1, 2, 1, 16]);
    const table = rt.upload(ropeTable({ theta: 1e4, rotaryDim: 16 }, 0, 4), [4, 16]);
    expect(() => applyRope(rt, x, { table, position: 3 })).toThrow(/exceed the table/);
  });
});
