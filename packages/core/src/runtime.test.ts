import { describe, expect, it } from 'vitest';
import { bf16BitsToF32, f16BitsToF32, f16ToF32, f32To16, f32ToBf16Bits, f32ToF16Bits, storageBytes } from './dtype.js';
import { StatespaceError } from './errors.js';
import { createUnaryKernel } from './ops/elementwise.js';
import { matmul } from './ops/matmul.js';
import { linearDispatch, packUniforms, uniformByteSize, wgslBindings, wgslCompileSizes } from './kernel.js';
import { getTestRuntime, randn } from './testing.js';
import { requestDevice } from './device.js';

const rt = await getTestRuntime();

describe('dtype conversions', () => {
  it('f16 round trips exactly representable values and rounds to nearest even', () => {
    for (const v of [0, -0, 1, -2.5, 65504, 6.103515625e-5, 5.960464477539063e-8]) expect(f16BitsToF32(f32ToF16Bits(v))).toBe(v);
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie -> even
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(f16BitsToF32(f32ToF16Bits(70000))).toBe(Infinity);
    expect(Number.isNaN(f16BitsToF32(f32ToF16Bits(NaN)))).toBe(true);
  });
  it('bf16 keeps the top 16 bits with rounding', () => {
    expect(bf16BitsToF32(f32ToBf16Bits(1))).toBe(1);
    expect(bf16BitsToF32(f32ToBf16Bits(3.140625))).toBe(3.140625);
    const x = randn(1000, 1);
    const back = f16ToF32(f32To16(x, 'bf16'), 'bf16');
    for (let i = 0; i < x.length; i++) expect(Math.abs(back[i] - x[i])).toBeLessThanOrEqual(Math.abs(x[i]) * 2 ** -8);
  });
  it('storage rounds 16-bit tensors up to whole words', () => {
    expect(storageBytes('f16', 3)).toBe(8);
    expect(storageBytes('f32', 3)).toBe(12);
  });
});

describe('kernel descriptors', () => {
  it('are pure: same shapes give the same cache key, sizes live in uniforms', () => {
    const a = createUnaryKernel(100, 'silu');
    const b = createUnaryKernel(100_000, 'silu');
    expect(a.cacheKey).toBe(b.cacheKey);
    expect(a.wgsl).toBe(b.wgsl);
    expect(a.uniforms.n).toBe(100);
    expect(b.dispatch[0]).toBe(Math.ceil(100_000 / 256));
  });
  it('declare uniforms and bindings in WGSL in binding order', () => {
    const wgsl = wgslBindings({ n: 'u32', eps: 'f32' }, [
      { name: 'x', type: 'f32', access: 'read' },
      { name: 'y', type: 'f32', access: 'read_write' },
    ]);
    expect(wgsl).toContain('n: u32');
    expect(wgsl).toContain('@group(0) @binding(1) var<storage, read> x: array<f32>;');
    expect(wgsl).toContain('@group(0) @binding(2) var<storage, read_write> y: array<f32>;');
    const view = new DataView(new ArrayBuffer(uniformByteSize({ n: 'u32', eps: 'f32' })));
    packUniforms({ n: 'u32', eps: 'f32' }, { n: 7, eps: 0.5 }, view, 0);
    expect(view.getUint32(0, true)).toBe(7);
    expect(view.getFloat32(4, true)).toBe(0.5);
  });
  it('wgslCompileSizes turns the named uniform fields into literals and leaves the rest', () => {
    const src = 'let a = u.D * u.DD + u.N; let b = uu.D; let c = u.D_2;';
    expect(wgslCompileSizes(src, { D: 768, N: 16 })).toBe('let a = 768u * u.DD + 16u; let b = uu.D; let c = u.D_2;');
    expect(() => wgslCompileSizes(src, { D: -1 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => wgslCompileSizes(src, { D: 1.5 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
  it('linearDispatch splits large counts over two dimensions', () => {
    expect(linearDispatch(10)).toEqual([10, 1, 1]);
    const [x, y] = linearDispatch(200_000);
    expect(x).toBeLessThanOrEqual(65535);
    expect(x * y).toBeGreaterThanOrEqual(200_000);
  });
});

describe('Runtime', () => {
  it('runs on a real adapter and names it', () => {
    expect(rt.adapterName.length).toBeGreaterThan(0);
  });
  it('caches pipelines by cache key, not by size', async () => {
    const before = rt.pipelineCount;
    for (const n of [3, 300, 3000]) matmul(rt, rt.upload(randn(n * 8, n), [n, 8]), rt.upload(randn(8 * 5, 1), [5, 8]), { gemv: false });
    await rt.sync();
    expect(rt.pipelineCount - before).toBeLessThanOrEqual(1);
  });
  it('batches many dispatches into one submit', async () => {
    const [every, first] = [rt.submitEvery, rt.submitFirst];
    rt.submitEvery = 0; // one submit per flush (GPUs default to a submit every 64 dispatches)
    rt.submitFirst = 0; // and no ramp after the GPU ran dry (GPUs default to 8, 16, 32: the next test)
    await rt.sync();
    const submits = rt.submitCount;
    const x = rt.upload(randn(64, 2), [64]);
    const a = rt.empty([64]);
    const b = rt.empty([64]);
    await rt.sync();
    const submits2 = rt.submitCount;
    const { unary } = await import('./ops/elementwise.js');
    unary(rt, x, 'neg', { out: a });
    for (let i = 0; i < 199; i++) unary(rt, i % 2 ? b : a, 'neg', { out: i % 2 ? a : b });
    const out = await rt.read(b);
    expect(rt.submitCount - submits2).toBe(1);
    expect(submits2).toBeGreaterThanOrEqual(submits);
    expect(Array.from(out)).toEqual(Array.from(await rt.read(x)));
    rt.submitEvery = 64;
    const s3 = rt.submitCount;
    for (let i = 0; i < 200; i++) unary(rt, i % 2 ? b : a, 'neg', { out: i % 2 ? a : b });
    await rt.sync();
    expect(rt.submitCount - s3).toBe(4); // 64, 128, 192, then the rest at sync
    rt.submitEvery = every;
    rt.submitFirst = first;
  });
  it('ramps the submits up after the GPU ran dry: 8, 16, 32, then every 64 dispatches', async () => {
    const { unary } = await import('./ops/elementwise.js');
    const [every, first] = [rt.submitEvery, rt.submitFirst];
    const x = rt.upload(randn(64, 4), [64]);
    const a = rt.empty([64]);
    const run = (n: number) => {
      for (let i = 0; i < n; i++) unary(rt, x, 'neg', { out: a });
    };
    try {
      rt.submitEvery = 64;
      rt.submitFirst = 8;
      await rt.sync(); // drained: the next submits ramp
      let s = rt.submitCount;
      run(200);
      expect(rt.submitCount - s).toBe(5); // after 8, 24, 56, 120, 184
      await rt.sync();
      expect(rt.submitCount - s).toBe(6); // the last 16 at sync
      // A read that waited for the last submit drained the queue too.
      run(100); // 8, 24, 56; 44 pending
      await rt.read(a);
      s = rt.submitCount;
      run(8);
      expect(rt.submitCount - s).toBe(1);
      // A read overtaken by a later submit did not: the GPU still had work.
      const pending = rt.read(a); // submits (the ramp at 32)
      run(8);
      rt.flush(); // the ramp reaches 64
      await pending;
      s = rt.submitCount;
      run(63);
      expect(rt.submitCount - s).toBe(0);
      run(1);
      expect(rt.submitCount - s).toBe(1);
      // submitFirst 0: no ramp.
      rt.submitFirst = 0;
      await rt.sync();
      s = rt.submitCount;
      run(63);
      expect(rt.submitCount - s).toBe(0);
      await rt.sync();
    } finally {
      rt.submitEvery = every;
      rt.submitFirst = first;
    }
    expect(Array.from(await rt.read(a))).toEqual(Array.from(await rt.read(x)).map((v) => -v));
  });
  it('times compute passes on the GPU: one timestamp pair per pass, however the passes were split', async () => {
    const { unary } = await import('./ops/elementwise.js');
    const x = rt.upload(randn(4096, 3), [4096]);
    const a = rt.empty([4096]);
    if (!rt.info.features.timestampQuery) {
      expect(() => rt.startPassTiming()).toThrow(expect.objectContaining({ code: 'UNSUPPORTED' }));
      return;
    }
    const every = rt.submitEvery;
    rt.submitEvery = 0;
    for (const bad of [0, 2049, 1.5]) {
      expect(() => rt.startPassTiming(bad)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
      expect(() => rt.startProfiling(bad)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    }
    rt.startPassTiming(4); // a capacity of 4 passes: the fifth pass forces a flush
    expect(() => rt.startPassTiming()).toThrow(expect.objectContaining({ code: 'INVALID_STATE' }));
    for (let p = 0; p < 6; p++) {
      for (let i = 0; i < 3; i++) unary(rt, x, 'neg', { out: a }); // three dispatches in one pass
      rt.copy(x, a); // a copy ends the pass
    }
    const t = await rt.stopPassTiming();
    rt.submitEvery = every;
    expect(t.passes).toBe(6);
    expect(t.ms).toBeGreaterThan(0);
    expect(t.ms).toBeLessThan(60_000);
    expect(await rt.stopPassTiming()).toEqual({ ms: 0, passes: 0 });
    expect(Array.from(await rt.read(a))).toEqual(Array.from(await rt.read(x)));
  });
  it('captures a step and replays it: same results, same buffers, integer uniforms stepped per replay', async () => {
    const { unary, binary } = await import('./ops/elementwise.js');
    const { embedding } = await import('./ops/embedding.js');
    const table = rt.upload(randn(10 * 6, 9), [10, 6]);
    // A "step" whose embedding row moves by one every token: ids are uploaded each time in the
    // eager run; in the captured run the row index lives in a uniform (here via a counter tensor
    // written before the capture, so the capture itself only records kernels).
    const x = rt.upload(randn(6, 8), [1, 6]);
    const step = (t: number) => {
      const y = unary(rt, x, 'scale', { alpha: t + 1 });
      const z = binary(rt, y, x, 'add');
      y.dispose();
      const w = unary(rt, z, 'silu');
      z.dispose();
      return w;
    };
    rt.beginCapture();
    const outA = step(0);
    const planA = rt.endCapture(outA);
    expect(planA.tainted).toBeNull();
    const a = await rt.read(outA);
    rt.beginCapture({ continues: planA });
    const outB = step(0);
    const planB = rt.endCapture(outB);
    expect(planB.continueFrom(planA)).toBeNull();
    planA.dispose();
    expect(planB.hasDynamicUniforms).toBe(false); // alpha is a float that did not move
    expect(Array.from(await rt.read(outB))).toEqual(Array.from(a));
    planB.advance();
    const d0 = rt.dispatchCount;
    rt.replay(planB);
    expect(rt.dispatchCount - d0).toBe(planB.size);
    expect(Array.from(await rt.read(planB.output!))).toEqual(Array.from(a));
    // A float uniform that changes between two captures refuses the plan.
    rt.beginCapture({ continues: planB });
    const outC = step(1);
    const planC = rt.endCapture(outC);
    expect(planC.continueFrom(planB)).toMatch(/float uniform/);
    planB.dispose();
    planC.dispose();
    // A write inside a capture taints it, and what was captured before the write still runs first.
    rt.beginCapture();
    const before = unary(rt, x, 'neg');
    const t = rt.upload(new Float32Array(6).fill(2), [1, 6]);
    const after = binary(rt, before, t, 'mul');
    const planD = rt.endCapture(after);
    expect(planD.tainted).toMatch(/written during the capture/);
    const xs = await rt.read(x);
    expect(Array.from(await rt.read(after))).toEqual(Array.from(xs, (v) => Math.fround(-v * 2)));
    planD.dispose();
    table.dispose();
    void embedding;
  });
  it('pools buffers and tracks live and peak bytes', async () => {
    const m0 = rt.memory();
    const t = rt.empty([1024], 'f32');
    const m1 = rt.memory();
    expect(m1.liveBytes - m0.liveBytes).toBeGreaterThanOrEqual(4096);
    t.dispose();
    expect(rt.memory().liveBytes).toBe(m0.liveBytes);
    const u = rt.empty([1000], 'f32');
    expect(rt.memory().pooledBytes).toBeLessThan(m1.pooledBytes + 4096);
    u.dispose();
  });
  it('rejects a wrong number of buffers and reading a disposed tensor with typed errors', async () => {
    const k = createUnaryKernel(4, 'silu');
    expect(() => rt.run(k, [rt.empty([4])])).toThrow(/binds 2/);
    const t = rt.upload(new Float32Array(4), [4]);
    t.dispose();
    await expect(rt.read(t)).rejects.toSatisfy((e: unknown) => StatespaceError.is(e) && (e as StatespaceError).code === 'DESTROYED');
  });
  it('surfaces WGSL compile errors as GPU_VALIDATION errors naming the problem', async () => {
    const bad = { ...createUnaryKernel(4, 'silu'), name: 'broken', cacheKey: 'broken', wgsl: 'this is not wgsl' };
    rt.run(bad, [rt.zeros([4]), rt.empty([4])]);
    await expect(rt.sync()).rejects.toThrow(/WebGPU reported an error/);
  });
});

describe('requestDevice', () => {
  it('fails with NO_ADAPTER and says what to install when the GPU offers none', async () => {
    const fakeGpu = { requestAdapter: async () => null } as unknown as GPU;
    await expect(requestDevice({ gpu: fakeGpu })).rejects.toSatisfy((e: unknown) => StatespaceError.is(e) && (e as StatespaceError).code === 'NO_ADAPTER' && /install/.test((e as Error).message));
  });
});
