import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { roundTo } from '@statespace/core';
import { getTestRuntime, randn } from '@statespace/core/testing';
import { type FloatDType, type LoadProgress, gpuDType, loadWeights, uploadTensor } from './load-weights.js';
import { openSafetensors } from './safetensors.js';
import { bufferSource } from './sources.js';
import { FIXTURES, firstDifference, independentParse, serveFiles } from './test-helpers.js';
import { type TensorToWrite, writeSafetensors } from './write-safetensors.js';

const rt = await getTestRuntime();

const SIZES = [1, 7, 37, 1001];
const FILE_DTYPES = ['F32', 'F16', 'BF16'] as const;
const OWN: Record<(typeof FILE_DTYPES)[number], FloatDType> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };

/** One file with every size in every float dtype (values scaled to stay inside f16's range). */
async function floatFile() {
  const tensors: Record<string, TensorToWrite> = {};
  const values = new Map<string, Float32Array>();
  for (const dtype of FILE_DTYPES) {
    for (const n of SIZES) {
      const v = randn(n, n + dtype.length, 100);
      // Includes a value that needs rounding in every narrower type and one tiny subnormal-in-f16 value.
      v[0] = 1 + 2 ** -12;
      if (n > 1) v[1] = 3e-7;
      tensors[`${dtype}.${n}`] = { dtype, shape: n === 1001 ? [7, 11, 13] : [n], data: v };
      values.set(`${dtype}.${n}`, roundTo(v, OWN[dtype]));
    }
  }
  tensors['ids'] = { dtype: 'I32', shape: [5], data: new Int32Array([0, -1, 2 ** 31 - 1, -(2 ** 31), 7]) };
  tensors['flags'] = { dtype: 'U8', shape: [2], data: new Uint8Array([1, 0]) };
  return { checkpoint: await openSafetensors(bufferSource(writeSafetensors(tensors), 'floats.safetensors')), values };
}

describe('uploadTensor', () => {
  for (const chunkBytes of [undefined, 16]) {
    it(`every float conversion (q8 too) gives exactly the rounded values${chunkBytes ? ' (streamed in 16-byte chunks; q8 in whole 128-element blocks)' : ''}`, async () => {
      const { checkpoint, values } = await floatFile();
      for (const dtype of FILE_DTYPES) {
        for (const target of ['keep', 'f32', 'f16', 'bf16', 'q8'] as const) {
          for (const n of SIZES) {
            const name = `${dtype}.${n}`;
            const t = await uploadTensor(rt, checkpoint, name, { dtype: target, chunkBytes });
            const gpu = target === 'keep' ? OWN[dtype] : target;
            expect(t.dtype).toBe(gpu);
            expect(t.shape).toEqual((await checkpoint.info(name)).shape);
            const expected = roundTo(values.get(name)!, gpu);
            const got = await rt.readFloat(t);
            expect(firstDifference(got, expected), `${name} -> ${target}`).toBe(-1);
            t.dispose();
          }
        }
      }
    });
  }

  it('I32 tensors upload as i32; U8 and other host-only dtypes are refused by name', async () => {
    const { checkpoint } = await floatFile();
    const ids = await uploadTensor(rt, checkpoint, 'ids', { dtype: 'f16' });
    expect(ids.dtype).toBe('i32');
    expect(await rt.read(ids)).toEqual(new Int32Array([0, -1, 2 ** 31 - 1, -(2 ** 31), 7]));
    await expect(uploadTensor(rt, checkpoint, 'flags')).rejects.toMatchObject({
      code: 'CHECKPOINT_UNSUPPORTED_DTYPE',
      tensor: 'flags',
      file: 'floats.safetensors',
      message: expect.stringMatching(/U8 tensors cannot be uploaded/),
    });
  });

  it('a conversion to f16 that overflows throws naming the tensor, unless allowed', async () => {
    const checkpoint = await openSafetensors(bufferSource(writeSafetensors({ big: { dtype: 'F32', shape: [3], data: new Float32Array([1, 1e6, -7e4]) } }), 'big.safetensors'));
    const live = rt.memory().liveBytes;
    await expect(uploadTensor(rt, checkpoint, 'big', { dtype: 'f16' })).rejects.toMatchObject({
      code: 'CHECKPOINT_CONVERSION_OVERFLOW',
      tensor: 'big',
      message: expect.stringMatching(/big\.safetensors: tensor "big": converting F32 to f16 turned 2 finite value/),
    });
    expect(rt.memory().liveBytes).toBe(live);
    const t = await uploadTensor(rt, checkpoint, 'big', { dtype: 'f16', allowOverflow: true });
    expect(await rt.read(t)).toEqual(new Float32Array([1, Infinity, -Infinity]));
    t.dispose();
  });

  it('an empty tensor uploads as an empty GPU tensor', async () => {
    const checkpoint = await openSafetensors(writeSafetensors({ e: { dtype: 'BF16', shape: [0, 4], data: new Uint16Array(0) } }));
    const t = await uploadTensor(rt, checkpoint, 'e', { dtype: 'f32' });
    expect(t.shape).toEqual([0, 4]);
    expect((await rt.read(t)).length).toBe(0);
    t.dispose();
  });

  it('gpuDType applies a per-tensor choice and rejects unknown targets', async () => {
    const { checkpoint } = await floatFile();
    const info = await checkpoint.info('BF16.7');
    expect(gpuDType(info, (i) => (i.name.startsWith('BF16') ? 'f32' : 'keep'))).toBe('f32');
    expect(() => gpuDType(info, 'f64' as FloatDType)).toThrow(/cannot convert BF16 to f64/);
  });
});

describe('loadWeights', () => {
  let server: Awaited<ReturnType<typeof serveFiles>>;
  beforeAll(async () => {
    server = await serveFiles(FIXTURES);
  });
  afterAll(() => server.close());

  it('loads a whole fixture from a URL in a few Range requests, with progress', async () => {
    const expected = independentParse(new Uint8Array(await readFile(join(FIXTURES, 'mamba2', 'model.safetensors'))));
    const checkpoint = await openSafetensors(`${server.url}mamba2/model.safetensors`);
    server.requests.length = 0;
    const events: LoadProgress[] = [];
    const weights = await loadWeights(rt, checkpoint, { onProgress: (p) => events.push({ ...p }) });
    // All 20 tensors are neighbours: one read.
    expect(server.requests.length).toBe(1);
    expect(weights.size).toBe(expected.size);
    for (const [name, want] of expected) {
      const t = weights.get(name)!;
      expect(t.shape).toEqual(want.shape);
      expect(firstDifference(await rt.readFloat(t), want.values), name).toBe(-1);
    }
    const total = [...expected.values()].reduce((n, t) => n + t.values.byteLength, 0);
    expect(events.length).toBe(expected.size);
    expect(events.every((e) => e.bytesTotal === total && e.tensorsTotal === expected.size)).toBe(true);
    expect(events.map((e) => e.tensorsDone)).toEqual(events.map((_, i) => i + 1));
    for (let i = 1; i < events.length; i++) expect(events[i].bytesDone).toBeGreaterThan(events[i - 1].bytesDone);
    expect(events.at(-1)!.bytesDone).toBe(total);
    for (const t of weights.values()) t.dispose();
  });

  it('streams large tensors in chunks (progress per chunk) and converts with a per-tensor choice', async () => {
    const checkpoint = await openSafetensors(join(FIXTURES, 'mamba2', 'model.safetensors'));
    const events: LoadProgress[] = [];
    const names = ['backbone.embeddings.weight', 'backbone.layers.0.mixer.A_log', 'backbone.norm_f.weight'];
    const weights = await loadWeights(rt, checkpoint, {
      names,
      chunkBytes: 4096,
      dtype: (info) => (info.name.endsWith('A_log') ? 'keep' : 'bf16'),
      onProgress: (p) => events.push({ ...p }),
    });
    expect([...weights.keys()].sort()).toEqual([...names].sort());
    expect(weights.get('backbone.layers.0.mixer.A_log')!.dtype).toBe('f32');
    expect(weights.get('backbone.embeddings.weight')!.dtype).toBe('bf16');
    for (const name of names) {
      const want = roundTo(await checkpoint.readFloat32(name), weights.get(name)!.dtype);
      expect(firstDifference(await rt.readFloat(weights.get(name)!), want), name).toBe(-1);
    }
    // The 81,920-byte embedding in 4 KiB chunks: 20 chunk events, the last of which also ends the tensor.
    const embedding = events.filter((e) => e.tensor === 'backbone.embeddings.weight');
    expect(embedding.length).toBe(20);
    expect(embedding.at(-1)!.tensorsDone).toBe(1);
    expect(events.at(-1)).toMatchObject({ bytesDone: 81920 + 32 + 256, bytesTotal: 81920 + 32 + 256, tensorsDone: 3, tensorsTotal: 3 });
    for (const t of weights.values()) t.dispose();
    await checkpoint.close();
  });

  it('refuses host-only dtypes before uploading anything', async () => {
    const { checkpoint } = await floatFile();
    const live = rt.memory().liveBytes;
    await expect(loadWeights(rt, checkpoint)).rejects.toMatchObject({ code: 'CHECKPOINT_UNSUPPORTED_DTYPE', tensor: 'flags' });
    expect(rt.memory().liveBytes).toBe(live);
    const weights = await loadWeights(rt, checkpoint, { names: (n) => n !== 'flags' });
    expect(weights.size).toBe(FILE_DTYPES.length * SIZES.length + 1);
    for (const t of weights.values()) t.dispose();
  });

  it('disposes what it uploaded when a later tensor fails', async () => {
    const bytes = writeSafetensors({
      a: { dtype: 'F32', shape: [100], data: randn(100, 1) },
      b: { dtype: 'F32', shape: [2], data: new Float32Array([1, 1e9]) },
    });
    const checkpoint = await openSafetensors(bytes);
    const live = rt.memory().liveBytes;
    await expect(loadWeights(rt, checkpoint, { dtype: 'f16' })).rejects.toMatchObject({ code: 'CHECKPOINT_CONVERSION_OVERFLOW', tensor: 'b' });
    expect(rt.memory().liveBytes).toBe(live);
  });
});
