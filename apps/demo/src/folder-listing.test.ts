import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { openModel } from '@statespace/checkpoint';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { folderMiddleware } from '../serve-folder';
import { folderListing, listedFiles } from './folder-listing.js';
import { openQuietly } from './loader.js';
import { TextCodec } from './text.js';

// The mamba2 fixture has config.json, generation_config.json and the weights: no tokenizer files at all.
const fixture = fileURLToPath(new URL('../../../fixtures/hf-tiny/mamba2/', import.meta.url));

let server: Server;
let origin: string;
const requests: { method: string; url: string; status: number }[] = [];

beforeAll(async () => {
  const serve = folderMiddleware({ prefix: '/m/', dir: fixture });
  server = createServer((req, res) => {
    res.on('finish', () => requests.push({ method: req.method ?? '', url: req.url ?? '', status: res.statusCode }));
    void serve(req, res, () => {
      res.statusCode = 404;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => server?.close());
beforeEach(() => {
  requests.length = 0;
});

/** What the demo's loader reads of a folder, except the weights' tensors. */
async function readLikeTheLoader(folder: Awaited<ReturnType<typeof openModel>>): Promise<TextCodec> {
  await folder.config();
  const weights = await folder.weights();
  expect(weights.names().length).toBeGreaterThan(0);
  return TextCodec.fromFolder(folder, 512);
}

describe('loading a folder URL quietly', () => {
  it('reads the listing and asks for no file that is absent (no 404 for the optional tokenizer files)', async () => {
    const folder = await openQuietly(`${origin}/m/`, origin);
    const text = await readLikeTheLoader(folder);
    expect(text.hasTokenizer).toBe(false);
    expect(requests.filter((r) => r.status === 404)).toEqual([]);
    expect(requests[0]).toMatchObject({ url: '/m/', status: 200 });
    expect(await folder.exists('tokenizer.json')).toBe(false);
    expect(await folder.exists('config.json')).toBe(true);
  });

  it('probing without the listing is what made the 404s (the test above would see them)', async () => {
    await readLikeTheLoader(await openModel(`${origin}/m/`));
    const missing = requests.filter((r) => r.status === 404).map((r) => r.url.slice('/m/'.length));
    expect(missing).toEqual(expect.arrayContaining(['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']));
  });

  it('falls back to probing for other origins and for servers that give no listing', async () => {
    expect(await folderListing(`${origin}/m/`, 'http://elsewhere.example')).toBeNull();
    expect(requests).toEqual([]);
    expect(await folderListing(`${origin}/nothing/`, origin)).toBeNull();
    const html = async () => new Response('<html></html>', { headers: { 'content-type': 'text/html' } });
    expect(await folderListing(`${origin}/m/`, origin, html)).toBeNull();
  });

  it('lists a Hugging Face folder through the tree API', async () => {
    const asked: string[] = [];
    const hf = async (url: string) => {
      asked.push(url);
      return Response.json([
        { type: 'file', path: 'sub/config.json' },
        { type: 'directory', path: 'sub/deeper' },
        { type: 'file', path: 'sub/deeper/x.json' },
        { type: 'file', path: 'sub/tokenizer.json' },
      ]);
    };
    const names = await folderListing('https://huggingface.co/org/repo/resolve/main/sub/', origin, hf);
    expect(asked).toEqual(['https://huggingface.co/api/models/org/repo/tree/main/sub']);
    expect(names && [...names].sort()).toEqual(['config.json', 'tokenizer.json']);
  });

  it('treats a file outside the listing as absent without a request', async () => {
    const inner = (await openModel(`${origin}/m/`)).files;
    const files = listedFiles(inner, new Set(['config.json']));
    expect(await files.exists('tokenizer.json')).toBe(false);
    await expect(files.readText('tokenizer.json')).rejects.toMatchObject({ code: 'CHECKPOINT_FILE_NOT_FOUND' });
    await expect(files.source('model.safetensors').size()).rejects.toMatchObject({ code: 'CHECKPOINT_FILE_NOT_FOUND' });
    expect(requests).toEqual([]);
    expect(JSON.parse(await files.readText('config.json')).model_type).toBe('mamba2');
  });
});
