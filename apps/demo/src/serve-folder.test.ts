import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { type Server, createServer, get } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { folderMiddleware, parseRange } from '../serve-folder';

describe('parseRange', () => {
  it('reads the three forms of a byte range', () => {
    expect(parseRange(undefined, 10)).toBeNull();
    expect(parseRange('bytes=0-0', 10)).toEqual({ start: 0, end: 0 });
    expect(parseRange('bytes=3-', 10)).toEqual({ start: 3, end: 9 });
    expect(parseRange('bytes=-4', 10)).toEqual({ start: 6, end: 9 });
    expect(parseRange('bytes=5-100', 10)).toEqual({ start: 5, end: 9 });
  });
  it('refuses unsatisfiable or malformed ranges', () => {
    expect(parseRange('bytes=10-12', 10)).toBe('invalid');
    expect(parseRange('bytes=4-2', 10)).toBe('invalid');
    expect(parseRange('bytes=-', 10)).toBe('invalid');
    expect(parseRange('items=0-1', 10)).toBe('invalid');
  });
});

describe('folderMiddleware', () => {
  let dir: string;
  let server: Server;
  let base: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'serve-folder-'));
    mkdirSync(join(dir, 'm'));
    writeFileSync(join(dir, 'm', 'model.safetensors'), Buffer.from('0123456789'));
    writeFileSync(join(dir, 'secret.txt'), 'no');
    const serve = folderMiddleware({ prefix: '/models/', dir: join(dir, 'm') });
    server = createServer((req, res) =>
      serve(req, res, () => {
        res.statusCode = 418;
        res.end('next');
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers a Range request with 206 and exactly those bytes', async () => {
    const res = await fetch(`${base}/models/model.safetensors`, { headers: { Range: 'bytes=2-5' } });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe('bytes 2-5/10');
    expect(await res.text()).toBe('2345');
  });
  it('serves the whole file without a Range, 416 past the end, 404 for a missing file', async () => {
    const whole = await fetch(`${base}/models/model.safetensors`);
    expect(whole.status).toBe(200);
    expect(await whole.text()).toBe('0123456789');
    const past = await fetch(`${base}/models/model.safetensors`, { headers: { Range: 'bytes=20-30' } });
    expect(past.status).toBe(416);
    expect(past.headers.get('content-range')).toBe('bytes */10');
    expect((await fetch(`${base}/models/config.json`)).status).toBe(404);
  });
  it('lists a folder’s files as JSON, and 404s a folder that is not there', async () => {
    mkdirSync(join(dir, 'm', 'sub'), { recursive: true });
    writeFileSync(join(dir, 'm', 'sub', 'config.json'), '{}');
    writeFileSync(join(dir, 'm', '.hidden'), 'x');
    const root = await fetch(`${base}/models/`);
    expect(root.status).toBe(200);
    expect(root.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await root.json()).toEqual({ files: ['model.safetensors'] });
    expect(await (await fetch(`${base}/models/sub/`)).json()).toEqual({ files: ['config.json'] });
    expect((await fetch(`${base}/models/nothing/`)).status).toBe(404);
  });
  it('never serves outside its folder and leaves other URLs to the next handler', async () => {
    // fetch() would normalise the dots away; a raw request keeps them, as an attacker's would.
    const raw = (path: string) => new Promise<number>((resolve, reject) => get({ host: '127.0.0.1', port: new URL(base).port, path }, (res) => (res.resume(), resolve(res.statusCode ?? 0))).on('error', reject));
    expect(await raw('/models/..%2fsecret.txt')).toBe(403);
    expect(await raw('/models/%2e%2e/secret.txt')).toBe(403);
    expect((await fetch(`${base}/other/model.safetensors`)).status).toBe(418);
  });
});
