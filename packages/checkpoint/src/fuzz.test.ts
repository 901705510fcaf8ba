/**
 * The small, seeded fuzz run of CI (a few seconds). The long run is
 * scripts/fuzz-long.ts. Every case must end in a typed CheckpointError or in
 * exactly what the independent validator of fuzz-support.ts computes.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError } from './errors.js';
import {
  type CaseResult,
  type Outcome,
  blowUp,
  checkFolder,
  checkSingle,
  mutateSafetensors,
  releaseFifos,
  seedFiles,
  seeded,
  validateSafetensors,
  withTimeout,
  writeOutsideFile,
  writeShardedFolder,
} from './fuzz-support.js';
import { openModel } from './open-model.js';
import { MAX_TENSORS, openSafetensors } from './safetensors.js';
import { bufferSource, fileSource } from './sources.js';
import { serveFiles } from './test-helpers.js';
import { writeSafetensors } from './write-safetensors.js';

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'statespace-fuzz-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const BAD: Outcome[] = ['untyped', 'wrong-silent', 'false-refusal', 'outside-read', 'hang'];

function tally(results: CaseResult[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of results) counts.set(r.outcome, (counts.get(r.outcome) ?? 0) + 1);
  return counts;
}

describe('the independent validator', () => {
  it('accepts the seeds and refuses what the format forbids', () => {
    for (const seed of seedFiles()) expect(validateSafetensors(seed).valid).toBe(true);
    const file = (header: string, data = 0) => {
      const text = new TextEncoder().encode(header);
      const out = new Uint8Array(8 + text.length + data);
      new DataView(out.buffer).setBigUint64(0, BigInt(text.length), true);
      out.set(text, 8);
      return out;
    };
    expect(validateSafetensors(file('{"t":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}', 2)).valid).toBe(true);
    expect(validateSafetensors(file('{"t":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}   ', 2)).valid).toBe(true);
    for (const bad of [' {}', '{"t":{"dtype":"U8","shape":[2.0],"data_offsets":[0,2]}}', '{"t":{"dtype":"U8","shape":[-0],"data_offsets":[0,0]}}', '{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}', '{"t":{"dtype":"toString","shape":[0],"data_offsets":[0,0]}}']) {
      expect(validateSafetensors(file(bad, 2)).valid, bad).toBe(false);
    }
  });
});

describe('fuzz: mutated single safetensors files', () => {
  it('end in a typed error or in exactly what the validator computes (3,000 cases)', async () => {
    const seeds = seedFiles();
    const random = seeded(20240601);
    const results: CaseResult[] = [];
    let slowest = 0;
    for (let i = 0; i < 3000; i++) {
      const bytes = mutateSafetensors(seeds[i % seeds.length], random);
      const t0 = performance.now();
      const result = await checkSingle(bytes);
      slowest = Math.max(slowest, performance.now() - t0);
      if (BAD.includes(result.outcome)) throw new Error(`case ${i}: ${result.outcome}: ${result.detail}\nbytes (base64): ${Buffer.from(bytes).toString('base64').slice(0, 4000)}`);
      results.push(result);
    }
    const counts = tally(results);
    // Both kinds of ending are reached, and every main refusal code.
    expect(counts.get('agree') ?? 0).toBeGreaterThan(100);
    expect(counts.get('typed') ?? 0).toBeGreaterThan(1000);
    const codes = new Set(results.map((r) => r.code));
    for (const code of ['SAFETENSORS_TRUNCATED', 'SAFETENSORS_HEADER_TOO_LARGE', 'SAFETENSORS_HEADER_INVALID', 'SAFETENSORS_INVALID_OFFSETS', 'SAFETENSORS_SIZE_MISMATCH', 'SAFETENSORS_UNKNOWN_DTYPE', 'SAFETENSORS_INVALID_TENSOR', 'SAFETENSORS_DUPLICATE_TENSOR']) {
      expect(codes.has(code), code).toBe(true);
    }
    expect(slowest).toBeLessThan(2_000);
  });

  it('headers built to cost work or memory are linear and capped', async () => {
    const random = seeded(7);
    for (let i = 0; i < 6; i++) {
      const bytes = blowUp(random, 0.1);
      const result = await checkSingle(bytes);
      expect(BAD, result.detail).not.toContain(result.outcome);
    }
    // One tensor over the cap: refused with its own code, quickly.
    const parts: string[] = [];
    for (let i = 0; i <= MAX_TENSORS; i++) parts.push(`"t${i}":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}`);
    const header = new TextEncoder().encode(`{${parts.join(',')}}`);
    const bytes = new Uint8Array(8 + header.length);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(header.length), true);
    bytes.set(header, 8);
    const t0 = performance.now();
    await expect(openSafetensors(bufferSource(bytes))).rejects.toMatchObject({ code: 'SAFETENSORS_TOO_MANY_TENSORS' });
    // About a second on an idle core; the bound leaves room for a loaded CI machine.
    expect(performance.now() - t0).toBeLessThan(10_000);
  });
});

describe('fuzz: mutated sharded folders', () => {
  it('end in a typed error or in exactly what the validator computes, never reading outside the folder (120 folders)', async () => {
    const outside = join(work, 'outside.safetensors');
    writeOutsideFile(outside);
    const random = seeded(99);
    const results: CaseResult[] = [];
    for (let i = 0; i < 120; i++) {
      const dir = join(work, `case-${i}`);
      mkdirSync(dir);
      const label = writeShardedFolder(dir, outside, random);
      const result = await withTimeout(checkFolder(dir), 5_000);
      if (result === 'hang') {
        releaseFifos([join(dir, 'model-00001-of-00003.safetensors'), join(dir, 'model-00002-of-00003.safetensors'), join(dir, 'model-00003-of-00003.safetensors'), join(dir, 'model.safetensors.index.json'), `${outside}.fifo`]);
        throw new Error(`case ${i} (${label}) hung`);
      }
      if (BAD.includes(result.outcome)) throw new Error(`case ${i} (${label}): ${result.outcome}: ${result.detail}`);
      results.push(result);
    }
    const counts = tally(results);
    expect(counts.get('agree') ?? 0).toBeGreaterThan(5);
    expect(counts.get('typed') ?? 0).toBeGreaterThan(30);
    const codes = new Set(results.map((r) => r.code));
    for (const code of ['CHECKPOINT_OUTSIDE_FOLDER', 'CHECKPOINT_IO', 'CHECKPOINT_INDEX_INVALID', 'CHECKPOINT_SHARD_MISSING']) expect(codes.has(code), `${code} in ${[...codes]}`).toBe(true);
  });
});

describe('model folders: files stay inside the folder and are regular files', () => {
  const model = () => writeSafetensors({ w: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) } });

  it('a shard that is a symlink out of the folder is refused, not read', async () => {
    const dir = join(work, 'symlink-out');
    mkdirSync(dir);
    writeOutsideFile(join(work, 'secret.safetensors'));
    symlinkSync(join(work, 'secret.safetensors'), join(dir, 'a.safetensors'));
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { 'a.weight': 'a.safetensors' } }));
    const checkpoint = await (await openModel(dir)).weights();
    await expect(checkpoint.readBytes('a.weight')).rejects.toMatchObject({ code: 'CHECKPOINT_OUTSIDE_FOLDER', message: expect.stringMatching(/resolves to .*secret\.safetensors, outside the folder/) });
  });

  it('a FIFO, a device or a directory named as a file is refused at once', async () => {
    const dir = join(work, 'specials');
    mkdirSync(dir);
    execFileSync('mkfifo', [join(dir, 'model.safetensors')]);
    const t0 = performance.now();
    await expect((await openModel(dir)).weights()).rejects.toMatchObject({ code: 'CHECKPOINT_IO', message: expect.stringMatching(/not a regular file \(a FIFO\)/) });
    await expect(openSafetensors(fileSource(join(dir, 'model.safetensors')))).rejects.toMatchObject({ code: 'CHECKPOINT_IO' });
    mkdirSync(join(dir, 'config.json'));
    await expect((await openModel(dir)).readText('config.json')).rejects.toMatchObject({ code: 'CHECKPOINT_IO', message: expect.stringMatching(/a directory/) });
    await expect(openSafetensors(fileSource('/dev/zero'))).rejects.toMatchObject({ code: 'CHECKPOINT_IO', message: expect.stringMatching(/a device/) });
    expect(performance.now() - t0).toBeLessThan(2_000);
  });

  it('names with separators or dots are refused before any file is touched', async () => {
    const folder = await openModel(work);
    for (const name of ['../x', 'a/b', '..', '/etc/passwd', 'a\\b']) {
      await expect(folder.readText(name)).rejects.toMatchObject({ code: 'CHECKPOINT_OUTSIDE_FOLDER' });
    }
  });

  it('symlinks inside the folder and a Hugging Face cache snapshot (links into ../../blobs) are read', async () => {
    const repo = join(work, 'models--org--tiny');
    mkdirSync(join(repo, 'blobs'), { recursive: true });
    mkdirSync(join(repo, 'snapshots', 'abc123'), { recursive: true });
    writeFileSync(join(repo, 'blobs', 'f00d'), model());
    symlinkSync('../../blobs/f00d', join(repo, 'snapshots', 'abc123', 'model.safetensors'));
    const checkpoint = await (await openModel(join(repo, 'snapshots', 'abc123'))).weights();
    expect(Array.from(await checkpoint.readFloat32('w'))).toEqual([1, 2]);
    // The same link from a folder that is not a snapshot reaches outside it: refused.
    const plain = join(work, 'plain', 'x');
    mkdirSync(plain, { recursive: true });
    symlinkSync(join(repo, 'blobs', 'f00d'), join(plain, 'model.safetensors'));
    await expect((await openModel(plain)).weights()).rejects.toMatchObject({ code: 'CHECKPOINT_OUTSIDE_FOLDER' });
  });

  it('over HTTP, percent-encoded separators in shard names are refused', async () => {
    const root = join(work, 'http');
    mkdirSync(join(root, 'model'), { recursive: true });
    writeFileSync(join(root, 'secret.safetensors'), model());
    writeFileSync(join(root, 'model', 'model.safetensors.index.json'), JSON.stringify({ weight_map: { w: '%2e%2e%2fsecret.safetensors' } }));
    const server = await serveFiles(root);
    try {
      const checkpoint = await (await openModel(`${server.url}model/`)).weights();
      const error = await checkpoint.readBytes('w').catch((e: unknown) => e);
      expect(CheckpointError.isCheckpointError(error)).toBe(true);
      expect((error as CheckpointError).code).toBe('CHECKPOINT_OUTSIDE_FOLDER');
      expect(server.requests.some((r) => r.path.includes('secret'))).toBe(false);
    } finally {
      await server.close();
    }
  });
});
