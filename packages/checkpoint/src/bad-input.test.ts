import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CheckpointError, type CheckpointErrorCode } from './errors.js';
import { openSafetensors } from './safetensors.js';
import { bufferSource, fileSource } from './sources.js';
import { FIXTURES, rawSafetensors } from './test-helpers.js';
import { writeSafetensors } from './write-safetensors.js';

/** Opens `bytes` as `bad.safetensors`, reads every tensor, and returns the error thrown. */
async function failure(bytes: Uint8Array): Promise<CheckpointError> {
  try {
    const st = await openSafetensors(bufferSource(bytes, 'bad.safetensors'));
    for (const name of st.names()) await st.read(name);
  } catch (error) {
    expect(CheckpointError.isCheckpointError(error), String(error)).toBe(true);
    expect(error).toBeInstanceOf(CheckpointError);
    return error as CheckpointError;
  }
  throw new Error('expected a CheckpointError, nothing was thrown');
}

async function expectError(bytes: Uint8Array, code: CheckpointErrorCode, message: RegExp, tensor?: string): Promise<void> {
  const error = await failure(bytes);
  expect(error.code).toBe(code);
  expect(error.message).toMatch(/^bad\.safetensors/);
  expect(error.message).toMatch(message);
  expect(error.file).toBe('bad.safetensors');
  if (tensor !== undefined) {
    expect(error.tensor).toBe(tensor);
    expect(error.message).toContain(`"${tensor}"`);
  }
}

const f32 = (shape: number[], offsets: [number, number]) => ({ dtype: 'F32', shape, data_offsets: offsets });

describe('malformed safetensors files each give one typed error naming the file and tensor', () => {
  it('a file shorter than 8 bytes', () => expectError(new Uint8Array(5), 'SAFETENSORS_TRUNCATED', /5 bytes is too short/));
  it('a header length larger than the file', () => expectError(rawSafetensors('{}', 0, 1000), 'SAFETENSORS_TRUNCATED', /header length 1000 runs past the end of the 10-byte file/));
  it('a header length over 100 MB', () => expectError(rawSafetensors('{}', 0, 200_000_000), 'SAFETENSORS_HEADER_TOO_LARGE', /200000000 exceeds .* 100000000/));
  it('a header length of 2^64 - 1', () => expectError(rawSafetensors('{}', 0, 2n ** 64n - 1n), 'SAFETENSORS_HEADER_TOO_LARGE', /exceeds/));
  it('a header that is not UTF-8', async () => {
    const bytes = rawSafetensors('{"a":1}');
    bytes[10] = 0xff;
    await expectError(bytes, 'SAFETENSORS_HEADER_INVALID', /not valid UTF-8/);
  });
  it('a header that is not JSON', () => expectError(rawSafetensors('{"a": '), 'SAFETENSORS_HEADER_INVALID', /not valid JSON/));
  it('a header that is a JSON array', () => expectError(rawSafetensors('[1, 2]'), 'SAFETENSORS_HEADER_INVALID', /not a JSON object/));
  it('a header that is a JSON string', () => expectError(rawSafetensors('"{}"'), 'SAFETENSORS_HEADER_INVALID', /not a JSON object/));
  it('__metadata__ holding a number', () => expectError(rawSafetensors({ __metadata__: { n: 1 } }), 'SAFETENSORS_HEADER_INVALID', /__metadata__/));
  it('an entry that is not an object', () => expectError(rawSafetensors({ w: 3 }), 'SAFETENSORS_INVALID_TENSOR', /entry is not an object/, 'w'));
  it('an entry without dtype', () => expectError(rawSafetensors({ w: { shape: [1], data_offsets: [0, 4] } }, 4), 'SAFETENSORS_INVALID_TENSOR', /"dtype"/, 'w'));
  it('a negative dimension', () => expectError(rawSafetensors({ w: f32([-1], [0, 4]) }, 4), 'SAFETENSORS_INVALID_TENSOR', /"shape"/, 'w'));
  it('a fractional dimension', () => expectError(rawSafetensors({ w: f32([1.5], [0, 4]) }, 4), 'SAFETENSORS_INVALID_TENSOR', /"shape"/, 'w'));
  it('three data_offsets', () => expectError(rawSafetensors({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 4, 8] } }, 4), 'SAFETENSORS_INVALID_TENSOR', /"data_offsets"/, 'w'));
  it('string data_offsets', () => expectError(rawSafetensors({ w: { dtype: 'F32', shape: [1], data_offsets: ['0', '4'] } }, 4), 'SAFETENSORS_INVALID_TENSOR', /"data_offsets"/, 'w'));
  it('an unknown dtype', () => expectError(rawSafetensors({ w: { dtype: 'F128', shape: [1], data_offsets: [0, 16] } }, 16), 'SAFETENSORS_UNKNOWN_DTYPE', /unknown dtype "F128"/, 'w'));
  it('offsets that end before they begin', () => expectError(rawSafetensors({ w: f32([1], [8, 4]) }, 8), 'SAFETENSORS_INVALID_OFFSETS', /end before they begin/, 'w'));
  it('offsets outside the data section', () => expectError(rawSafetensors({ w: f32([4], [0, 16]) }, 8), 'SAFETENSORS_TRUNCATED', /outside the 8-byte data section/, 'w'));
  it('offsets beyond 2^53', () => expectError(rawSafetensors('{"w":{"dtype":"U8","shape":[1],"data_offsets":[18446744073709551615,18446744073709551616]}}'), 'SAFETENSORS_INVALID_TENSOR', /data_offsets/, 'w'));
  it('overlapping tensors', () =>
    expectError(rawSafetensors({ a: f32([2], [0, 8]), b: f32([2], [4, 12]) }, 12), 'SAFETENSORS_INVALID_OFFSETS', /overlap the previous tensor/, 'b'));
  it('identical offsets for two tensors', () =>
    expectError(rawSafetensors({ a: f32([2], [0, 8]), b: f32([2], [0, 8]) }, 8), 'SAFETENSORS_INVALID_OFFSETS', /overlap/));
  it('a hole between tensors', () => expectError(rawSafetensors({ a: f32([1], [0, 4]), b: f32([1], [8, 12]) }, 12), 'SAFETENSORS_INVALID_OFFSETS', /leave a hole after byte 4/, 'b'));
  it('trailing bytes after the last tensor', () => expectError(rawSafetensors({ a: f32([1], [0, 4]) }, 9), 'SAFETENSORS_INVALID_OFFSETS', /5 trailing bytes/));
  it('offsets that do not match shape x dtype', () =>
    expectError(rawSafetensors({ w: f32([3], [0, 8]) }, 8), 'SAFETENSORS_SIZE_MISMATCH', /shape \[3\] x F32 needs 12 bytes, data_offsets \[0, 8\] hold 8/, 'w'));
  it('a shape whose size overflows', () =>
    expectError(rawSafetensors({ w: f32([2 ** 30, 2 ** 30, 2 ** 30], [0, 8]) }, 8), 'SAFETENSORS_SIZE_MISMATCH', /too large/, 'w'));
  it('a duplicate tensor name', () =>
    expectError(rawSafetensors('{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', 2), 'SAFETENSORS_DUPLICATE_TENSOR', /tensor "w" appears twice/, 'w'));
  it('a duplicate name spelled with an escape', () =>
    expectError(rawSafetensors('{"ab":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a\\u0062":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', 2), 'SAFETENSORS_DUPLICATE_TENSOR', /"ab" appears twice/, 'ab'));
  it('a duplicate key inside an entry', () =>
    expectError(rawSafetensors('{"w":{"dtype":"U8","dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 4), 'SAFETENSORS_DUPLICATE_TENSOR', /key "dtype" appears twice in entry "w"/, 'w'));
  it('strings that only look like keys are not duplicates', async () => {
    const bytes = writeSafetensors({ 'a,"b"': { dtype: 'U8', shape: [1], data: new Uint8Array(1) }, b: { dtype: 'U8', shape: [1], data: new Uint8Array(1) } }, { x: 'b', y: '{"b":1}' });
    const st = await openSafetensors(bytes);
    expect(st.names()).toEqual(['a,"b"', 'b']);
  });
  it('a fixture cut in half', async () => {
    const bytes = new Uint8Array(await readFile(join(FIXTURES, 'mamba2', 'model.safetensors')));
    const error = await failure(bytes.subarray(0, bytes.length >> 1));
    expect(error.code).toBe('SAFETENSORS_TRUNCATED');
    expect(error.message).toMatch(/data_offsets .* lie outside .*truncated/);
    expect(error.tensor).toBeTruthy();
  });
  it('a tensor that is not in the file', async () => {
    const st = await openSafetensors(bufferSource(writeSafetensors({ a: { dtype: 'U8', shape: [1], data: new Uint8Array(1) } }), 'x.safetensors'));
    await expect(st.read('b')).rejects.toMatchObject({ code: 'CHECKPOINT_TENSOR_NOT_FOUND', file: 'x.safetensors', tensor: 'b' });
  });
  it('a path that does not exist', async () => {
    await expect(openSafetensors(fileSource('/nonexistent/model.safetensors'))).rejects.toMatchObject({ code: 'CHECKPOINT_FILE_NOT_FOUND', file: '/nonexistent/model.safetensors' });
  });
  it('a directory given as a file', async () => {
    await expect(openSafetensors(FIXTURES)).rejects.toMatchObject({ code: expect.stringMatching(/CHECKPOINT_IO|CHECKPOINT_FILE_NOT_FOUND/) });
  });
});
