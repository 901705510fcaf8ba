import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { f32To16, f16ToF32 } from '@statespace/core';
import { randn } from '@statespace/core/testing';
import { SAFETENSORS_DTYPES, type SafetensorsDType, dtypeByteSize, f8E4M3ToF32, f8E5M2ToF32, toFloat32 } from './dtypes.js';
import { openSafetensors } from './safetensors.js';
import { blobSource, bufferSource, fileSource } from './sources.js';
import { FAMILIES, FIXTURES, firstDifference, independentParse } from './test-helpers.js';
import { type TensorToWrite, writeSafetensors } from './write-safetensors.js';

describe('the hf-tiny fixtures', () => {
  for (const family of FAMILIES) {
    it(`${family}: every tensor's name, shape, dtype and values load from a path, a Blob and bytes`, async () => {
      const path = join(FIXTURES, family, 'model.safetensors');
      const bytes = new Uint8Array(await readFile(path));
      const expected = independentParse(bytes);
      expect(expected.size).toBeGreaterThan(10);
      for (const source of [fileSource(path), blobSource(new Blob([bytes]), 'model.safetensors'), bufferSource(bytes)]) {
        const st = await openSafetensors(source);
        expect(st.metadata).toEqual({ format: 'pt' });
        expect(new Set(st.names())).toEqual(new Set(expected.keys()));
        for (const [name, want] of expected) {
          const info = st.tensor(name);
          expect(info.dtype).toBe(want.dtype);
          expect(info.shape).toEqual(want.shape);
          const t = await st.read(name);
          expect(t.data).toBeInstanceOf(Float32Array);
          expect(firstDifference(t.data, want.values)).toBe(-1);
          expect(firstDifference(await st.readFloat32(name), want.values)).toBe(-1);
        }
        await st.close();
      }
    });
  }

  it('known values: the mamba2 embedding row 0 matches a hand-decoded read', async () => {
    const bytes = new Uint8Array(await readFile(join(FIXTURES, 'mamba2', 'model.safetensors')));
    const st = await openSafetensors(bytes);
    const info = st.tensor('backbone.embeddings.weight');
    expect(info.shape).toEqual([320, 64]);
    const view = new DataView(bytes.buffer, bytes.byteOffset);
    const values = await st.readFloat32('backbone.embeddings.weight');
    for (const i of [0, 1, 63, 64, 320 * 64 - 1]) expect(values[i]).toBe(view.getFloat32(info.offset + 4 * i, true));
  });

  it('zero-copy: aligned tensors read from bytes share their memory', async () => {
    const bytes = new Uint8Array(await readFile(join(FIXTURES, 'llama', 'model.safetensors')));
    const st = await openSafetensors(bufferSource(bytes));
    const t = await st.read('model.norm.weight');
    expect(t.data.buffer).toBe(bytes.buffer);
  });
});

function sample(dtype: SafetensorsDType, n: number, seed: number): ArrayBufferView {
  const bytes = new Uint8Array(n * dtypeByteSize(dtype));
  const r = randn(bytes.length, seed);
  for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.abs(r[i]) * 1000) & 0xff;
  if (dtype === 'BOOL') for (let i = 0; i < bytes.length; i++) bytes[i] &= 1;
  return bytes;
}

describe('writeSafetensors', () => {
  it('round-trips every dtype, scalars, empty and awkward shapes, and metadata', async () => {
    const tensors: Record<string, TensorToWrite> = {};
    const shapes = [[], [1], [7], [3, 5], [0, 3], [2, 3, 7]];
    SAFETENSORS_DTYPES.forEach((dtype, k) => {
      shapes.forEach((shape, j) => {
        const n = shape.reduce((a, b) => a * b, 1);
        tensors[`${dtype}.${j}`] = { dtype, shape, data: sample(dtype, n, 100 * k + j) };
      });
    });
    const bytes = writeSafetensors(tensors, { format: 'pt', note: 'ünïcode' });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
    expect(header.__metadata__).toEqual({ format: 'pt', note: 'ünïcode' });
    const st = await openSafetensors(bytes);
    expect(st.metadata).toEqual({ format: 'pt', note: 'ünïcode' });
    expect(st.names().length).toBe(Object.keys(tensors).length);
    for (const [name, want] of Object.entries(tensors)) {
      const t = await st.read(name);
      expect(t.dtype).toBe(want.dtype);
      expect(t.shape).toEqual(want.shape);
      const got = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      expect(firstDifference(got, want.data)).toBe(-1);
      expect(header[name].shape).toEqual(want.shape);
    }
    const i64 = await st.read('I64.2');
    expect(i64.data).toBeInstanceOf(BigInt64Array);
    expect((await st.read('BOOL.3')).data).toBeInstanceOf(Uint8Array);
  });

  it('converts a Float32Array given for F16 and BF16', async () => {
    const values = randn(13, 3);
    const st = await openSafetensors(
      writeSafetensors({ h: { dtype: 'F16', shape: [13], data: values }, b: { dtype: 'BF16', shape: [13], data: values } }),
    );
    expect(await st.readFloat32('h')).toEqual(f16ToF32(f32To16(values, 'f16'), 'f16'));
    expect(await st.readFloat32('b')).toEqual(f16ToF32(f32To16(values, 'bf16'), 'bf16'));
  });

  it('rejects data whose size does not fit the shape', () => {
    expect(() => writeSafetensors({ w: { dtype: 'F32', shape: [3], data: new Float32Array(2) } })).toThrow(/has 8 bytes, shape \[3\] x F32 needs 12/);
  });

  it('an unaligned tensor is copied once and reads correctly', async () => {
    const values = randn(5, 9);
    const bytes = writeSafetensors({ pad: { dtype: 'U8', shape: [3], data: new Uint8Array([1, 2, 3]) }, w: { dtype: 'F32', shape: [5], data: values } });
    const st = await openSafetensors(bufferSource(bytes));
    expect(st.tensor('w').offset % 4).not.toBe(0);
    const t = await st.read('w');
    expect(t.data.buffer).not.toBe(bytes.buffer);
    expect(t.data).toEqual(values);
  });
});

describe('host conversions', () => {
  it('f8 e4m3 (fn) and e5m2 decode known values', () => {
    expect(f8E4M3ToF32(0x38)).toBe(1);
    expect(f8E4M3ToF32(0xb8)).toBe(-1);
    expect(f8E4M3ToF32(0x7e)).toBe(448);
    expect(f8E4M3ToF32(0x01)).toBe(2 ** -9);
    expect(f8E4M3ToF32(0x7f)).toBeNaN();
    expect(f8E4M3ToF32(0x78)).toBe(256);
    expect(f8E5M2ToF32(0x3c)).toBe(1);
    expect(f8E5M2ToF32(0x7b)).toBe(57344);
    expect(f8E5M2ToF32(0x7c)).toBe(Infinity);
    expect(f8E5M2ToF32(0xfc)).toBe(-Infinity);
    expect(f8E5M2ToF32(0x01)).toBe(2 ** -16);
  });

  it('toFloat32 reads every float and integer dtype', () => {
    expect(toFloat32(new Uint16Array([0x3c00, 0xc000, 0x7c00]), 'F16')).toEqual(new Float32Array([1, -2, Infinity]));
    expect(toFloat32(new Uint16Array([0x3f80, 0xc040]), 'BF16')).toEqual(new Float32Array([1, -3]));
    expect(toFloat32(new Uint8Array([0x38, 0x40]), 'F8_E4M3')).toEqual(new Float32Array([1, 2]));
    expect(toFloat32(new Uint8Array([0x3c, 0x40]), 'F8_E5M2')).toEqual(new Float32Array([1, 2]));
    expect(toFloat32(new Float64Array([0.5, -1e300]), 'F64')).toEqual(new Float32Array([0.5, -Infinity]));
    expect(toFloat32(new BigInt64Array([-5n, 1n << 40n]), 'I64')).toEqual(new Float32Array([-5, 2 ** 40]));
    expect(toFloat32(new Int8Array([-128, 127]), 'I8')).toEqual(new Float32Array([-128, 127]));
  });
});
