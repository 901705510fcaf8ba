import { describe, expect, it } from 'vitest';
import { getTestRuntime, randn, relError } from '@statespace/core/testing';
import { ssdChunkCumsum, ssdChunkCumsumReference } from './ssd-chunk-cumsum.js';
import { ssdChunkState, ssdChunkStateReference } from './ssd-chunk-state.js';
import { ssdStatePassing, ssdStatePassingReference } from './ssd-state-passing.js';
import { ssdBmm, ssdBmmReference } from './ssd-bmm.js';
import { ssdChunkScan, ssdChunkScanReference } from './ssd-chunk-scan.js';
import { ssdChunked, ssdQuadraticReference, ssdRecurrentReference } from './ssd.js';
import { ssdDecodeStep } from './ssd-decode.js';
import type { SsdShape } from './ssd-shape.js';
import { randomSsdProblem, sliceTokens } from './test-utils.js';

const rt = await getTestRuntime();

function upload(shape: SsdShape, p: ReturnType<typeof randomSsdProblem>) {
  const { batch: b, seqlen: L, heads: H, headDim: P, dState: N, groups: G } = shape;
  return {
    x: rt.upload(p.x, [b, L, H, P]),
    dt: rt.upload(p.dt, [b, L, H]),
    B: rt.upload(p.B, [b, L, G, N]),
    C: rt.upload(p.C, [b, L, G, N]),
    aLog: rt.upload(p.aLog, [H]),
    dtBias: rt.upload(p.dtBias, [H]),
    D: rt.upload(p.D, [H]),
  };
}

describe('SSD steps agree with their CPU references', () => {
  const shapes: SsdShape[] = [
    { batch: 2, seqlen: 37, heads: 4, headDim: 5, dState: 7, groups: 2, chunkSize: 16 },
    { batch: 1, seqlen: 131, heads: 2, headDim: 70, dState: 67, groups: 1, chunkSize: 64 },
    { batch: 1, seqlen: 1, heads: 3, headDim: 4, dState: 3, groups: 3, chunkSize: 16 },
  ];
  for (const shape of shapes) {
    const label = `b=${shape.batch} L=${shape.seqlen} H=${shape.heads} P=${shape.headDim} N=${shape.dState} G=${shape.groups} Q=${shape.chunkSize}`;
    it(label, async () => {
      const p = randomSsdProblem(shape, 11 + shape.seqlen, { initialState: true });
      const t = upload(shape, p);
      const attrs = { dtLimit: [0.05, 2] as const };
      const { dt, dACumsum } = ssdChunkCumsum(rt, t.dt, t.aLog, t.dtBias, shape, attrs);
      const ref1 = ssdChunkCumsumReference(p.dt, p.A, p.dtBias, shape, attrs);
      const dtG = await rt.read(dt);
      const csG = await rt.read(dACumsum);
      expect(relError(dtG, ref1.dt)).toBeLessThan(1e-5);
      expect(relError(csG, ref1.dACumsum)).toBeLessThan(1e-5);

      const states = ssdChunkState(rt, t.x, t.B, dt, dACumsum, shape);
      const statesG = await rt.read(states);
      const ref2 = ssdChunkStateReference(p.x, p.B, ref1.dt, ref1.dACumsum, shape);
      expect(relError(statesG, ref2)).toBeLessThan(1e-5);

      const state = rt.upload(p.initialState!, [shape.batch, shape.heads, shape.headDim, shape.dState]);
      ssdStatePassing(rt, states, dACumsum, state, shape, { hasInitial: true });
      const ref3 = ssdStatePassingReference(ref2, ref1.dACumsum, p.initialState, shape);
      expect(relError(await rt.read(states), ref3.entering)).toBeLessThan(1e-5);
      expect(relError(await rt.read(state), ref3.final)).toBeLessThan(1e-5);

      const cb = ssdBmm(rt, t.C, t.B, shape);
      const ref4 = ssdBmmReference(p.C, p.B, shape);
      // Only the causal part is defined: compare all of it, the padded tail of the last chunk
      // (rows and columns past L, which the reference holds at 0) included.
      const cbG = await rt.read(cb);
      const Q = shape.chunkSize;
      const causal = (i: number) => i % Q <= Math.floor(i / Q) % Q;
      const mask = (arr: ArrayLike<number>) => Array.from(arr, (v, i) => (causal(i) ? v : 0));
      expect(relError(mask(cbG), mask(ref4))).toBeLessThan(1e-5);
      // index ((b·nC + c)·G + g)·Q² + i·Q + j: row i of chunk c is token c·Q + i
      const nC = Math.ceil(shape.seqlen / Q);
      const padded = Array.from(ref4.keys()).filter((i) => causal(i) && (Math.floor(i / (Q * Q * shape.groups)) % nC) * Q + (Math.floor(i / Q) % Q) >= shape.seqlen);
      if (shape.seqlen % Q !== 0) expect(padded.length).toBeGreaterThan(0);
      for (const i of padded) expect(cbG[i], `padded entry ${i}`).toBe(ref4[i]);

      const y = ssdChunkScan(rt, t.x, t.C, dt, dACumsum, cb, states, t.D, shape);
      const ref5 = ssdChunkScanReference(p.x, p.C, ref1.dt, ref1.dACumsum, ref4, ref3.entering, p.D, shape);
      expect(relError(await rt.read(y), ref5)).toBeLessThan(1e-5);
    });
  }

  it('chunk cumsum without softplus or bias passes dt through the clamp', async () => {
    const shape: SsdShape = { batch: 1, seqlen: 20, heads: 2, headDim: 1, dState: 1, groups: 1, chunkSize: 16 };
    const raw = randn(40, 5);
    const aLog = rt.upload(new Float32Array([0, 1]), [2]);
    const { dt } = ssdChunkCumsum(rt, rt.upload(raw, [1, 20, 2]), aLog, undefined, shape, { dtSoftplus: false, dtLimit: [-0.5, 0.5] });
    const ref = ssdChunkCumsumReference(raw, new Float32Array([-1, -Math.E]), undefined, shape, { dtSoftplus: false, dtLimit: [-0.5, 0.5] });
    expect(relError(await rt.read(dt), ref.dt)).toBeLessThan(1e-6);
  });

  it('keeps small step sizes accurate (softplus of Δ + dt_bias near log(1e-3))', async () => {
    const shape: SsdShape = { batch: 1, seqlen: 64, heads: 1, headDim: 1, dState: 1, groups: 1, chunkSize: 64 };
    const raw = randn(64, 6, 2).map((v) => v - 6);
    const { dt } = ssdChunkCumsum(rt, rt.upload(raw, [1, 64, 1]), rt.upload(new Float32Array([0]), [1]), undefined, shape);
    const ref = ssdChunkCumsumReference(raw, new Float32Array([-1]), undefined, shape);
    const got = await rt.read(dt);
    const worst = Math.max(...Array.from(got, (v, i) => Math.abs(v - ref.dt[i]) / ref.dt[i]));
    // log(1 + exp(x)) in f32 loses ~1e-4 here; the series keeps it to a few ulp on SwiftShader (~1e-6) and
    // 3e-6 on the H100, whose exp is less exact.
    expect(worst).toBeLessThan(1e-5);
  });
});

describe('chunked SSD = quadratic form = recurrence', () => {
  const cases: [number, number, number, number][] = [
    // [chunkSize, seqlen, groups, batch]
    [16, 37, 1, 2],
    [16, 50, 2, 1],
    [16, 33, 4, 2],
    [64, 150, 1, 1],
    [64, 129, 2, 2],
    [64, 70, 4, 1],
    [256, 300, 1, 1],
    [256, 257, 2, 1],
    [256, 100, 4, 2],
  ];
  for (const [Q, L, G, b] of cases) {
    it(`Q=${Q} L=${L} G=${G} batch=${b}`, async () => {
      const shape: SsdShape = { batch: b, seqlen: L, heads: 4, headDim: 6, dState: 9, groups: G, chunkSize: Q };
      const p = randomSsdProblem(shape, 100 * Q + L + G);
      const t = upload(shape, p);
      const { y, state } = ssdChunked(rt, { ...t }, shape);
      const quad = ssdQuadraticReference(p, shape);
      const rec = ssdRecurrentReference(p, shape);
      const yG = await rt.read(y);
      expect(relError(quad, rec.y)).toBeLessThan(1e-6);
      expect(relError(yG, quad)).toBeLessThan(1e-4);
      expect(relError(yG, rec.y)).toBeLessThan(1e-4);
      expect(relError(await rt.read(state), rec.state)).toBeLessThan(1e-4);
    });
  }

  it('continues from an initial state, with a dt limit, and the state is updated in place', async () => {
    const shape: SsdShape = { batch: 2, seqlen: 45, heads: 4, headDim: 8, dState: 16, groups: 2, chunkSize: 16 };
    const p = randomSsdProblem(shape, 7, { initialState: true });
    const t = upload(shape, p);
    const attrs = { dtLimit: [0.01, 0.3] as const };
    const st = rt.upload(p.initialState!, [2, 4, 8, 16]);
    const { y, state } = ssdChunked(rt, { ...t, state: st }, shape, attrs);
    expect(state).toBe(st);
    const rec = ssdRecurrentReference(p, shape, attrs);
    const quad = ssdQuadraticReference(p, shape, attrs);
    const yG = await rt.read(y);
    expect(relError(yG, rec.y)).toBeLessThan(1e-4);
    expect(relError(yG, quad)).toBeLessThan(1e-4);
    expect(relError(await rt.read(st), rec.state)).toBeLessThan(1e-4);
  });

  it('head_dim and d_state of 256', async () => {
    const shape: SsdShape = { batch: 1, seqlen: 21, heads: 2, headDim: 256, dState: 256, groups: 1, chunkSize: 16 };
    const p = randomSsdProblem(shape, 3, { initialState: true });
    const t = upload(shape, p);
    const st = rt.upload(p.initialState!, [1, 2, 256, 256]);
    const { y } = ssdChunked(rt, { ...t, state: st }, shape);
    const rec = ssdRecurrentReference(p, shape);
    expect(relError(await rt.read(y), rec.y)).toBeLessThan(1e-4);
    expect(relError(await rt.read(st), rec.state)).toBeLessThan(1e-4);
  });

  it('results do not depend on the chunk size beyond rounding', async () => {
    const base: SsdShape = { batch: 1, seqlen: 200, heads: 2, headDim: 8, dState: 8, groups: 1, chunkSize: 16 };
    const p = randomSsdProblem(base, 21);
    const outs: Float32Array[] = [];
    for (const Q of [16, 64, 256]) {
      const shape = { ...base, chunkSize: Q };
      const { y } = ssdChunked(rt, upload(shape, p), shape);
      outs.push((await rt.read(y)) as Float32Array);
    }
    for (const o of outs.slice(1)) expect(relError(o, outs[0])).toBeLessThan(2e-6 * 50);
  });

  it('reads x, B, C and dt from strided views of shared buffers', async () => {
    const shape: SsdShape = { batch: 2, seqlen: 19, heads: 4, headDim: 3, dState: 5, groups: 2, chunkSize: 16 };
    const { batch: b, seqlen: L, heads: H, headDim: P, dState: N, groups: G } = shape;
    const p = randomSsdProblem(shape, 9);
    const width = H * P + 2 * G * N;
    const xbc = new Float32Array(b * L * width);
    const dtw = new Float32Array(b * L * (H + 3));
    for (let r = 0; r < b * L; r++) {
      xbc.set(p.x.subarray(r * H * P, (r + 1) * H * P), r * width);
      xbc.set(p.B.subarray(r * G * N, (r + 1) * G * N), r * width + H * P);
      xbc.set(p.C.subarray(r * G * N, (r + 1) * G * N), r * width + H * P + G * N);
      dtw.set(p.dt.subarray(r * H, (r + 1) * H), r * (H + 3) + 3);
    }
    const xbcT = rt.upload(xbc, [b, L, width]);
    const dtT = rt.upload(dtw, [b, L, H + 3]);
    const t = upload(shape, p);
    const { y } = ssdChunked(
      rt,
      {
        x: { tensor: xbcT, offset: 0, stride: width },
        B: { tensor: xbcT, offset: H * P, stride: width },
        C: { tensor: xbcT, offset: H * P + G * N, stride: width },
        dt: { tensor: dtT, offset: 3, stride: H + 3 },
        aLog: t.aLog,
        dtBias: t.dtBias,
        D: t.D,
      },
      shape,
    );
    expect(relError(await rt.read(y), ssdRecurrentReference(p, shape).y)).toBeLessThan(1e-4);
  });

  it('rejects bad shapes with the input named', () => {
    const shape: SsdShape = { batch: 1, seqlen: 8, heads: 4, headDim: 2, dState: 3, groups: 2, chunkSize: 16 };
    const p = randomSsdProblem(shape, 1);
    const t = upload(shape, p);
    expect(() => ssdChunked(rt, { ...t, B: rt.upload(randn(8 * 5, 1), [1, 8, 5]) }, shape)).toThrow(/ssdChunkState: B has shape \[1,8,5\], expected \[batch=1, seqlen=8, groups=2, dState=3\]/);
    expect(() => ssdChunked(rt, t, { ...shape, chunkSize: 512 })).toThrow(/chunkSize=512/);
    expect(() => ssdChunked(rt, t, { ...shape, groups: 3 })).toThrow(/multiple of groups/);
  });
});

describe('decode step', () => {
  // d_state 40: the eager kernel (N/4 = 10 words over 16 lanes, 16 rows of head_dim 12: one partial block);
  // d_state 42 (not whole 16-byte words): the general lanes kernel; 8: 2 lanes, 128 rows
  for (const [G, b, simple, dState] of [[1, 1, false, 40], [2, 2, false, 40], [4, 1, false, 8], [2, 1, false, 42], [2, 2, true, 40], [4, 1, true, 40]] as [number, number, boolean, number][]) {
    it(`token-by-token decode matches the chunked prefill (G=${G}, batch=${b}, d_state ${dState}, ${simple ? 'one thread per row' : dState % 4 ? 'lanes + reduction' : 'eager lanes'})`, async () => {
      const shape: SsdShape = { batch: b, seqlen: 23, heads: 4, headDim: 12, dState, groups: G, chunkSize: 16 };
      const { seqlen: L, heads: H, headDim: P, dState: N } = shape;
      const p = randomSsdProblem(shape, 31 + G, { initialState: true });
      const t = upload(shape, p);
      const attrs = { dtLimit: [0, 1.5] as const };
      const chunkState = rt.upload(p.initialState!, [b, H, P, N]);
      const { y: yChunk } = ssdChunked(rt, { ...t, state: chunkState }, shape, attrs);
      const stepState = rt.upload(p.initialState!, [b, H, P, N]);
      const ys: Float32Array[] = [];
      for (let l = 0; l < L; l++) {
        const y = ssdDecodeStep(
          rt,
          {
            x: rt.upload(sliceTokens(p.x, b, L, H * P, l, l + 1), [b, H, P]),
            dt: rt.upload(sliceTokens(p.dt, b, L, H, l, l + 1), [b, H]),
            B: rt.upload(sliceTokens(p.B, b, L, G * N, l, l + 1), [b, G, N]),
            C: rt.upload(sliceTokens(p.C, b, L, G * N, l, l + 1), [b, G, N]),
            aLog: t.aLog,
            dtBias: t.dtBias,
            D: t.D,
            state: stepState,
          },
          shape,
          { ...attrs, simple },
        );
        ys.push((await rt.read(y)) as Float32Array);
      }
      // Reassemble (L, b, H, P) steps into (b, L, H, P).
      const yStep = new Float32Array(b * L * H * P);
      for (let l = 0; l < L; l++) for (let bi = 0; bi < b; bi++) yStep.set(ys[l].subarray(bi * H * P, (bi + 1) * H * P), (bi * L + l) * H * P);
      const rec = ssdRecurrentReference(p, shape, attrs);
      const quad = ssdQuadraticReference(p, shape, attrs);
      expect(relError(yStep, rec.y)).toBeLessThan(1e-4);
      expect(relError(yStep, quad)).toBeLessThan(1e-4);
      expect(relError(await rt.read(yChunk), yStep)).toBeLessThan(1e-4);
      expect(relError(await rt.read(stepState), rec.state)).toBeLessThan(1e-4);
      expect(relError(await rt.read(chunkState), await rt.read(stepState))).toBeLessThan(1e-4);
    });
  }
});
