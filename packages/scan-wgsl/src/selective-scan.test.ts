import { describe, expect, it } from 'vitest';
import { roundTo } from '@statespace/core';
import { getTestRuntime, randn, randu, relError } from '@statespace/core/testing';
import { columns } from './columns.js';
import { WGSL_SOFTPLUS, createSelectiveScanKernel, scanSegments, scanTiling, selectiveScan, selectiveScanReference, softplusReference } from './selective-scan.js';

const rt = await getTestRuntime();

interface Case {
  batch: number;
  L: number;
  D: number;
  N: number;
}

function makeInputs({ batch, L, D, N }: Case, seed: number) {
  return {
    x: randn(batch * L * D, seed),
    // dt before bias and softplus; with the bias below Δ lands mostly in [0.001, 0.5]
    dt: randn(batch * L * D, seed + 1, 0.5),
    dtBias: randu(D, seed + 2, -6, -1),
    aLog: Float32Array.from(randu(D * N, seed + 3, -1, 2.5)),
    B: randn(batch * L * N, seed + 4),
    C: randn(batch * L * N, seed + 5),
    D: randn(D, seed + 6),
    z: randn(batch * L * D, seed + 7),
    state: randn(batch * D * N, seed + 8),
  };
}

function upload(c: Case, h: ReturnType<typeof makeInputs>) {
  const { batch, L, D, N } = c;
  return {
    x: rt.upload(h.x, [batch, L, D]),
    dt: rt.upload(h.dt, [batch, L, D]),
    dtBias: rt.upload(h.dtBias, [D]),
    aLog: rt.upload(h.aLog, [D, N]),
    B: rt.upload(h.B, [batch, L, N]),
    C: rt.upload(h.C, [batch, L, N]),
    D: rt.upload(h.D, [D]),
    z: rt.upload(h.z, [batch, L, D]),
    state: rt.upload(h.state, [batch, D, N]),
  };
}

describe('selectiveScan', () => {
  const cases: Case[] = [
    { batch: 1, L: 1, D: 1, N: 1 },
    { batch: 1, L: 33, D: 37, N: 7 },
    { batch: 2, L: 19, D: 130, N: 16 },
    { batch: 1, L: 70, D: 9, N: 17 },
    { batch: 2, L: 6, D: 5, N: 131 },
    { batch: 2, L: 4, D: 3, N: 256 },
  ];
  for (const c of cases) {
    it(`b=${c.batch} L=${c.L} d_inner=${c.D} d_state=${c.N}: y and final state match the sequential loop`, async () => {
      const h = makeInputs(c, c.L * 7 + c.D * 3 + c.N);
      const t = upload(c, h);
      const y = selectiveScan(rt, t);
      const ref = selectiveScanReference(h, { batch: c.batch, seqlen: c.L, dInner: c.D, dState: c.N });
      expect(y.shape).toEqual([c.batch, c.L, c.D]);
      expect(relError(await rt.read(y), ref.y)).toBeLessThan(1e-5);
      expect(relError(await rt.read(t.state), ref.state)).toBeLessThan(1e-5);
    });
  }

  it('splits long sequences over several dispatches with the same result', async () => {
    const c = { batch: 2, L: 45, D: 20, N: 16 };
    const h = makeInputs(c, 99);
    const ref = selectiveScanReference(h, { batch: 2, seqlen: 45, dInner: 20, dState: 16 });
    for (const steps of [1, 7, 16, 1000]) {
      const t = upload(c, h);
      const before = rt.dispatchCount;
      const y = selectiveScan(rt, t, { stepsPerDispatch: steps });
      // two copies pack the separate B and C tensors into one buffer
      expect(rt.dispatchCount - before).toBe(Math.ceil(45 / steps) + 2);
      expect(relError(await rt.read(y), ref.y)).toBeLessThan(1e-5);
      expect(relError(await rt.read(t.state), ref.state)).toBeLessThan(1e-5);
    }
  });

  // The time-parallel scan GPUs run on prompts: a summary pass and a scan pass over Seg segments.
  const segmentCases: (Case & { segs: number; steps?: number })[] = [
    { batch: 1, L: 2, D: 1, N: 1, segs: 2 }, // one step per segment
    { batch: 2, L: 45, D: 20, N: 16, segs: 4 }, // 12, 12, 12, 9 steps
    { batch: 1, L: 70, D: 37, N: 7, segs: 3 }, // segments span several staged chunks (T = 32)
    { batch: 2, L: 41, D: 9, N: 17, segs: 41 }, // S = 2 state entries per thread, G = L
    { batch: 1, L: 13, D: 5, N: 131, segs: 5 }, // 3, 3, 3, 3, 1 steps
    { batch: 2, L: 50, D: 130, N: 16, segs: 6, steps: 17 }, // segmented dispatches chained through the state
  ];
  for (const c of segmentCases) {
    it(`b=${c.batch} L=${c.L} d_inner=${c.D} d_state=${c.N} in ${c.segs} time segments${c.steps ? `, ${c.steps} steps per dispatch` : ''}: y and final state match the sequential loop`, async () => {
      const h = makeInputs(c, c.L * 5 + c.D + c.N + c.segs);
      const t = upload(c, h);
      const before = rt.dispatchCount;
      const y = selectiveScan(rt, t, { segments: c.segs, stepsPerDispatch: c.steps });
      const ref = selectiveScanReference(h, { batch: c.batch, seqlen: c.L, dInner: c.D, dState: c.N });
      // 2 copies pack B and C; then per dispatch a summary pass and a scan pass (or one pass for a 1-step tail)
      const chunks = c.steps ? Array.from({ length: Math.ceil(c.L / c.steps) }, (_, i) => Math.min(c.steps!, c.L - i * c.steps!)) : [c.L];
      expect(rt.dispatchCount - before).toBe(2 + chunks.reduce((a, n) => a + (n >= 2 ? 2 : 1), 0));
      expect(relError(await rt.read(y), ref.y)).toBeLessThan(1e-5);
      expect(relError(await rt.read(t.state), ref.state)).toBeLessThan(1e-5);
    });
  }

  it('segments a scan where its workgroups leave a GPU idle, never without the fast kernels (software adapters)', () => {
    const gpu = { fastKernels: true } as Parameters<typeof scanSegments>[0];
    const soft = { fastKernels: false } as Parameters<typeof scanSegments>[0];
    // mamba-130m: 1536 channels in 192 blocks of 8 (d_state 16)
    expect(scanSegments(gpu, { batch: 1, dInner: 1536, dState: 16, steps: 512 })).toBe(6);
    expect(scanSegments(gpu, { batch: 1, dInner: 1536, dState: 16, steps: 4096 })).toBe(6);
    expect(scanSegments(gpu, { batch: 1, dInner: 1536, dState: 16, steps: 40 })).toBe(1); // too short
    expect(scanSegments(gpu, { batch: 8, dInner: 1536, dState: 16, steps: 512 })).toBe(1); // 1536 workgroups already
    expect(scanSegments(gpu, { batch: 1, dInner: 64, dState: 16, steps: 100000 })).toBe(64);
    expect(scanSegments(soft, { batch: 1, dInner: 1536, dState: 16, steps: 4096 })).toBe(1);
  });

  it('token-by-token decode gives the same outputs and final state as one prefill', async () => {
    const c = { batch: 2, L: 12, D: 23, N: 16 };
    const h = makeInputs(c, 5);
    const full = upload(c, h);
    const yFull = await rt.read(selectiveScan(rt, full));
    const state = rt.upload(h.state, [2, 23, 16]);
    const got = new Float32Array(2 * 12 * 23);
    const row = (a: Float32Array, w: number, t: number) => {
      const out = new Float32Array(2 * w);
      for (let b = 0; b < 2; b++) out.set(a.subarray((b * 12 + t) * w, (b * 12 + t + 1) * w), b * w);
      return out;
    };
    for (let t = 0; t < 12; t++) {
      const y = selectiveScan(rt, {
        x: rt.upload(row(h.x, 23, t), [2, 1, 23]),
        dt: rt.upload(row(h.dt, 23, t), [2, 1, 23]),
        z: rt.upload(row(h.z, 23, t), [2, 1, 23]),
        B: rt.upload(row(h.B, 16, t), [2, 1, 16]),
        C: rt.upload(row(h.C, 16, t), [2, 1, 16]),
        aLog: full.aLog,
        D: full.D,
        dtBias: full.dtBias,
        state,
      });
      const yt = await rt.readFloat(y);
      for (let b = 0; b < 2; b++) got.set(yt.subarray(b * 23, (b + 1) * 23), (b * 12 + t) * 23);
    }
    expect(relError(got, yFull)).toBeLessThan(1e-6);
    expect(relError(await rt.read(state), await rt.read(full.state))).toBeLessThan(1e-6);
  });

  it('reads B, C and z as column slices, in place, without D, bias or gate, and without softplus', async () => {
    const c = { batch: 2, L: 10, D: 14, N: 5 };
    const R = 3;
    const h = makeInputs(c, 17);
    const W = R + 2 * c.N;
    const xdbl = new Float32Array(2 * 10 * W);
    const xz = new Float32Array(2 * 10 * 2 * c.D);
    for (let r = 0; r < 20; r++) {
      for (let n = 0; n < c.N; n++) {
        xdbl[r * W + R + n] = h.B[r * c.N + n];
        xdbl[r * W + R + c.N + n] = h.C[r * c.N + n];
      }
      for (let d = 0; d < c.D; d++) xz[r * 2 * c.D + c.D + d] = h.z[r * c.D + d];
    }
    const xdblT = rt.upload(xdbl, [2, 10, W]);
    const xzT = rt.upload(xz, [2, 10, 2 * c.D]);
    const dims = { batch: 2, seqlen: 10, dInner: c.D, dState: c.N };

    const t = upload(c, h);
    const y = selectiveScan(rt, { ...t, B: columns(xdblT, R, c.N), C: columns(xdblT, R + c.N, c.N), z: columns(xzT, c.D, c.D) }, { inPlace: true });
    expect(y).toBe(t.x);
    const ref = selectiveScanReference(h, dims);
    expect(relError(await rt.read(y), ref.y)).toBeLessThan(1e-5);

    const positive = Float32Array.from(h.dt, (v) => Math.abs(v) * 0.1);
    const t2 = upload(c, h);
    const y2 = selectiveScan(rt, { x: t2.x, dt: rt.upload(positive, [2, 10, c.D]), aLog: t2.aLog, B: t2.B, C: t2.C, state: t2.state }, { dtSoftplus: false });
    const ref2 = selectiveScanReference({ x: h.x, dt: positive, aLog: h.aLog, B: h.B, C: h.C, state: h.state }, dims, { dtSoftplus: false });
    expect(relError(await rt.read(y2), ref2.y)).toBeLessThan(1e-5);
    expect(relError(await rt.read(t2.state), ref2.state)).toBeLessThan(1e-5);
    expect(relError(await rt.read(t2.x), h.x)).toBe(0);
  });

  it('reads A_log, D and dt_bias stored as bf16 and f16', async () => {
    const c = { batch: 1, L: 8, D: 6, N: 16 };
    const h = makeInputs(c, 23);
    const t = upload(c, h);
    const y = selectiveScan(rt, { ...t, aLog: rt.upload(h.aLog, [6, 16], 'bf16'), D: rt.upload(h.D, [6], 'f16'), dtBias: rt.upload(h.dtBias, [6], 'bf16') });
    const ref = selectiveScanReference({ ...h, aLog: roundTo(h.aLog, 'bf16'), D: roundTo(h.D, 'f16'), dtBias: roundTo(h.dtBias, 'bf16') }, { batch: 1, seqlen: 8, dInner: 6, dState: 16 });
    expect(relError(await rt.read(y), ref.y)).toBeLessThan(1e-5);
  });

  it('softplus in WGSL is accurate over the range dt takes', async () => {
    const v = Float32Array.from({ length: 257 }, (_, i) => -30 + (i * 60) / 256);
    const kernel = {
      name: 'softplus_probe',
      cacheKey: '',
      wgsl: `@group(0) @binding(0) var<uniform> u: vec4<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
${WGSL_SOFTPLUS}
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3<u32>) { if (id.x < arrayLength(&x)) { y[id.x] = softplus_acc(x[id.x]); } }`,
      workgroupSize: [64, 1, 1] as const,
      dispatch: [Math.ceil(257 / 64), 1, 1] as const,
      bindings: [
        { name: 'x', type: 'f32', access: 'read' },
        { name: 'y', type: 'f32', access: 'read_write' },
      ] as const,
      uniformLayout: {},
      uniforms: {},
    };
    const y = rt.empty([257]);
    rt.run(kernel, [rt.upload(v, [257]), y]);
    const got = await rt.read(y);
    for (let i = 0; i < v.length; i++) {
      const want = softplusReference(v[i]);
      expect(Math.abs(got[i] - want) / want).toBeLessThan(2e-6);
    }
  });

  it('rejects mismatched shapes naming the input and the expected shape', () => {
    const c = { batch: 2, L: 3, D: 4, N: 5 };
    const t = upload(c, makeInputs(c, 1));
    expect(() => selectiveScan(rt, { ...t, B: rt.zeros([2, 3, 6]) })).toThrow(/B has shape \[2,3,6\], expected \[batch=2, seqlen=3, d_state=5\]/);
    expect(() => selectiveScan(rt, { ...t, state: rt.zeros([2, 4, 4]) })).toThrow(/state has shape \[2,4,4\], expected \[batch=2, d_inner=4, d_state=5\]/);
    expect(() => selectiveScan(rt, { ...t, aLog: rt.zeros([4, 257]) })).toThrow(/d_state 257/);
    for (const segments of [0, 1.5]) expect(() => selectiveScan(rt, t, { segments })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    // a segmented kernel whose segments leave steps out, or leave an empty last segment
    const shape = { batch: 1, seqlen: 10, dInner: 4, dState: 5, bcStride: 10, bOffset: 0, cOffset: 5 };
    expect(() => createSelectiveScanKernel({ ...shape, segments: 2, segmentLength: 4 }, { segmented: 'scan' })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => createSelectiveScanKernel({ ...shape, segments: 3, segmentLength: 5 }, { segmented: 'summary' })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it('tiles every d_state within the workgroup memory budget', () => {
    for (let N = 1; N <= 256; N++) {
      const { P, S, CW, T } = scanTiling(N);
      expect(P * S).toBeGreaterThanOrEqual(N);
      expect(S).toBeLessThanOrEqual(16);
      expect((2 * T * CW + 2 * T * P * S + T * 128) * 4).toBeLessThanOrEqual(16384);
    }
    const a = createSelectiveScanKernel({ batch: 1, seqlen: 5, dInner: 7, dState: 16, bcStride: 32, bOffset: 0, cOffset: 16 });
    const b = createSelectiveScanKernel({ batch: 4, seqlen: 500, dInner: 70, dState: 16, bcStride: 80, bOffset: 48, cOffset: 64 });
    expect(a.cacheKey).toBe(b.cacheKey);
    expect(a.wgsl).toBe(b.wgsl);
  });
});
