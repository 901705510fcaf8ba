/**
 * Seeded fuzzing of the pytorch_model.bin reader (zip directory + restricted
 * pickle): random bytes, truncations, byte flips, splices and mutated pickles
 * inside a valid archive. Every case must end in a typed CheckpointError or in
 * a checkpoint whose every tensor then reads to exactly its byte length (or
 * fails typed), within a time bound: never an untyped throw, never a hang.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CheckpointError } from './errors.js';
import { seeded, withTimeout } from './fuzz-support.js';
import { readPickle } from './pickle-reader.js';
import { bufferSource } from './sources.js';
import { openTorchCheckpoint } from './torch-checkpoint.js';
import { f32Bytes, stateDictPickle, torchArchive } from './torch-test-helpers.js';

const SAMPLE = readFileSync(fileURLToPath(new URL('../../../fixtures/mamba-ssm/torch-samples/sample.bin', import.meta.url)));

type Outcome = 'read' | 'typed' | 'untyped' | 'hang' | 'wrong-length';

async function attempt(bytes: Uint8Array): Promise<Outcome> {
  const run = async (): Promise<Outcome> => {
    let ckpt;
    try {
      ckpt = await openTorchCheckpoint(bufferSource(bytes, 'fuzz.bin'));
    } catch (error) {
      return CheckpointError.isCheckpointError(error) ? 'typed' : 'untyped';
    }
    for (const name of ckpt.names()) {
      try {
        const info = await ckpt.info(name);
        const data = await ckpt.readBytes(name);
        if (data.byteLength !== info.byteLength) return 'wrong-length';
      } catch (error) {
        if (!CheckpointError.isCheckpointError(error)) return 'untyped';
      }
    }
    return 'read';
  };
  const result = await withTimeout(run(), 2000);
  return result === 'hang' ? 'hang' : result;
}

function mutate(seed: Uint8Array, r: () => number): Uint8Array {
  const out = new Uint8Array(seed);
  switch (Math.floor(r() * 4)) {
    case 0: // truncate
      return out.subarray(0, Math.floor(r() * seed.length));
    case 1: {
      // flip a few bytes
      const flips = 1 + Math.floor(r() * 8);
      for (let i = 0; i < flips; i++) out[Math.floor(r() * out.length)] = Math.floor(r() * 256);
      return out;
    }
    case 2: {
      // overwrite a 4-byte field with an extreme value
      const at = Math.floor(r() * (out.length - 4));
      new DataView(out.buffer).setUint32(at, [0, 0xffffffff, 0x7fffffff, 0x10000, out.length][Math.floor(r() * 5)], true);
      return out;
    }
    default: {
      // splice a random block elsewhere
      const from = Math.floor(r() * out.length);
      const to = Math.floor(r() * out.length);
      const length = Math.floor(r() * 64);
      out.copyWithin(to, from, from + length);
      return out;
    }
  }
}

describe('pytorch_model.bin reader under fuzzing', () => {
  it('random bytes, and random bytes after a zip signature, are refused typed', async () => {
    const r = seeded(101);
    const counts = new Map<Outcome, number>();
    for (let i = 0; i < 300; i++) {
      const bytes = new Uint8Array(Math.floor(r() * 600));
      for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(r() * 256);
      if (i % 2 === 0 && bytes.length >= 4) bytes.set([0x50, 0x4b, 0x03, 0x04]);
      const o = await attempt(bytes);
      counts.set(o, (counts.get(o) ?? 0) + 1);
    }
    expect(counts.get('untyped') ?? 0).toBe(0);
    expect(counts.get('hang') ?? 0).toBe(0);
    expect(counts.get('read') ?? 0).toBe(0);
  });

  it('mutations of a real torch.save file end typed or read correctly', async () => {
    const r = seeded(202);
    const counts = new Map<Outcome, number>();
    for (let i = 0; i < 600; i++) {
      const o = await attempt(mutate(SAMPLE, r));
      counts.set(o, (counts.get(o) ?? 0) + 1);
    }
    for (const bad of ['untyped', 'hang', 'wrong-length'] as const) expect(counts.get(bad) ?? 0, `${bad}: ${JSON.stringify([...counts])}`).toBe(0);
    expect(counts.get('typed') ?? 0).toBeGreaterThan(100);
    expect(counts.get('read') ?? 0).toBeGreaterThan(10); // flips inside tensor data still read
  });

  it('mutated pickles never escape the allow-list: typed errors or plain data', async () => {
    const r = seeded(303);
    const pickle = stateDictPickle({ a: { key: '0', numel: 6, shape: [2, 3] }, b: { key: '0', numel: 6, offset: 3, shape: [3] } }, { metadata: true });
    let typed = 0;
    for (let i = 0; i < 2000; i++) {
      const m = mutate(pickle, r);
      try {
        readPickle(m, 'fuzz.pkl');
      } catch (error) {
        expect(CheckpointError.isCheckpointError(error), String(error)).toBe(true);
        typed++;
      }
      if (i % 10 === 0) expect(await attempt(torchArchive(m, { '0': f32Bytes([1, 2, 3, 4, 5, 6]) }))).toMatch(/^(typed|read)$/);
    }
    expect(typed).toBeGreaterThan(1000);
  });

  it('a long pickle of nested marks and a huge claimed string stay linear and bounded', async () => {
    const deep = new Uint8Array(200_002);
    deep[0] = 0x80;
    deep[1] = 2;
    deep.fill(0x28, 2); // 200,000 MARKs, then the end
    const started = performance.now();
    expect(() => readPickle(deep, 'deep.pkl')).toThrow(CheckpointError);
    const huge = new Uint8Array([0x80, 2, 0x58, 0xff, 0xff, 0xff, 0x7f, 0x2e]); // BINUNICODE of 2 GB in 8 bytes
    expect(() => readPickle(huge, 'huge.pkl')).toThrow(/truncated/);
    expect(performance.now() - started).toBeLessThan(2000);
  });
});
