/**
 * Helpers shared by this package's tests (not exported): hand-made
 * safetensors bytes (valid or not), an independent parse of a file, and a
 * tiny HTTP server with Range support.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { join, normalize } from 'node:path';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

/** The tiny Hugging Face checkpoints recorded with transformers. */
export const FIXTURES = fileURLToPath(new URL('../../../fixtures/hf-tiny/', import.meta.url));
export const FAMILIES = ['mamba1', 'falcon_mamba', 'mamba2', 'jamba', 'bamba', 'llama', 'zamba2', 'qwen3_next'];

/**
 * Bytes of a safetensors file with any header text (valid or not) and data.
 * `headerLength` overrides the 8-byte length field.
 */
export function rawSafetensors(header: string | object, data: Uint8Array | number = 0, headerLength?: bigint | number): Uint8Array {
  const text = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const body = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + text.byteLength + body.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength ?? text.byteLength), true);
  out.set(text, 8);
  out.set(body, 8 + text.byteLength);
  return out;
}

/** An F32-only parse written without the package: DataView + JSON.parse. */
export function independentParse(bytes: Uint8Array): Map<string, { dtype: string; shape: number[]; values: Float32Array }> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, { dtype: string; shape: number[]; values: Float32Array }>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [a, b] = entry.data_offsets;
    const values = new Float32Array((b - a) / 4);
    for (let i = 0; i < values.length; i++) values[i] = view.getFloat32(8 + n + a + 4 * i, true);
    out.set(name, { dtype: entry.dtype, shape: entry.shape, values });
  }
  return out;
}

/**
 * Index of the first element where `a` and `b` differ bitwise (-1 when equal,
 * -2 when lengths differ). Far faster than a deep `toEqual` on big arrays.
 */
export function firstDifference(a: ArrayBufferView, b: ArrayBufferView): number {
  if (a.byteLength !== b.byteLength) return -2;
  const x = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  const y = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (x.equals(y)) return -1;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}

/** One request seen by {@link serveFiles}. */
export interface SeenRequest {
  method: string;
  path: string;
  range?: string;
}

/**
 * Serves files under `root` on 127.0.0.1 with `Range: bytes=a-b` support.
 * Paths under `/norange/` ignore the Range header (answer 200 with the whole file).
 */
export async function serveFiles(root: string): Promise<{ url: string; requests: SeenRequest[]; close: () => Promise<void> }> {
  const requests: SeenRequest[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const range = req.headers.range;
      const url = new URL(req.url ?? '/', 'http://localhost');
      requests.push({ method: req.method ?? 'GET', path: url.pathname, range });
      let path = decodeURIComponent(url.pathname);
      const noRange = path.startsWith('/norange/');
      if (noRange) path = path.slice('/norange'.length);
      const file = normalize(join(root, path));
      if (!file.startsWith(normalize(root))) {
        res.writeHead(403).end();
        return;
      }
      let size: number;
      try {
        const info = await stat(file);
        if (!info.isFile()) throw new Error('not a file');
        size = info.size;
      } catch {
        res.writeHead(404).end('not found');
        return;
      }
      const bytes = await readFile(file);
      const match = range && !noRange ? /^bytes=(\d+)-(\d*)$/.exec(range) : null;
      if (!match) {
        res.writeHead(200, { 'Content-Length': size, 'Accept-Ranges': 'bytes' });
        res.end(req.method === 'HEAD' ? undefined : bytes);
        return;
      }
      const start = Number(match[1]);
      const end = Math.min(match[2] ? Number(match[2]) : size - 1, size - 1);
      if (start >= size || start > end) {
        res.writeHead(416, { 'Content-Range': `bytes */${size}` }).end();
        return;
      }
      res.writeHead(206, { 'Content-Range': `bytes ${start}-${end}/${size}`, 'Content-Length': end - start + 1 });
      res.end(bytes.subarray(start, end + 1));
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
