/**
 * The Mamba-3 kernels against the f64 CPU reference on awkward sizes (odd heads, P not a multiple of the 16 rows of
 * a workgroup, d_state not a multiple of the 8 lanes, lengths not a multiple of the chunk or of the tokens per
 * dispatch), from random non-zero states, with every output buffer poisoned (NaN) first: the scan's output and
 * state (every P-tile's copy), the decode step (L = 1), and the output norm.
 */
import { type Runtime, StatespaceError } from '@statespace/core';
import { getTestRuntime, randn, randu, relError } from '@statespace/core/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { mamba3OutNorm } from './mamba3-out-norm.js';
import { type Mamba3HostParams, type Mamba3HostState, mamba3OutNormReference, mamba3ScanReference, packMamba3State, unpackMamba3State } from './mamba3-reference.js';
import { type Mamba3Params, createMamba3ScanKernel, mamba3Scan, mamba3ScanTiling, mamba3StateStride, mamba3Tiles } from './mamba3-scan.js';
import { type Mamba3Config, mamba3Dims } from './mamba3-shape.js';

let rt: Runtime;
beforeAll(async () => {
  rt = await getTestRuntime();
});

interface Case {
  name: string;
  config: Mamba3Config;
  B: number;
  L: number;
  tokensPerDispatch?: number;
}

const base = { hiddenSize: 8, aFloor: 0.3 };
const cases: Case[] = [
  // 2 P-tiles (the second 4 rows of 16), N 12 = 1.5 lanes' worth, 3 angles, 37 tokens in dispatches of 16, 16, 5
  { name: 'SISO rope 0.5, prefill', config: { ...base, numHeads: 3, headDim: 20, stateSize: 12, nGroups: 1, ropeFraction: 0.5, mimo: false, outProjNorm: false }, B: 2, L: 37, tokensPerDispatch: 16 },
  // the decode step, per-rank output (the output norm's input), 5 heads of 7, rope 1 (all 8 pairs rotate)
  { name: 'SISO rope 1, decode step, per rank', config: { ...base, numHeads: 5, headDim: 7, stateSize: 16, nGroups: 1, ropeFraction: 1, mimo: false, outProjNorm: true }, B: 2, L: 1 },
  // MIMO rank 3, 2 groups, halves rotation with every pair rotating (N 10, 5 angles), 19 tokens (chunk tail)
  { name: 'MIMO rank 3, prefill', config: { ...base, numHeads: 4, headDim: 10, stateSize: 10, nGroups: 2, ropeFraction: 1, mimo: true, mimoRank: 3, outProjNorm: false }, B: 1, L: 19 },
  // MIMO rank 2 decode step with the output norm's per-rank output; halves rotation of 2 of 6 pairs (N 12, 3 angles)
  { name: 'MIMO rank 2, decode step, per rank', config: { ...base, numHeads: 3, headDim: 18, stateSize: 12, nGroups: 3, ropeFraction: 0.5, mimo: true, mimoRank: 2, outProjNorm: true }, B: 2, L: 1 },
  // MIMO rank 4 at N 32 (Q shrinks to fit workgroup memory), 23 tokens in dispatches of 9, 9, 5
  { name: 'MIMO rank 4, N 32, prefill', config: { ...base, numHeads: 3, headDim: 16, stateSize: 32, nGroups: 1, ropeFraction: 0.5, mimo: true, mimoRank: 4, outProjNorm: false }, B: 1, L: 23, tokensPerDispatch: 9 },
];

function hostParams(c: Mamba3Config, seed: number): Mamba3HostParams {
  const d = mamba3Dims(c);
  const hrp = d.H * d.rank * d.P;
  return {
    dtBias: randn(d.H, seed, 0.8).map((v) => v - 1),
    bBias: randn(d.H * d.rank * d.N, seed + 1, 0.5).map((v) => v + 1),
    cBias: randn(d.H * d.rank * d.N, seed + 2, 0.5).map((v) => v + 1),
    bNorm: randu(d.N, seed + 3, 0.5, 1.5),
    cNorm: randu(d.N, seed + 4, 0.5, 1.5),
    D: randn(d.H, seed + 5),
    mimoX: c.mimo ? randn(hrp, seed + 6, 0.7) : undefined,
    mimoZ: c.mimo ? randn(hrp, seed + 7) : undefined,
    mimoO: c.mimo ? randn(hrp, seed + 8, 0.7) : undefined,
    norm: c.outProjNorm ? randu(d.I, seed + 9, 0.5, 1.5) : undefined,
    aFloor: c.aFloor,
  };
}

function randomState(c: Mamba3Config, B: number, seed: number): Mamba3HostState {
  const d = mamba3Dims(c);
  return {
    theta: Float64Array.from(randu(B * d.H * d.angles, seed, 0, 2 * Math.PI)),
    ssm: Float64Array.from(randn(B * d.H * d.P * d.N, seed + 1, 0.5)),
    kPrev: Float64Array.from(randn(B * d.H * d.rank * d.N, seed + 2)),
    vPrev: Float64Array.from(randn(B * d.H * d.rank * d.P, seed + 3)),
  };
}

function upload(c: Mamba3Config, p: Mamba3HostParams): Mamba3Params {
  const d = mamba3Dims(c);
  const f = (a: ArrayLike<number>, shape: number[]) => rt.upload(Float32Array.from(a), shape);
  return {
    dtBias: f(p.dtBias, [d.H]),
    bBias: f(p.bBias, [d.H, d.rank, d.N]),
    cBias: f(p.cBias, [d.H, d.rank, d.N]),
    bNorm: f(p.bNorm, [d.N]),
    cNorm: f(p.cNorm, [d.N]),
    D: f(p.D, [d.H]),
    mimoX: p.mimoX && f(p.mimoX, [d.H, d.rank, d.P]),
    mimoZ: p.mimoZ && f(p.mimoZ, [d.H, d.rank, d.P]),
    mimoO: p.mimoO && f(p.mimoO, [d.H, d.rank, d.P]),
    aFloor: p.aFloor,
  };
}

describe('mamba3Scan against the f64 recurrence', () => {
  for (const [i, { name, config, B, L, tokensPerDispatch }] of cases.entries()) {
    it(`${name}: B ${B}, L ${L}, H ${config.numHeads}, P ${config.headDim}, N ${config.stateSize}, G ${config.nGroups}`, async () => {
      const d = mamba3Dims(config);
      const seed = 100 * (i + 1);
      const p = hostParams(config, seed);
      // in_proj outputs of a realistic spread; dd_A below −1 half the time so the A floor bites
      const zx = randn(B * L * d.W, seed + 20);
      const start = randomState(config, B, seed + 30);
      const state = rt.upload(packMamba3State(d, B, start), [B, d.H, mamba3StateStride(d)]);
      const perRank = config.outProjNorm;
      const y = mamba3Scan(rt, rt.upload(zx, [B, L, d.W]), upload(config, p), d, state, { mimo: config.mimo, perRank, tokensPerDispatch });
      const want = mamba3ScanReference(zx, p, d, B, L, { perRank }, start);
      expect(y.shape).toEqual(perRank ? [B, L, d.rank, d.I] : [B, L, d.I]);
      expect(relError(await rt.readFloat(y), want.y)).toBeLessThan(2e-5);
      const tiles = unpackMamba3State(d, B, await rt.readFloat(state));
      expect(tiles.length).toBe(mamba3Tiles(d));
      for (const got of tiles) {
        expect(relError(got.ssm, want.state.ssm)).toBeLessThan(2e-5);
        expect(relError(got.kPrev, want.state.kPrev)).toBeLessThan(2e-5);
        expect(relError(got.vPrev, want.state.vPrev)).toBeLessThan(1e-6);
        expect(relError(got.theta, want.state.theta)).toBeLessThan(1e-5);
      }
    });
  }

  it('prefill then decode steps == one prefill (the carried state is the whole state)', async () => {
    const { config } = cases[2];
    const d = mamba3Dims(config);
    const [B, L] = [1, 11];
    const params = upload(config, hostParams(config, 7));
    const zx = randn(B * L * d.W, 8);
    const whole = rt.zeros([B, d.H, mamba3StateStride(d)]);
    const yAll = await rt.readFloat(mamba3Scan(rt, rt.upload(zx, [B, L, d.W]), params, d, whole, { mimo: true, perRank: false }));
    const parts = rt.zeros([B, d.H, mamba3StateStride(d)]);
    const got: number[] = [];
    const first = 6;
    got.push(...(await rt.readFloat(mamba3Scan(rt, rt.upload(zx.subarray(0, first * d.W), [B, first, d.W]), params, d, parts, { mimo: true, perRank: false }))));
    for (let t = first; t < L; t++) {
      got.push(...(await rt.readFloat(mamba3Scan(rt, rt.upload(zx.subarray(t * d.W, (t + 1) * d.W), [B, 1, d.W]), params, d, parts, { mimo: true, perRank: false }))));
    }
    expect(relError(got, yAll)).toBeLessThan(1e-6);
    expect(relError(await rt.readFloat(parts), await rt.readFloat(whole))).toBeLessThan(1e-6);
  });

  it('Q shrinks with rank·d_state to fit 16 KiB of workgroup memory, and refuses what cannot fit', () => {
    expect(mamba3ScanTiling({ N: 12, rank: 1 }).Q).toBe(16);
    const big = mamba3ScanTiling({ N: 128, rank: 4 });
    expect(big.Q).toBeGreaterThanOrEqual(1);
    expect(big.words).toBeLessThanOrEqual(4096);
    const d = mamba3Dims({ hiddenSize: 8, numHeads: 2, headDim: 4, stateSize: 256, nGroups: 1, ropeFraction: 0.5, aFloor: 0, mimo: true, mimoRank: 8, outProjNorm: false });
    const attempt = () => createMamba3ScanKernel(d, { B: 1, L: 1, t0: 0, nt: 1 }, { aFloor: 0 }, { mimo: true, perRank: false });
    expect(attempt).toThrow(StatespaceError);
    expect(attempt).toThrow(/workgroup memory/);
  });
});

describe('mamba3OutNorm against the reference', () => {
  for (const i of [1, 3]) {
    const { name, config, B } = cases[i];
    it(`${name.replace(', decode step, per rank', '')}: grouped RMS over P, norm before the silu(z·mimo_z) gate, Σ_r mimo_o`, async () => {
      const d = mamba3Dims(config);
      const L = 5;
      const p = hostParams(config, 900 + i);
      const yr = randn(B * L * d.rank * d.I, 901 + i);
      const zx = randn(B * L * d.W, 902 + i);
      const P = upload(config, p);
      const out = mamba3OutNorm(rt, rt.upload(yr, [B, L, d.rank, d.I]), rt.upload(zx, [B, L, d.W]), rt.upload(Float32Array.from(p.norm!), [d.I]), d, config.mimo ? { mimoZ: P.mimoZ!, mimoO: P.mimoO! } : undefined);
      expect(relError(await rt.readFloat(out), mamba3OutNormReference(yr, zx, p, d, B * L))).toBeLessThan(1e-5);
    });
  }
});
