import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { toFloat32 } from './dtypes.js';
import { CheckpointError } from './errors.js';
import { openModel } from './open-model.js';
import { readPickle } from './pickle-reader.js';
import { openSafetensors } from './safetensors.js';
import { bufferSource } from './sources.js';
import { openTorchCheckpoint } from './torch-checkpoint.js';
import { serveFiles } from './test-helpers.js';
import { PickleBuilder, f32Bytes, stateDictPickle, torchArchive, writeZip } from './torch-test-helpers.js';
import { viewCheckpoint } from './view-checkpoint.js';

const MAMBA_SSM = fileURLToPath(new URL('../../../fixtures/mamba-ssm/', import.meta.url));
const SAMPLES = `${MAMBA_SSM}torch-samples/`;

async function code(task: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof task === 'function' ? task() : task);
  } catch (error) {
    if (CheckpointError.isCheckpointError(error)) return error.code;
    throw error;
  }
  return 'ok';
}

/** A one-tensor archive around a pickle. */
function withPickle(pickle: Uint8Array, storages: Record<string, Uint8Array> = { '0': f32Bytes([1, 2, 3, 4]) }) {
  return bufferSource(torchArchive(pickle, storages), 'hand.bin');
}

describe('openTorchCheckpoint on files torch.save wrote (PyTorch 2.11)', () => {
  it('reads every dtype, views sharing a storage at an offset, non-contiguous views (copied), a scalar and an empty tensor', async () => {
    const expected = JSON.parse(readFileSync(`${SAMPLES}sample.json`, 'utf8')) as Record<string, { dtype: string; shape: number[]; stride: number[]; offset: number; values: number[] }>;
    const ckpt = await openTorchCheckpoint(`${SAMPLES}sample.bin`);
    expect(ckpt.names()).toEqual(Object.keys(expected));
    const dtypes: Record<string, string> = {
      'torch.float32': 'F32', 'torch.float16': 'F16', 'torch.bfloat16': 'BF16', 'torch.float64': 'F64', 'torch.int64': 'I64',
      'torch.int32': 'I32', 'torch.uint8': 'U8', 'torch.bool': 'BOOL',
    };
    for (const [name, e] of Object.entries(expected)) {
      const info = await ckpt.info(name);
      expect(info.dtype, name).toBe(dtypes[e.dtype]);
      expect(info.shape, name).toEqual(e.shape);
      const t = await ckpt.read(name);
      const values = t.dtype === 'I64' ? Array.from(t.data as BigInt64Array, Number) : t.dtype === 'BOOL' || t.dtype === 'U8' ? Array.from(t.data as Uint8Array) : Array.from(toFloat32(t.data, t.dtype));
      expect(values, name).toEqual(e.values);
    }
    // `rows` is big[1:3]: the same storage as `f32`, 6 elements in; nothing copied
    expect((await ckpt.info('rows')).offset).toBe((await ckpt.info('f32')).offset + 6 * 4);
    expect(ckpt.isCopied('rows')).toBe(false);
    expect(ckpt.isCopied('col') && ckpt.isCopied('t')).toBe(true);
    // a copied view is its own file for loaders, with the gathered bytes
    const file = await ckpt.fileOf('t');
    const info = file.tensor('t');
    expect(Array.from(new Float32Array((await file.source.read(info.offset, info.byteLength)).slice().buffer))).toEqual(expected.t.values);
    await ckpt.close();
  });

  it('refuses the legacy (pre-1.6) format with TORCH_LEGACY_FORMAT', async () => {
    expect(await code(openTorchCheckpoint(`${SAMPLES}legacy.bin`))).toBe('TORCH_LEGACY_FORMAT');
  });

  it('reads the mamba_ssm fixture: the same tensors as its safetensors copy, the tied head sharing the embedding storage', async () => {
    const bin = await openTorchCheckpoint(`${MAMBA_SSM}mamba1/pytorch_model.bin`);
    const st = await openSafetensors(`${MAMBA_SSM}mamba1/model.safetensors`);
    expect(bin.names().sort()).toEqual([...st.names(), 'lm_head.weight'].sort());
    for (const name of st.names()) {
      expect((await bin.info(name)).shape, name).toEqual((await st.info(name)).shape);
      expect(await bin.readBytes(name), name).toEqual(await st.readBytes(name));
    }
    expect((await bin.info('lm_head.weight')).offset).toBe((await bin.info('backbone.embedding.weight')).offset);
    await bin.close();
    await st.close();
  });

  it('reads a pytorch_model.bin over HTTP with Range requests, the same bytes as from disk', async () => {
    const server = await serveFiles(MAMBA_SSM);
    try {
      const remote = await (await openModel(`${server.url}hybrid/`)).weights();
      const local = await openTorchCheckpoint(`${MAMBA_SSM}hybrid/pytorch_model.bin`);
      expect(remote.names()).toEqual(local.names());
      for (const name of ['backbone.embedding.weight', 'backbone.layers.1.mixer.in_proj.weight', 'backbone.norm_f.weight']) expect(await remote.readBytes(name), name).toEqual(await local.readBytes(name));
      expect(server.requests.every((r) => r.method !== 'GET' || r.range !== undefined || !r.path.endsWith('.bin'))).toBe(true); // never the whole file
      await remote.close();
      await local.close();
    } finally {
      await server.close();
    }
  });

  it('openModel falls back to pytorch_model.bin', async () => {
    const ckpt = await (await openModel(`${MAMBA_SSM}mamba2`)).weights();
    expect(ckpt.metadata).toEqual({ format: 'pt' });
    expect((await ckpt.info('backbone.embedding.weight')).shape).toEqual([336, 32]);
    await ckpt.close();
  });
});

describe('hand-built archives', () => {
  it('reads a state dict with _metadata (BUILD on the OrderedDict), shared storages and offsets', async () => {
    const pickle = stateDictPickle(
      {
        a: { key: '0', numel: 6, shape: [2, 3] },
        b: { key: '0', numel: 6, offset: 3, shape: [3] },
        c: { key: '1', numel: 2, shape: [2], storageType: 'HalfStorage' },
      },
      { metadata: true },
    );
    const ckpt = await openTorchCheckpoint(bufferSource(torchArchive(pickle, { '0': f32Bytes([1, 2, 3, 4, 5, 6]), '1': new Uint8Array(new Uint16Array([0x3c00, 0xc000]).buffer) }), 'hand.bin'));
    expect(Array.from(await ckpt.readFloat32('a'))).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(await ckpt.readFloat32('b'))).toEqual([4, 5, 6]);
    expect(Array.from(await ckpt.readFloat32('c'))).toEqual([1, -2]);
  });

  it('refuses os.system, eval and every other global outside the allow-list, before anything is called', async () => {
    const system = new PickleBuilder().proto(2).global('os', 'system').unicode('echo pwned').raw(0x85).reduce().stop().done();
    await expect(openTorchCheckpoint(withPickle(system))).rejects.toMatchObject({ code: 'UNSAFE_PICKLE', message: expect.stringContaining('"os.system"') });
    for (const [module, name] of [['builtins', 'eval'], ['builtins', 'getattr'], ['posix', 'system'], ['subprocess', 'Popen'], ['torch', 'load'], ['torch.serialization', '_get_layout'], ['numpy.core.multiarray', '_reconstruct']]) {
      expect(await code(() => readPickle(new PickleBuilder().proto(2).global(module, name).stop().done(), 'x')), `${module}.${name}`).toBe('UNSAFE_PICKLE');
    }
    // STACK_GLOBAL (protocol 4) is checked the same way
    const stacked = new PickleBuilder().proto(4).shortUnicode('os').shortUnicode('system').raw(0x93).stop().done();
    expect(await code(() => readPickle(stacked, 'x'))).toBe('UNSAFE_PICKLE');
  });

  it('refuses REDUCE of anything but the allow-listed functions, and object-building opcodes', async () => {
    const cases: Record<string, Uint8Array> = {
      // calling a storage class (only valid inside a persistent id)
      storageCall: new PickleBuilder().proto(2).global('torch', 'FloatStorage').emptyTuple().reduce().stop().done(),
      // calling a string / a tuple
      stringCall: new PickleBuilder().proto(2).unicode('os.system').emptyTuple().reduce().stop().done(),
      // OrderedDict called with arguments (its items as a list of pairs would run __init__ on them)
      orderedDictArgs: new PickleBuilder().proto(2).global('collections', 'OrderedDict').mark().emptyTuple().tuple().reduce().stop().done(),
      // INST, OBJ, NEWOBJ, EXT1, text PERSID
      inst: new PickleBuilder().proto(2).mark().raw(0x69, ...new TextEncoder().encode('os\nsystem\n')).stop().done(),
      obj: new PickleBuilder().proto(2).mark().global('collections', 'OrderedDict').raw(0x6f).stop().done(),
      newobj: new PickleBuilder().proto(2).global('collections', 'OrderedDict').emptyTuple().raw(0x81).stop().done(),
      ext1: new PickleBuilder().proto(2).raw(0x82, 1).stop().done(),
      persid: new PickleBuilder().proto(2).raw(0x50, ...new TextEncoder().encode('x\n')).stop().done(),
      // BUILD on something that is not a dict (would set attributes / call __setstate__)
      buildOnTensor: new PickleBuilder().proto(2).mark().unicode('storage').global('torch', 'FloatStorage').unicode('0').unicode('cpu').int(4).tuple().persid().emptyDict().build().stop().done(),
      // a persistent id that is not a storage
      pidNotStorage: new PickleBuilder().proto(2).mark().unicode('module').unicode('x').tuple().persid().stop().done(),
    };
    for (const [name, pickle] of Object.entries(cases)) expect(await code(() => readPickle(pickle, 'x')), name).toBe('UNSAFE_PICKLE');
  });

  it('malformed pickles are TORCH_INVALID: truncation, stack underflow, missing memo, wrong argument kinds', async () => {
    const good = stateDictPickle({ a: { key: '0', numel: 4, shape: [4] } });
    expect(await code(openTorchCheckpoint(withPickle(good)))).toBe('ok');
    for (let cut = 0; cut < good.length; cut++) expect(await code(() => readPickle(good.subarray(0, cut), 'x')), `cut ${cut}`).toMatch(/^(TORCH_INVALID|UNSAFE_PICKLE)$/);
    const cases: Record<string, Uint8Array> = {
      underflow: new PickleBuilder().proto(2).reduce().stop().done(),
      memo: new PickleBuilder().proto(2).get(7).stop().done(),
      noMark: new PickleBuilder().proto(2).tuple().stop().done(),
      twoValues: new PickleBuilder().proto(2).int(1).int(2).stop().done(),
      protocol9: new PickleBuilder().proto(9).int(1).stop().done(),
      unknownOpcode: new PickleBuilder().proto(2).raw(0xff).stop().done(),
      sizeNotTuple: new PickleBuilder()
        .proto(2)
        .global('torch._utils', '_rebuild_tensor_v2')
        .mark()
        .mark().unicode('storage').global('torch', 'FloatStorage').unicode('0').unicode('cpu').int(4).tuple().persid()
        .int(0).unicode('4').ints([1]).newFalse().emptyDict().tuple().reduce().stop().done(),
    };
    for (const [name, pickle] of Object.entries(cases)) expect(await code(() => readPickle(pickle, 'x')), name).toBe('TORCH_INVALID');
  });

  it('checks every tensor against its storage and the archive', async () => {
    const one = (t: Parameters<typeof stateDictPickle>[0]['x'], storages?: Record<string, Uint8Array>) => code(openTorchCheckpoint(withPickle(stateDictPickle({ x: t }), storages)));
    expect(await one({ key: '0', numel: 4, shape: [2, 2] })).toBe('ok');
    expect(await one({ key: '0', numel: 4, shape: [5] })).toBe('TORCH_INVALID'); // runs past the storage
    expect(await one({ key: '0', numel: 4, offset: 3, shape: [2] })).toBe('TORCH_INVALID');
    expect(await one({ key: '0', numel: 4, shape: [2, 2], stride: [3, 1] })).toBe('TORCH_INVALID'); // strided past the end
    expect(await one({ key: '0', numel: 5, shape: [4] })).toBe('TORCH_INVALID'); // numel disagrees with the member's bytes
    expect(await one({ key: '9', numel: 4, shape: [4] })).toBe('TORCH_INVALID'); // no such member
    expect(await one({ key: '0', numel: 2, shape: [2], storageType: 'ComplexFloatStorage' })).toBe('TORCH_UNSUPPORTED');
    expect(await one({ key: '0', numel: 4, shape: [2, 2], stride: [1, 2] })).toBe('ok'); // transposed: copied
    const t = await openTorchCheckpoint(withPickle(stateDictPickle({ x: { key: '0', numel: 4, shape: [2, 2], stride: [1, 2] } })));
    expect(Array.from(await t.readFloat32('x'))).toEqual([1, 3, 2, 4]);
  });

  it('refuses big-endian files, compressed members, non-tensor values and archives without data.pkl', async () => {
    const pickle = stateDictPickle({ x: { key: '0', numel: 4, shape: [4] } });
    expect(await code(openTorchCheckpoint(bufferSource(torchArchive(pickle, { '0': f32Bytes([1, 2, 3, 4]) }, { byteorder: 'big' }), 'be.bin')))).toBe('TORCH_BIG_ENDIAN');
    expect(await code(openTorchCheckpoint(bufferSource(torchArchive(pickle, { '0': f32Bytes([1, 2, 3, 4]) }, { byteorder: null }), 'old.bin')))).toBe('ok'); // no byteorder: little
    expect(await code(openTorchCheckpoint(bufferSource(torchArchive(pickle, { '0': f32Bytes([1, 2, 3, 4]) }, { method: 8 }), 'z.bin')))).toBe('TORCH_UNSUPPORTED');
    const notTensor = new PickleBuilder().proto(2).emptyDict().unicode('epoch').int(3).raw(0x73).stop().done();
    await expect(openTorchCheckpoint(withPickle(notTensor))).rejects.toMatchObject({ code: 'TORCH_UNSUPPORTED', tensor: 'epoch' });
    expect(await code(openTorchCheckpoint(bufferSource(writeZip([{ name: 'a/constants.pkl', data: new Uint8Array(3) }]), 'ts.bin')))).toBe('TORCH_INVALID');
    expect(await code(openTorchCheckpoint(bufferSource(new TextEncoder().encode('{"not": "a zip"}'), 'j.bin')))).toBe('TORCH_INVALID');
    expect(await code(openTorchCheckpoint(bufferSource(new Uint8Array(0), 'e.bin')))).toBe('TORCH_INVALID');
  });
});

describe('viewCheckpoint', () => {
  it('renames and row-slices without copying; sources it reads are hidden, the rest pass through', async () => {
    const pickle = stateDictPickle({ fused: { key: '0', numel: 12, shape: [4, 3] }, other: { key: '1', numel: 2, shape: [2] } });
    const base = await openTorchCheckpoint(bufferSource(torchArchive(pickle, { '0': f32Bytes([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]), '1': f32Bytes([7, 8]) }), 'v.bin'));
    const v = viewCheckpoint(base, { q: { source: 'fused', rows: [0, 1] }, kv: { source: 'fused', rows: [1, 4] }, renamed: { source: 'other' } });
    expect(v.names().sort()).toEqual(['kv', 'q', 'renamed']);
    expect((await v.info('kv')).shape).toEqual([3, 3]);
    expect(Array.from(await v.readFloat32('kv'))).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(Array.from(await v.readFloat32('q'))).toEqual([0, 1, 2]);
    expect(Array.from(await v.readFloat32('renamed'))).toEqual([7, 8]);
    expect(await v.fileOf('q')).toBe(await v.fileOf('kv')); // one file object per underlying file
    expect(await code(v.info('fused'))).toBe('CHECKPOINT_TENSOR_NOT_FOUND');
    expect(await code(viewCheckpoint(base, { bad: { source: 'fused', rows: [2, 5] } }).info('bad'))).toBe('CHECKPOINT_WEIGHTS_MISMATCH');
  });
});

describe('views that repeat elements', () => {
  it('a stride-0 view larger than its storage is refused, not allocated', async () => {
    const pickle = stateDictPickle({ x: { key: '0', numel: 4, shape: [100000000], stride: [0] } });
    await expect(openTorchCheckpoint(bufferSource(torchArchive(pickle, { '0': f32Bytes([1, 2, 3, 4]) }), 'e.bin'))).rejects.toMatchObject({ code: 'TORCH_UNSUPPORTED', tensor: 'x' });
  });
});

describe('zip64 archives (what torch.save writes past 4 GiB)', () => {
  it('reads sizes and offsets from the zip64 extra fields and end record', async () => {
    const pickle = stateDictPickle({ a: { key: '0', numel: 6, shape: [2, 3] }, b: { key: '1', numel: 2, shape: [2] } }, { metadata: true });
    const bytes = torchArchive(pickle, { '0': f32Bytes([1, 2, 3, 4, 5, 6]), '1': f32Bytes([-1, 7]) }, { zip64: true });
    const ckpt = await openTorchCheckpoint(bufferSource(bytes, 'z64.bin'));
    expect(Array.from(await ckpt.readFloat32('a'))).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(await ckpt.readFloat32('b'))).toEqual([-1, 7]);
    // the zip64 end record moved outside the file is refused, typed
    const broken = bytes.slice();
    const locator = broken.length - 22 - 20;
    new DataView(broken.buffer).setUint32(locator + 8, broken.length, true);
    expect(await code(openTorchCheckpoint(bufferSource(broken, 'z64.bin')))).toBe('TORCH_INVALID');
  });
});
