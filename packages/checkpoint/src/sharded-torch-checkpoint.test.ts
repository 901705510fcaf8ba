/**
 * Sharded PyTorch checkpoints: `pytorch_model.bin.index.json` and its
 * `pytorch_model-0000i-of-0000n.bin` shards, built here with the hand-built
 * .bin writer of torch-test-helpers.ts, read through openModel and
 * openShardedTorchCheckpoint.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { getTestRuntime } from '@statespace/core/testing';
import { CheckpointError, type CheckpointErrorCode } from './errors.js';
import { loadWeights } from './load-weights.js';
import { type ModelFiles, openModel } from './open-model.js';
import { type Checkpoint, SafetensorsFile } from './safetensors.js';
import { ShardedCheckpoint, openShardedTorchCheckpoint } from './sharded-checkpoint.js';
import { type ByteSource, bufferSource } from './sources.js';
import { TorchCheckpoint, openTorchCheckpoint } from './torch-checkpoint.js';
import { serveFiles } from './test-helpers.js';
import { PickleBuilder, type TorchTensorBytes, f32Bytes, shardTorch, torchArchive, torchFile, torchShardName } from './torch-test-helpers.js';
import { writeSafetensors } from './write-safetensors.js';

const MAMBA_SSM = fileURLToPath(new URL('../../../fixtures/mamba-ssm/', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'statespace-sharded-bin-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

let folders = 0;
/** A fresh folder under `work` holding `files` (name -> bytes or JSON object). */
function folder(files: Iterable<[string, Uint8Array | string | object]>): string {
  const dir = join(work, `m${folders++}`);
  mkdirSync(dir);
  for (const [name, content] of files) writeFileSync(join(dir, name), content instanceof Uint8Array || typeof content === 'string' ? content : JSON.stringify(content));
  return dir;
}

/** A folder with the shards and index of `tensors` split over `count` files. */
function shardedFolder(tensors: Record<string, TorchTensorBytes>, count: number, assign?: (name: string, i: number) => number) {
  const { files, index } = shardTorch(tensors, count, assign);
  return { dir: folder([...files, ['pytorch_model.bin.index.json', index]]), files, index };
}

/** The code of the CheckpointError that `task` fails with ('ok' when it does not fail). */
async function code(task: Promise<unknown>): Promise<CheckpointErrorCode | 'ok'> {
  try {
    await task;
  } catch (error) {
    if (CheckpointError.isCheckpointError(error)) return error.code;
    throw error;
  }
  return 'ok';
}

/** Reads every tensor (raw bytes), so that every shard is opened. */
async function readAll(checkpoint: Checkpoint): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (const name of checkpoint.names()) out.set(name, await checkpoint.readBytes(name));
  return out;
}

/** bf16 bytes of values that bf16 holds exactly (the high half of each f32). */
function bf16Bytes(values: number[]): Uint8Array {
  const f32 = new Uint32Array(new Float32Array(values).buffer);
  return new Uint8Array(Uint16Array.from(f32, (bits) => bits >>> 16).buffer);
}

const VALUES = { a: [1, -2, 0.5, 3, -0.25, 8], b: [1.5, -4, 0.125, 64], c: [-1, 2, -3, 4, -5] };
function threeTensors(dtype: 'F32' | 'BF16'): Record<string, TorchTensorBytes> {
  const bytes = dtype === 'F32' ? f32Bytes : bf16Bytes;
  return {
    'layers.0.weight': { dtype, shape: [2, 3], bytes: bytes(VALUES.a) },
    'layers.0.bias': { dtype, shape: [4], bytes: bytes(VALUES.b) },
    'norm.weight': { dtype, shape: [5, 1], bytes: bytes(VALUES.c) },
  };
}

/** Model files that record which .bin files are opened and which of them are closed. */
function counting(files: ModelFiles) {
  const opened: string[] = [];
  const closed: string[] = [];
  const wrapped: ModelFiles = {
    ...files,
    source: (file): ByteSource => {
      const inner = files.source(file);
      if (!file.endsWith('.bin')) return inner;
      opened.push(file);
      return { name: inner.name, size: () => inner.size(), read: (o, n) => inner.read(o, n), close: async () => (closed.push(file), inner.close()) };
    },
  };
  return { wrapped, opened, closed };
}

describe('sharded pytorch_model.bin (pytorch_model.bin.index.json)', () => {
  for (const dtype of ['F32', 'BF16'] as const) {
    it(`3 ${dtype} tensors over 2 shards read like the single file; shards opened lazily and closed by close()`, async () => {
      const tensors = threeTensors(dtype);
      const single = await openTorchCheckpoint(bufferSource(torchFile(tensors), 'pytorch_model.bin'));
      const { dir, index } = shardedFolder(tensors, 2);
      expect(new Set(Object.values(index.weight_map)).size).toBe(2);

      const { wrapped, opened, closed } = counting((await openModel(dir)).files);
      const sharded = await (await openModel(wrapped)).weights();
      expect(sharded).toBeInstanceOf(ShardedCheckpoint);
      expect(sharded.metadata).toEqual({ total_size: dtype === 'F32' ? 60 : 30 });
      expect(sharded.names()).toEqual(single.names());
      expect(opened).toEqual([]); // nothing read yet
      expect(Array.from(await sharded.readFloat32('layers.0.bias'))).toEqual(VALUES.b);
      expect(opened).toEqual([torchShardName(1, 2)]); // only the shard holding it
      for (const name of single.names()) {
        const [want, got] = [await single.info(name), await sharded.info(name)];
        expect({ dtype: got.dtype, shape: got.shape, byteLength: got.byteLength }, name).toEqual({ dtype: want.dtype, shape: want.shape, byteLength: want.byteLength });
        expect(await sharded.readBytes(name), name).toEqual(await single.readBytes(name));
        expect(await sharded.readFloat32(name), name).toEqual(await single.readFloat32(name));
      }
      expect(Array.from(await sharded.readFloat32('layers.0.weight'))).toEqual(VALUES.a);
      expect(Array.from(await sharded.readFloat32('norm.weight'))).toEqual(VALUES.c);
      expect(new Set((await sharded.infos()).map((i) => i.file)).size).toBe(2);
      expect([...new Set(opened)].sort()).toEqual([torchShardName(0, 2), torchShardName(1, 2)]);
      expect(opened.length).toBe(2); // each shard opened once
      expect(closed).toEqual([]);
      await sharded.close();
      expect(closed.sort()).toEqual([torchShardName(0, 2), torchShardName(1, 2)]);
      await single.close();
    });
  }

  it('openShardedTorchCheckpoint reads from any byte sources, a strided (copied) view included', async () => {
    // `t` is a transposed view of a 2x3 storage: the shard reader gathers it.
    const pickle = new PickleBuilder().proto(2).global('collections', 'OrderedDict').emptyTuple().reduce().mark();
    pickle.unicode('t').tensor({ key: '0', numel: 6, shape: [3, 2], stride: [1, 3] }).setitems().stop();
    const shard = torchArchive(pickle.done(), { '0': f32Bytes([0, 1, 2, 3, 4, 5]) });
    const other = torchFile({ u: { dtype: 'F32', shape: [1], bytes: f32Bytes([9]) } });
    const bytes = new Map([['one.bin', shard], ['two.bin', other]]);
    const checkpoint = openShardedTorchCheckpoint(JSON.stringify({ weight_map: { t: 'one.bin', u: 'two.bin' } }), (name) => bufferSource(bytes.get(name)!, name));
    expect(checkpoint.name).toBe('pytorch_model.bin.index.json');
    expect(Array.from(await checkpoint.readFloat32('t'))).toEqual([0, 3, 1, 4, 2, 5]);
    const file = await checkpoint.fileOf('t');
    const info = file.tensor('t');
    expect(Array.from(new Float32Array((await file.source.read(info.offset, info.byteLength)).slice().buffer))).toEqual([0, 3, 1, 4, 2, 5]);
    expect(Array.from(await checkpoint.readFloat32('u'))).toEqual([9]);
    expect((await checkpoint.shard('one.bin'))).toBeInstanceOf(TorchCheckpoint);
    await checkpoint.close();
  });

  it('the mamba_ssm fixture re-sharded over 3 files loads through openModel and loadWeights like the single file', async () => {
    const single = await openTorchCheckpoint(`${MAMBA_SSM}mamba2/pytorch_model.bin`);
    const tensors: Record<string, TorchTensorBytes> = {};
    for (const name of single.names()) {
      const info = await single.info(name);
      tensors[name] = { dtype: info.dtype, shape: [...info.shape], bytes: (await single.readBytes(name)).slice() };
    }
    const { files, index } = shardTorch(tensors, 3);
    const dir = folder([...files, ['pytorch_model.bin.index.json', index], ['config.json', readFileSync(`${MAMBA_SSM}mamba2/config.json`)]]);
    const model = await openModel(dir);
    expect((await model.config()).positiveInt('d_model')).toBe(32);
    const sharded = await model.weights();
    expect(sharded).toBeInstanceOf(ShardedCheckpoint);
    expect(new Set(sharded.names())).toEqual(new Set(single.names()));
    const got = await readAll(sharded);
    for (const name of single.names()) expect(got.get(name), name).toEqual(await single.readBytes(name));

    const rt = await getTestRuntime();
    const fromShards = await loadWeights(rt, sharded, { dtype: 'f32' });
    const fromFile = await loadWeights(rt, single, { dtype: 'f32' });
    expect([...fromShards.keys()].sort()).toEqual([...fromFile.keys()].sort());
    for (const [name, tensor] of fromFile) {
      expect(fromShards.get(name)!.shape, name).toEqual(tensor.shape);
      expect(await rt.readFloat(fromShards.get(name)!), name).toEqual(await rt.readFloat(tensor));
    }
    for (const t of [...fromShards.values(), ...fromFile.values()]) t.dispose();
    await sharded.close();
    await single.close();
  });

  it('works over HTTP with Range requests only', async () => {
    const { dir } = shardedFolder(threeTensors('F32'), 2);
    const server = await serveFiles(dir);
    try {
      const checkpoint = await (await openModel(server.url)).weights();
      expect(Array.from(await checkpoint.readFloat32('norm.weight'))).toEqual(VALUES.c);
      expect(Array.from(await checkpoint.readFloat32('layers.0.weight'))).toEqual(VALUES.a);
      const bins = server.requests.filter((r) => r.path.endsWith('.bin'));
      expect(bins.length).toBeGreaterThan(0);
      expect(bins.every((r) => r.range !== undefined)).toBe(true);
      await checkpoint.close();
    } finally {
      await server.close();
    }
  });
});

describe('the weights lookup order', () => {
  const tensors = threeTensors('F32');
  const { files, index } = shardTorch(tensors, 2);
  const shardFiles = [...files, ['pytorch_model.bin.index.json', index]] as [string, Uint8Array | object][];
  const safetensors = writeSafetensors({ s: { dtype: 'F32', shape: [1], data: new Float32Array([7]) } });

  it('model.safetensors, then model.safetensors.index.json, then pytorch_model.bin, then pytorch_model.bin.index.json', async () => {
    const weightsOf = async (dir: string) => (await openModel(dir)).weights();
    const onlyIndex = await weightsOf(folder(shardFiles));
    expect(onlyIndex).toBeInstanceOf(ShardedCheckpoint);
    expect(await (onlyIndex as ShardedCheckpoint<TorchCheckpoint>).shard(torchShardName(0, 2))).toBeInstanceOf(TorchCheckpoint);

    const withSingle = await weightsOf(folder([...shardFiles, ['pytorch_model.bin', torchFile({ x: { dtype: 'F32', shape: [1], bytes: f32Bytes([5]) } })]]));
    expect(withSingle).toBeInstanceOf(TorchCheckpoint);
    expect(withSingle.names()).toEqual(['x']);

    const withSafetensorsIndex = await weightsOf(folder([...shardFiles, ['model.safetensors.index.json', { weight_map: { s: 's.safetensors' } }], ['s.safetensors', safetensors]]));
    expect(withSafetensorsIndex.names()).toEqual(['s']);
    expect(await (withSafetensorsIndex as ShardedCheckpoint).shard('s.safetensors')).toBeInstanceOf(SafetensorsFile);

    const withSafetensors = await weightsOf(folder([...shardFiles, ['model.safetensors', safetensors]]));
    expect(withSafetensors).toBeInstanceOf(SafetensorsFile);

    await expect(weightsOf(folder([['config.json', '{}']]))).rejects.toMatchObject({
      code: 'CHECKPOINT_FILE_NOT_FOUND',
      message: expect.stringMatching(/none of model\.safetensors, model\.safetensors\.index\.json, pytorch_model\.bin and pytorch_model\.bin\.index\.json was found$/),
    });
    for (const c of [onlyIndex, withSingle, withSafetensorsIndex, withSafetensors]) await c.close();
  });
});

describe('broken sharded .bin checkpoints give one typed error each', () => {
  const tensors = threeTensors('F32');
  const shard0 = torchShardName(0, 2);
  const shard1 = torchShardName(1, 2);

  it('a weight_map naming a missing shard: CHECKPOINT_SHARD_MISSING naming the shard and the tensor', async () => {
    const { files, index } = shardTorch(tensors, 2);
    const dir = folder([[shard0, files.get(shard0)!], ['pytorch_model.bin.index.json', index]]);
    const checkpoint = await (await openModel(dir)).weights();
    expect(Array.from(await checkpoint.readFloat32('layers.0.weight'))).toEqual(VALUES.a); // the present shard still reads
    await expect(checkpoint.read('layers.0.bias')).rejects.toMatchObject({
      code: 'CHECKPOINT_SHARD_MISSING',
      tensor: 'layers.0.bias',
      file: join(dir, shard1),
      message: expect.stringContaining(`shard "${shard1}" is missing (it should hold "layers.0.bias")`),
    });
    expect(await code(checkpoint.infos())).toBe('CHECKPOINT_SHARD_MISSING');
    await checkpoint.close();
  });

  it('a tensor listed in the index but absent from its shard: CHECKPOINT_INDEX_MISMATCH', async () => {
    const { files, index } = shardTorch(tensors, 2);
    index.weight_map['ghost.weight'] = shard0;
    const checkpoint = await (await openModel(folder([...files, ['pytorch_model.bin.index.json', index]]))).weights();
    await expect(checkpoint.readBytes('ghost.weight')).rejects.toMatchObject({ code: 'CHECKPOINT_INDEX_MISMATCH', tensor: 'ghost.weight', message: expect.stringContaining(`puts "ghost.weight" in "${shard0}", which does not hold it`) });
    expect(await code(checkpoint.infos())).toBe('CHECKPOINT_INDEX_MISMATCH');
    await checkpoint.close();
  });

  it('a tensor present in two shards: CHECKPOINT_DUPLICATE_TENSOR when the second shard opens', async () => {
    const { files, index } = shardTorch(tensors, 2);
    // shard 1 also holds layers.0.weight, which the weight_map puts in shard 0
    const twice = { 'layers.0.bias': tensors['layers.0.bias'], 'layers.0.weight': { ...tensors['layers.0.weight'], bytes: f32Bytes([0, 0, 0, 0, 0, 0]) } };
    const dir = folder([[shard0, files.get(shard0)!], [shard1, torchFile(twice)], ['pytorch_model.bin.index.json', index]]);
    const checkpoint = await (await openModel(dir)).weights();
    expect(Array.from(await checkpoint.readFloat32('layers.0.weight'))).toEqual(VALUES.a);
    await expect(checkpoint.readFloat32('layers.0.bias')).rejects.toMatchObject({
      code: 'CHECKPOINT_DUPLICATE_TENSOR',
      tensor: 'layers.0.weight',
      file: join(dir, shard1),
      message: expect.stringContaining(`"layers.0.weight" is in shard "${shard1}" too, but the weight_map puts it in "${shard0}"`),
    });
    expect(await code(readAll(checkpoint))).toBe('CHECKPOINT_DUPLICATE_TENSOR');
    await checkpoint.close();
  });

  it('the same rule holds for safetensors shards', async () => {
    const t = (v: number) => ({ dtype: 'F32' as const, shape: [1], data: new Float32Array([v]) });
    const dir = folder([
      ['a.safetensors', writeSafetensors({ x: t(1) })],
      ['b.safetensors', writeSafetensors({ x: t(2), y: t(3) })],
      ['model.safetensors.index.json', { weight_map: { x: 'a.safetensors', y: 'b.safetensors' } }],
    ]);
    const checkpoint = await (await openModel(dir)).weights();
    expect(await code(checkpoint.read('y'))).toBe('CHECKPOINT_DUPLICATE_TENSOR');
    await checkpoint.close();
  });

  for (const [what, text, message] of [
    ['not JSON', '{"weight_map": ', /not valid JSON/],
    ['a JSON array', '[]', /not a JSON object/],
    ['without weight_map', JSON.stringify({ metadata: { total_size: 1 } }), /"weight_map" is missing/],
    ['with a weight_map that is a list', JSON.stringify({ weight_map: [shard0] }), /"weight_map" is missing or not an object/],
    ['with a non-string shard', JSON.stringify({ weight_map: { 'norm.weight': 1 } }), /is not a file name/],
  ] as const) {
    it(`an index ${what}: CHECKPOINT_INDEX_INVALID naming the index`, async () => {
      const { files } = shardTorch(tensors, 2);
      const dir = folder([...files, ['pytorch_model.bin.index.json', text]]);
      await expect((await openModel(dir)).weights()).rejects.toMatchObject({ code: 'CHECKPOINT_INDEX_INVALID', file: join(dir, 'pytorch_model.bin.index.json'), message: expect.stringMatching(message) });
    });
  }

  it('a shard that is not a valid restricted .bin: UNSAFE_PICKLE for code, TORCH_INVALID for garbage or a cut file', async () => {
    const { files, index } = shardTorch(tensors, 2);
    const system = new PickleBuilder().proto(2).global('os', 'system').unicode('echo pwned').raw(0x85).reduce().stop().done();
    const cases: [Uint8Array, CheckpointErrorCode][] = [
      [torchArchive(system, {}), 'UNSAFE_PICKLE'],
      [new TextEncoder().encode('not a zip'), 'TORCH_INVALID'],
      [files.get(shard1)!.subarray(0, files.get(shard1)!.length - 30), 'TORCH_INVALID'],
      [writeSafetensors({ 'layers.0.bias': { dtype: 'F32', shape: [4], data: new Float32Array(VALUES.b) } }), 'TORCH_INVALID'],
    ];
    for (const [bytes, expected] of cases) {
      const dir = folder([[shard0, files.get(shard0)!], [shard1, bytes], ['pytorch_model.bin.index.json', index]]);
      const checkpoint = await (await openModel(dir)).weights();
      expect(Array.from(await checkpoint.readFloat32('norm.weight'))).toEqual(VALUES.c); // shard 0 is fine
      await expect(checkpoint.read('layers.0.bias')).rejects.toMatchObject({ code: expected, file: join(dir, shard1) });
      await checkpoint.close();
    }
  });

  it('shard names with ../, separators or percent-encoding are refused; a shard linked out of the folder is not read', async () => {
    const { files } = shardTorch(tensors, 2);
    writeFileSync(join(work, 'outside.bin'), files.get(shard1)!);
    for (const name of ['../outside.bin', `../${work.split('/').pop()}/outside.bin`, '/etc/passwd', 'sub/x.bin', 'a\\b.bin', '..']) {
      const dir = folder([...files, ['pytorch_model.bin.index.json', { weight_map: { 'norm.weight': shard0, 'layers.0.bias': name } }]]);
      await expect((await openModel(dir)).weights(), name).rejects.toMatchObject({ code: 'CHECKPOINT_INDEX_INVALID', message: expect.stringContaining('not a plain file name') });
      expect(() => openShardedTorchCheckpoint({ weight_map: { x: name } }, () => bufferSource(new Uint8Array(0)))).toThrow(/not a plain file name/);
    }
    const dir = folder([[shard0, files.get(shard0)!], ['pytorch_model.bin.index.json', { weight_map: { 'norm.weight': shard0, 'layers.0.bias': shard1 } }]]);
    symlinkSync(join(work, 'outside.bin'), join(dir, shard1));
    const checkpoint = await (await openModel(dir)).weights();
    await expect(checkpoint.readBytes('layers.0.bias')).rejects.toMatchObject({ code: 'CHECKPOINT_OUTSIDE_FOLDER', message: expect.stringMatching(/resolves to .*outside\.bin, outside the folder/) });
    await checkpoint.close();

    // over HTTP, %2e%2e%2f is `../` once decoded: refused before any request for it
    const root = join(work, 'http');
    mkdirSync(join(root, 'model'), { recursive: true });
    writeFileSync(join(root, 'secret.bin'), files.get(shard1)!);
    writeFileSync(join(root, 'model', 'pytorch_model.bin.index.json'), JSON.stringify({ weight_map: { w: '%2e%2e%2fsecret.bin' } }));
    const server = await serveFiles(root);
    try {
      const remote = await (await openModel(`${server.url}model/`)).weights();
      expect(await code(remote.readBytes('w'))).toBe('CHECKPOINT_OUTSIDE_FOLDER');
      expect(server.requests.some((r) => r.path.includes('secret'))).toBe(false);
    } finally {
      await server.close();
    }
  });

  it('a shard that is a FIFO or a directory is refused at once (CHECKPOINT_IO), nothing blocks', async () => {
    const { files, index } = shardTorch(tensors, 2);
    const dir = folder([[shard0, files.get(shard0)!], ['pytorch_model.bin.index.json', index]]);
    execFileSync('mkfifo', [join(dir, shard1)]);
    const t0 = performance.now();
    const checkpoint = await (await openModel(dir)).weights();
    await expect(checkpoint.read('layers.0.bias')).rejects.toMatchObject({ code: 'CHECKPOINT_IO', message: expect.stringMatching(/not a regular file \(a FIFO\)/) });
    rmSync(join(dir, shard1));
    mkdirSync(join(dir, shard1));
    await expect(checkpoint.read('layers.0.bias')).rejects.toMatchObject({ code: 'CHECKPOINT_IO', message: expect.stringMatching(/a directory/) });
    expect(performance.now() - t0).toBeLessThan(2_000);
    await checkpoint.close();
  });
});
