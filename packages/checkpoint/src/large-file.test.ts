import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { f16ToF32, f32To16 } from '@statespace/core';
import { getTestRuntime } from '@statespace/core/testing';
import { loadWeights } from './load-weights.js';
import { openSafetensors } from './safetensors.js';
import { type ByteSource, fileSource } from './sources.js';

/** 5 GiB of zeros (a hole in a sparse file), past every 32-bit offset. */
const FILLER = 5 * 2 ** 30;
const A = new Float32Array([1.5, -2, 3.25]);
const B = new Float32Array([0.5, 1, -1, 65504, 2 ** -14]);

let dir: string;
let path: string;

/** Writes header + tail tensors and extends the file with ftruncate: no filler byte is ever written. */
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'statespace-large-'));
  path = join(dir, 'model.safetensors');
  const header = JSON.stringify({
    __metadata__: { format: 'pt' },
    filler: { dtype: 'U8', shape: [FILLER], data_offsets: [0, FILLER] },
    'tail.a': { dtype: 'F32', shape: [3], data_offsets: [FILLER, FILLER + 12] },
    'tail.b': { dtype: 'BF16', shape: [5], data_offsets: [FILLER + 12, FILLER + 22] },
  });
  const text = new TextEncoder().encode(header.padEnd(Math.ceil(header.length / 8) * 8, ' '));
  const prefix = new Uint8Array(8 + text.length);
  new DataView(prefix.buffer).setUint32(0, text.length, true);
  prefix.set(text, 8);
  const dataStart = prefix.length;
  const fh = await open(path, 'w');
  try {
    await fh.write(prefix, 0, prefix.length, 0);
    await fh.truncate(dataStart + FILLER + 22);
    await fh.write(new Uint8Array(A.buffer), 0, 12, dataStart + FILLER);
    const b = f32To16(B, 'bf16');
    await fh.write(new Uint8Array(b.buffer), 0, 10, dataStart + FILLER + 12);
  } finally {
    await fh.close();
  }
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function counting(source: ByteSource): { source: ByteSource; bytesRead: () => number } {
  let total = 0;
  return {
    source: { ...source, name: source.name, read: (offset, length) => ((total += length), source.read(offset, length)) },
    bytesRead: () => total,
  };
}

describe('a 5 GiB sparse checkpoint', () => {
  it('opens and reads the tensors at its end, reading only a few KB', async () => {
    const { source, bytesRead } = counting(fileSource(path));
    const st = await openSafetensors(source);
    expect(st.size).toBeGreaterThan(2 ** 32);
    const a = st.tensor('tail.a');
    expect(a.offset).toBeGreaterThan(2 ** 32);
    expect(await st.readFloat32('tail.a')).toEqual(A);
    expect(await st.readFloat32('tail.b')).toEqual(f16ToF32(f32To16(B, 'bf16'), 'bf16'));
    expect(bytesRead()).toBeLessThan(70_000);
    await st.close();
  });

  it('uploads the tail tensors to the GPU without touching the filler', async () => {
    const rt = await getTestRuntime();
    const { source, bytesRead } = counting(fileSource(path));
    const st = await openSafetensors(source);
    const weights = await loadWeights(rt, st, { names: ['tail.a', 'tail.b'], dtype: 'f32' });
    expect(await rt.read(weights.get('tail.a')!)).toEqual(A);
    expect(await rt.read(weights.get('tail.b')!)).toEqual(f16ToF32(f32To16(B, 'bf16'), 'bf16'));
    expect(bytesRead()).toBeLessThan(70_000);
    for (const t of weights.values()) t.dispose();
    await st.close();
  });

  it('a copy cut short by one byte is reported truncated, naming the last tensor', async () => {
    const fh = await open(path, 'r+');
    const { size } = await fh.stat();
    await fh.truncate(size - 1);
    await fh.close();
    await expect(openSafetensors(path)).rejects.toMatchObject({ code: 'SAFETENSORS_TRUNCATED', tensor: 'tail.b', file: path });
  });
});
