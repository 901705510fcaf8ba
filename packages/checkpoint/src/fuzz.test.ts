import { describe, expect, it } from 'vitest';
import { randn, rng } from '@statespace/core/testing';
import { toFloat32 } from './dtypes.js';
import { CheckpointError } from './errors.js';
import { openSafetensors } from './safetensors.js';
import { type ByteSource, bufferSource } from './sources.js';
import { writeSafetensors } from './write-safetensors.js';

/** A valid file with several dtypes, a scalar, an empty tensor and metadata. */
function seedFile(): Uint8Array {
  return writeSafetensors(
    {
      'model.embed.weight': { dtype: 'F32', shape: [5, 3], data: randn(15, 1) },
      'model.norm.weight': { dtype: 'BF16', shape: [7], data: randn(7, 2) },
      'model.layers.0.A': { dtype: 'F16', shape: [3, 1], data: randn(3, 3) },
      'model.ids': { dtype: 'I64', shape: [2], data: new BigInt64Array([1n, -2n]) },
      'model.mask': { dtype: 'BOOL', shape: [3], data: new Uint8Array([1, 0, 1]) },
      'model.q': { dtype: 'F8_E4M3', shape: [4], data: new Uint8Array([0x38, 0x40, 0x7f, 0x01]) },
      'model.scalar': { dtype: 'I32', shape: [], data: new Int32Array([42]) },
      'model.empty': { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
    },
    { format: 'pt' },
  );
}

const JSON_BYTES = [...'{}[]",:0123456789-eE. \\u'].map((c) => c.charCodeAt(0));
const NUMBERS = ['0', '1', '-1', '4', '1e30', '3.5', '18446744073709551616', '9007199254740993', '100000000', '-0'];

/** One random mutation of `base`. */
function mutate(base: Uint8Array, random: () => number): Uint8Array {
  const pick = (n: number) => Math.floor(random() * n);
  const headerEnd = 8 + Number(new DataView(base.buffer, base.byteOffset).getBigUint64(0, true));
  let bytes = base.slice();
  const kind = pick(8);
  const count = 1 + pick(4);
  for (let k = 0; k < count; k++) {
    switch (kind) {
      case 0: // random byte anywhere
        bytes[pick(bytes.length)] = pick(256);
        break;
      case 1: // a JSON-significant byte inside the header
        bytes[8 + pick(headerEnd - 8)] = JSON_BYTES[pick(JSON_BYTES.length)];
        break;
      case 2: // truncate
        bytes = bytes.slice(0, pick(bytes.length));
        break;
      case 3: {
        // a new header length: near the real one, small, or huge
        const view = new DataView(bytes.buffer);
        const choices = [headerEnd - 8 + pick(17) - 8, pick(64), 2 ** 32 + pick(10), 100_000_001, bytes.length];
        view.setUint32(0, choices[pick(choices.length)] >>> 0, true);
        if (pick(4) === 0) view.setUint32(4, pick(2 ** 32), true);
        break;
      }
      case 4: {
        // replace a number in the header (shapes and offsets)
        const text = new TextDecoder().decode(bytes.subarray(8, headerEnd));
        const numbers = [...text.matchAll(/\d+/g)];
        if (numbers.length === 0) break;
        const m = numbers[pick(numbers.length)];
        const replacement = pick(3) === 0 ? String(pick(bytes.length * 2)) : NUMBERS[pick(NUMBERS.length)];
        const header = new TextEncoder().encode(text.slice(0, m.index) + replacement + text.slice(m.index! + m[0].length));
        const out = new Uint8Array(8 + header.length + bytes.length - headerEnd);
        new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
        out.set(header, 8);
        out.set(bytes.subarray(headerEnd), 8 + header.length);
        bytes = out;
        break;
      }
      case 5: {
        // delete a range
        const a = pick(bytes.length);
        const b = Math.min(bytes.length, a + 1 + pick(16));
        bytes = new Uint8Array([...bytes.subarray(0, a), ...bytes.subarray(b)]);
        break;
      }
      case 6: {
        // duplicate a range in place
        const a = pick(bytes.length);
        const b = Math.min(bytes.length, a + 1 + pick(64));
        bytes = new Uint8Array([...bytes.subarray(0, b), ...bytes.subarray(a, b), ...bytes.subarray(b)]);
        break;
      }
      default: {
        // swap a dtype name for another (sizes then disagree)
        const text = new TextDecoder().decode(bytes.subarray(8, headerEnd));
        const names = ['F32', 'F16', 'BF16', 'I64', 'U8', 'BOOL', 'F8_E5M2', 'F64', 'X', 'I4'];
        const swapped = text.replace(/"(F32|BF16|F16|I64|BOOL|I32|F8_E4M3)"/, `"${names[pick(names.length)]}"`);
        const header = new TextEncoder().encode(swapped);
        const out = new Uint8Array(8 + header.length + bytes.length - headerEnd);
        new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
        out.set(header, 8);
        out.set(bytes.subarray(headerEnd), 8 + header.length);
        bytes = out;
      }
    }
  }
  return bytes;
}

/** A source that records the largest single read, to prove nothing beyond the file's size is ever asked for. */
function watched(bytes: Uint8Array): { source: ByteSource; largestRead: () => number } {
  const inner = bufferSource(bytes, 'fuzz.safetensors');
  let largest = 0;
  return {
    source: { ...inner, read: (offset, length) => ((largest = Math.max(largest, length)), inner.read(offset, length)) },
    largestRead: () => largest,
  };
}

describe('fuzz: random mutations of a valid file', () => {
  it('never throw anything but CheckpointError, never hang, never read more than the file holds', async () => {
    const base = seedFile();
    const random = rng(20240601);
    const cases = 5000;
    const outcomes = new Map<string, number>();
    let slowest = 0;
    const started = performance.now();
    for (let i = 0; i < cases; i++) {
      const bytes = mutate(base, random);
      const { source, largestRead } = watched(bytes);
      const t0 = performance.now();
      let outcome = 'ok';
      try {
        const st = await openSafetensors(source);
        for (const name of st.names()) {
          const t = await st.read(name);
          toFloat32(t.data, t.dtype);
        }
      } catch (error) {
        if (!CheckpointError.isCheckpointError(error) || !(error instanceof CheckpointError)) {
          throw new Error(`case ${i}: threw a non-checkpoint error: ${String(error)}\nbytes: ${Buffer.from(bytes).toString('base64')}`);
        }
        expect(error.file).toBe('fuzz.safetensors');
        outcome = error.code;
      }
      slowest = Math.max(slowest, performance.now() - t0);
      expect(largestRead()).toBeLessThanOrEqual(bytes.length);
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
    const elapsed = performance.now() - started;
    // Every failure mode was reached, and some mutations still parse (e.g. a changed data byte).
    for (const code of ['ok', 'SAFETENSORS_TRUNCATED', 'SAFETENSORS_HEADER_TOO_LARGE', 'SAFETENSORS_HEADER_INVALID', 'SAFETENSORS_INVALID_OFFSETS', 'SAFETENSORS_SIZE_MISMATCH', 'SAFETENSORS_UNKNOWN_DTYPE', 'SAFETENSORS_INVALID_TENSOR']) {
      expect(outcomes.get(code) ?? 0, `${code} in ${JSON.stringify([...outcomes])}`).toBeGreaterThan(0);
    }
    expect(slowest).toBeLessThan(2_000);
    expect(elapsed).toBeLessThan(60_000);
  });
});
