/**
 * A Vite plugin that serves folders of model files at URL prefixes, in `vite`
 * (dev) and `vite preview`, with HTTP Range requests (206 Partial Content): the
 * checkpoint loader reads safetensors by ranges and refuses a server that
 * ignores them. `vite build` copies the folders marked `copyOnBuild` into the
 * output, so a static host serves them the same way.
 */
import { createReadStream, existsSync } from 'node:fs';
import { cp, readdir, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join, normalize, resolve, sep } from 'node:path';
import type { Plugin } from 'vite';

/** One folder served at a URL prefix. */
export interface FolderMount {
  /** URL prefix, with leading and trailing slashes: `/models/`. */
  prefix: string;
  /** Folder on disk. */
  dir: string;
  /** Copy the folder to `<outDir><prefix>` on `vite build` (skipped when the folder is absent). */
  copyOnBuild?: boolean;
}

const TYPES: Record<string, string> = {
  '.json': 'application/json; charset=utf-8',
  '.jinja': 'text/plain; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.safetensors': 'application/octet-stream',
};

function contentType(path: string): string {
  const dot = path.lastIndexOf('.');
  return (dot >= 0 && TYPES[path.slice(dot)]) || 'application/octet-stream';
}

/** Parses one `bytes=a-b` / `bytes=a-` / `bytes=-n` range; null when absent, 'invalid' when unsatisfiable. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | null | 'invalid' {
  if (!header) return null;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return 'invalid';
  let start: number;
  let end: number;
  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0) return 'invalid';
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(match[1]);
    end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  }
  if (start >= size || end < start) return 'invalid';
  return { start, end };
}

/**
 * A connect middleware serving `dir` at `prefix` (GET and HEAD, Range aware); calls next() for other URLs.
 * A folder URL (ending in `/`) answers `{ "files": [...] }`, the names of its files: the demo
 * asks for it so it never probes for optional files that are absent (each probe is a 404 in the console).
 */
export function folderMiddleware(mount: FolderMount) {
  const root = resolve(mount.dir);
  return async (req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void): Promise<void> => {
    const url = req.url ?? '';
    if (!url.startsWith(mount.prefix) || (req.method !== 'GET' && req.method !== 'HEAD')) return next();
    let relative: string;
    try {
      relative = decodeURIComponent(url.slice(mount.prefix.length).split('?')[0]);
    } catch {
      res.statusCode = 400;
      res.end('bad path');
      return;
    }
    const path = normalize(join(root, relative));
    if (path !== root && !path.startsWith(root + sep)) {
      res.statusCode = 403;
      res.end('forbidden');
      return;
    }
    let size: number;
    try {
      const info = await stat(path);
      if (info.isDirectory() && (relative === '' || relative.endsWith('/'))) {
        const entries = await readdir(path, { withFileTypes: true });
        const body = JSON.stringify({ files: entries.filter((e) => e.isFile() && !e.name.startsWith('.')).map((e) => e.name).sort() });
        res.statusCode = 200;
        res.setHeader('Content-Type', 'application/json; charset=utf-8');
        res.setHeader('Cache-Control', 'no-cache');
        res.setHeader('Content-Length', String(Buffer.byteLength(body)));
        res.end(req.method === 'HEAD' ? undefined : body);
        return;
      }
      if (!info.isFile()) throw new Error('not a file');
      size = info.size;
    } catch {
      res.statusCode = 404;
      res.setHeader('Content-Type', 'text/plain');
      res.end(`${url}: not found`);
      return;
    }
    res.setHeader('Accept-Ranges', 'bytes');
    res.setHeader('Content-Type', contentType(path));
    res.setHeader('Cache-Control', 'no-cache');
    const range = parseRange(req.headers.range, size);
    if (range === 'invalid') {
      res.statusCode = 416;
      res.setHeader('Content-Range', `bytes */${size}`);
      res.end();
      return;
    }
    const { start, end } = range ?? { start: 0, end: size - 1 };
    res.statusCode = range ? 206 : 200;
    if (range) res.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
    res.setHeader('Content-Length', String(size === 0 ? 0 : end - start + 1));
    if (req.method === 'HEAD' || size === 0) {
      res.end();
      return;
    }
    const stream = createReadStream(path, { start, end });
    stream.on('error', (error) => next(error));
    stream.pipe(res);
  };
}

/**
 * Serves `mounts` in dev and preview; copies those marked `copyOnBuild` into the build.
 *
 * @example
 * ```ts
 * export default defineConfig({ plugins: [serveFolders([{ prefix: '/models/', dir: '../../models', copyOnBuild: true }])] });
 * ```
 */
export function serveFolders(mounts: readonly FolderMount[]): Plugin {
  let outDir = 'dist';
  return {
    name: 'statespace-serve-folders',
    configResolved(config) {
      outDir = resolve(config.root, config.build.outDir);
    },
    configureServer(server) {
      for (const m of mounts) server.middlewares.use(folderMiddleware(m));
    },
    configurePreviewServer(server) {
      for (const m of mounts) server.middlewares.use(folderMiddleware(m));
    },
    async closeBundle() {
      for (const m of mounts) {
        if (!m.copyOnBuild || !existsSync(m.dir)) continue;
        await cp(m.dir, join(outDir, m.prefix), { recursive: true });
      }
    },
  };
}
