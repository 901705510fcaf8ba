import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError } from './errors.js';
import { openModel, type ModelFiles } from './open-model.js';
import { openSafetensors } from './safetensors.js';
import { ShardedCheckpoint } from './sharded-checkpoint.js';
import { urlSource } from './sources.js';
import { FIXTURES, firstDifference, independentParse, serveFiles } from './test-helpers.js';
import { writeSafetensors, type TensorToWrite } from './write-safetensors.js';

let server: Awaited<ReturnType<typeof serveFiles>>;
let sharded: string;

/** Splits the jamba fixture into three shards plus an index, in a temp folder. */
async function writeShardedCopy(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'statespace-sharded-'));
  const source = await openSafetensors(join(FIXTURES, 'jamba', 'model.safetensors'));
  const names = source.names();
  const shards: Record<string, TensorToWrite>[] = [{}, {}, {}];
  const weightMap: Record<string, string> = {};
  for (const [i, name] of names.entries()) {
    const t = await source.read(name);
    shards[i % 3][name] = { dtype: t.dtype, shape: t.shape, data: t.data };
    weightMap[name] = `model-0000${(i % 3) + 1}-of-00003.safetensors`;
  }
  for (const [i, tensors] of shards.entries()) await writeFile(join(dir, `model-0000${i + 1}-of-00003.safetensors`), writeSafetensors(tensors, { format: 'pt' }));
  await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 955000 }, weight_map: weightMap }));
  await writeFile(join(dir, 'config.json'), await readFile(join(FIXTURES, 'jamba', 'config.json')));
  await source.close();
  return dir;
}

beforeAll(async () => {
  server = await serveFiles(FIXTURES);
  sharded = await writeShardedCopy();
});
afterAll(async () => {
  await server.close();
  await rm(sharded, { recursive: true, force: true });
});

describe('URL source (HTTP Range requests)', () => {
  it('reads every tensor of a fixture over HTTP with Range requests only', async () => {
    const bytes = new Uint8Array(await readFile(join(FIXTURES, 'mamba2', 'model.safetensors')));
    const expected = independentParse(bytes);
    server.requests.length = 0;
    const st = await openSafetensors(`${server.url}mamba2/model.safetensors`);
    // One request for the size, one for a prefix that holds the whole header.
    expect(server.requests.length).toBe(2);
    for (const [name, want] of expected) expect(firstDifference(await st.readFloat32(name), want.values)).toBe(-1);
    expect(server.requests.length).toBe(2 + expected.size);
    expect(server.requests.every((r) => r.range?.startsWith('bytes='))).toBe(true);
    const info = st.tensor('backbone.norm_f.weight');
    expect(server.requests.some((r) => r.range === `bytes=${info.offset}-${info.offset + info.byteLength - 1}`)).toBe(true);
  });

  it('a server that ignores Range gets CHECKPOINT_RANGE_UNSUPPORTED, not a full download', async () => {
    await expect(openSafetensors(`${server.url}norange/mamba2/model.safetensors`)).rejects.toMatchObject({ code: 'CHECKPOINT_RANGE_UNSUPPORTED', message: expect.stringMatching(/status 200, expected 206/) });
  });

  it('a missing URL gives CHECKPOINT_FILE_NOT_FOUND', async () => {
    await expect(openSafetensors(`${server.url}mamba2/nope.safetensors`)).rejects.toMatchObject({ code: 'CHECKPOINT_FILE_NOT_FOUND', file: `${server.url}mamba2/nope.safetensors` });
  });

  it('a refused connection gives CHECKPOINT_HTTP', async () => {
    const failing = (async () => {
      throw new TypeError('fetch failed');
    }) as unknown as typeof fetch;
    await expect(urlSource('http://127.0.0.1:9/x', { fetch: failing }).size()).rejects.toMatchObject({ code: 'CHECKPOINT_HTTP' });
  });

  it('finds the size with a HEAD request when Content-Range is not exposed (CORS)', async () => {
    const hidden = (async (url: string, init: RequestInit = {}) => {
      if (init.method === 'HEAD') return new Response(null, { status: 200, headers: { 'Content-Length': '1234' } });
      return new Response(new Uint8Array(1), { status: 206 });
    }) as unknown as typeof fetch;
    expect(await urlSource('http://x/y', { fetch: hidden }).size()).toBe(1234);
  });

  it('a body longer or shorter than the range asked for is refused', async () => {
    const lying = (extra: number) =>
      (async (_url: string, init: RequestInit) => {
        const range = new Headers(init.headers).get('range')!;
        const [, a, b] = /bytes=(\d+)-(\d+)/.exec(range)!.map(Number);
        return new Response(new Uint8Array(Math.max(0, b - a + 1 + extra)), { status: 206, headers: { 'Content-Range': `bytes ${a}-${b}/1000` } });
      }) as unknown as typeof fetch;
    await expect(urlSource('http://x/y', { fetch: lying(5) }).read(10, 20)).rejects.toMatchObject({ code: 'CHECKPOINT_HTTP', message: expect.stringMatching(/more than the 20 bytes/) });
    await expect(urlSource('http://x/y', { fetch: lying(-5) }).read(10, 20)).rejects.toMatchObject({ code: 'SAFETENSORS_TRUNCATED', message: expect.stringMatching(/sent 15 of 20 bytes/) });
    await expect(urlSource('http://x/y', { fetch: lying(0) }).read(990, 20)).rejects.toMatchObject({ code: 'SAFETENSORS_TRUNCATED' });
  });
});

describe('openModel', () => {
  const check = async (source: string | File[]) => {
    const model = await openModel(source);
    const config = await model.config();
    expect(config.string('model_type')).toBe('mamba2');
    expect(config.positiveInt('hidden_size')).toBe(64);
    const tokenizer = await model.tokenizer();
    expect(tokenizer.tokenizer).toBeUndefined();
    expect(tokenizer.generationConfig).toMatchObject({ bos_token_id: 0 });
    const weights = await model.weights();
    expect(weights.names().length).toBe(20);
    expect((await weights.info('backbone.embeddings.weight')).shape).toEqual([320, 64]);
    const values = await weights.readFloat32('backbone.norm_f.weight');
    expect(values.length).toBe(64);
    await weights.close();
    return values;
  };

  it('reads config, tokenizer files and weights from a folder path, a URL base and a list of Files alike', async () => {
    const dir = join(FIXTURES, 'mamba2');
    const fromPath = await check(dir);
    const fromUrl = await check(`${server.url}mamba2/`);
    const files = await Promise.all(
      ['config.json', 'generation_config.json', 'model.safetensors'].map(async (name) => new File([await readFile(join(dir, name))], name)),
    );
    const fromFiles = await check(files);
    const configBytes = await readFile(join(dir, 'config.json'));
    for (const source of [dir, `${server.url}mamba2/`, files]) {
      expect(firstDifference(await (await openModel(source)).readBytes('config.json'), configBytes)).toBe(-1);
    }
    expect(firstDifference(fromUrl, fromPath)).toBe(-1);
    expect(firstDifference(fromFiles, fromPath)).toBe(-1);
  });

  it('files picked as a folder (webkitRelativePath) are found by their name inside it', async () => {
    const file = new File([await readFile(join(FIXTURES, 'mamba2', 'config.json'))], 'config.json');
    Object.defineProperty(file, 'webkitRelativePath', { value: 'mamba2/config.json' });
    const model = await openModel([file]);
    expect((await model.config()).positiveInt('num_heads')).toBe(8);
    await expect(model.weights()).rejects.toMatchObject({ code: 'CHECKPOINT_FILE_NOT_FOUND', message: expect.stringMatching(/none of model.safetensors, model.safetensors.index.json, pytorch_model.bin and pytorch_model.bin.index.json was found/) });
  });

  it('a folder without config.json gives CHECKPOINT_FILE_NOT_FOUND naming it', async () => {
    const model = await openModel(FIXTURES);
    await expect(model.config()).rejects.toMatchObject({ code: 'CHECKPOINT_FILE_NOT_FOUND', file: expect.stringMatching(/config\.json$/) });
    const remote = await openModel(server.url);
    await expect(remote.config()).rejects.toMatchObject({ code: 'CHECKPOINT_FILE_NOT_FOUND' });
  });

  it('a config.json that is not JSON gives CONFIG_INVALID_JSON naming the file', async () => {
    const files: ModelFiles = {
      name: 'mem',
      source: () => {
        throw new Error('unused');
      },
      exists: async () => true,
      readText: async () => '{"hidden_size": 64,',
    };
    await expect((await openModel(files)).config()).rejects.toMatchObject({ code: 'CONFIG_INVALID_JSON', file: 'mem/config.json' });
  });
});

describe('sharded checkpoints', () => {
  it('opens shards lazily and reads every tensor like the single file', async () => {
    const opened: string[] = [];
    const base = await openModel(sharded);
    const counting: ModelFiles = { ...base.files, source: (file) => (file.includes('-of-') && opened.push(file), base.files.source(file)) };
    const checkpoint = await (await openModel(counting)).weights();
    expect(checkpoint).toBeInstanceOf(ShardedCheckpoint);
    expect(checkpoint.metadata).toEqual({ total_size: 955000 });
    expect(opened).toEqual([]);
    const original = independentParse(new Uint8Array(await readFile(join(FIXTURES, 'jamba', 'model.safetensors'))));
    const [first] = original.keys();
    expect(firstDifference(await checkpoint.readFloat32(first), original.get(first)!.values)).toBe(-1);
    expect(opened).toEqual(['model-00001-of-00003.safetensors']);
    expect(new Set(checkpoint.names())).toEqual(new Set(original.keys()));
    for (const [name, want] of original) {
      expect((await checkpoint.info(name)).shape).toEqual(want.shape);
      expect(firstDifference(await checkpoint.readFloat32(name), want.values)).toBe(-1);
    }
    expect(opened.length).toBe(3);
    await checkpoint.close();
  });

  it('works over HTTP too', async () => {
    const local = await serveFiles(sharded);
    try {
      const checkpoint = await (await openModel(local.url)).weights();
      const infos = await checkpoint.infos();
      expect(infos.length).toBe(checkpoint.names().length);
      expect(new Set(infos.map((i) => i.file)).size).toBe(3);
    } finally {
      await local.close();
    }
  });

  const withIndex = async (index: unknown, removeShard?: string) => {
    const dir = await mkdtemp(join(tmpdir(), 'statespace-bad-index-'));
    for (const n of [1, 2, 3]) {
      const name = `model-0000${n}-of-00003.safetensors`;
      if (name !== removeShard) await writeFile(join(dir, name), await readFile(join(sharded, name)));
    }
    await writeFile(join(dir, 'model.safetensors.index.json'), typeof index === 'string' ? index : JSON.stringify(index));
    return dir;
  };

  it('a shard named in the index that is missing gives CHECKPOINT_SHARD_MISSING naming shard and tensor', async () => {
    const index = JSON.parse(await readFile(join(sharded, 'model.safetensors.index.json'), 'utf8'));
    const dir = await withIndex(index, 'model-00002-of-00003.safetensors');
    const checkpoint = await (await openModel(dir)).weights();
    const inSecond = Object.keys(index.weight_map).find((k) => index.weight_map[k] === 'model-00002-of-00003.safetensors')!;
    const error = await checkpoint.read(inSecond).then(
      () => {
        throw new Error('expected a CheckpointError');
      },
      (e: unknown) => e as CheckpointError,
    );
    expect(error).toMatchObject({ code: 'CHECKPOINT_SHARD_MISSING', tensor: inSecond, file: join(dir, 'model-00002-of-00003.safetensors') });
    expect(error.message).toContain('"model-00002-of-00003.safetensors" is missing');
    await expect(checkpoint.infos()).rejects.toMatchObject({ code: 'CHECKPOINT_SHARD_MISSING' });
    await checkpoint.close();
    await rm(dir, { recursive: true });
  });

  it('an index that points a tensor at the wrong shard gives CHECKPOINT_INDEX_MISMATCH', async () => {
    const index = JSON.parse(await readFile(join(sharded, 'model.safetensors.index.json'), 'utf8'));
    const name = Object.keys(index.weight_map)[0];
    index.weight_map[name] = 'model-00002-of-00003.safetensors';
    const dir = await withIndex(index);
    const checkpoint = await (await openModel(dir)).weights();
    await expect(checkpoint.info(name)).rejects.toMatchObject({ code: 'CHECKPOINT_INDEX_MISMATCH', tensor: name });
    await checkpoint.close();
    await rm(dir, { recursive: true });
  });

  for (const [what, index, message] of [
    ['not JSON', '{"weight_map": ', /not valid JSON/],
    ['without weight_map', { metadata: {} }, /"weight_map" is missing/],
    ['with a path outside the folder', { weight_map: { a: '../secret.safetensors' } }, /not a plain file name/],
    ['with an absolute path', { weight_map: { a: '/etc/passwd' } }, /not a plain file name/],
    ['with a URL', { weight_map: { a: 'https://evil.example/x.safetensors' } }, /not a plain file name/],
    ['with a non-string shard', { weight_map: { a: 3 } }, /is not a file name/],
  ] as const) {
    it(`an index ${what} gives CHECKPOINT_INDEX_INVALID`, async () => {
      const dir = await withIndex(index);
      await expect((await openModel(dir)).weights()).rejects.toMatchObject({ code: 'CHECKPOINT_INDEX_INVALID', message: expect.stringMatching(message) });
      await rm(dir, { recursive: true });
    });
  }
});
