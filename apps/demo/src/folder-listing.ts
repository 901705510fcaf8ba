/**
 * Knowing which files a model folder holds before asking for them. The loader
 * probes for optional files (tokenizer_config.json, special_tokens_map.json,
 * generation_config.json, chat_template.jinja); over HTTP each absent one is a
 * 404, which the browser prints in the console as an error however it is
 * handled. Where the server can list the folder (this demo's own server, and
 * Hugging Face's tree API) the demo reads the listing once and asks only for
 * files that are there.
 */
import { CheckpointError, type ModelFiles } from '@statespace/checkpoint';

type Fetch = (input: string, init?: RequestInit) => Promise<Response>;

/** `https://huggingface.co/<org>/<repo>/resolve/<revision>/<path>/` -> its tree API URL and the path's prefix. */
function huggingFaceTree(folder: URL): { api: string; prefix: string } | null {
  if (folder.hostname !== 'huggingface.co') return null;
  const parts = folder.pathname.split('/').filter(Boolean);
  const at = parts.indexOf('resolve');
  if (at !== 2 || parts.length < 4) return null;
  const [org, repo] = parts;
  const revision = parts[3];
  const sub = parts.slice(4).join('/');
  return { api: `https://huggingface.co/api/models/${org}/${repo}/tree/${revision}${sub ? `/${sub}` : ''}`, prefix: sub ? `${sub}/` : '' };
}

/**
 * The names of the files directly inside `folder` (an absolute URL ending in `/`),
 * or null when no listing can be had quietly (the caller then probes file by file).
 * Asked only of Hugging Face and of the page's own origin, which serves
 * `{ "files": [...] }` for a folder URL (serve-folder.ts).
 *
 * @example
 * ```ts
 * const names = await folderListing('http://127.0.0.1:5173/models/default/', location.origin);
 * names?.has('tokenizer.json');
 * ```
 */
export async function folderListing(folder: string, pageOrigin: string, fetchFn: Fetch = (input, init) => globalThis.fetch(input, init)): Promise<Set<string> | null> {
  const url = new URL(folder);
  try {
    const hf = huggingFaceTree(url);
    if (hf) {
      const response = await fetchFn(hf.api);
      if (!response.ok) return null;
      const entries = (await response.json()) as unknown;
      if (!Array.isArray(entries)) return null;
      return new Set(
        entries
          .filter((e): e is { type: string; path: string } => typeof e?.path === 'string' && e.type === 'file')
          .map((e) => e.path.slice(hf.prefix.length))
          .filter((name) => name.length > 0 && !name.includes('/')),
      );
    }
    if (url.origin !== pageOrigin) return null;
    const response = await fetchFn(url.toString(), { headers: { Accept: 'application/json' } });
    if (!response.ok || !/^application\/json/.test(response.headers.get('content-type') ?? '')) return null;
    const body = (await response.json()) as { files?: unknown };
    if (!Array.isArray(body?.files) || !body.files.every((f) => typeof f === 'string')) return null;
    return new Set(body.files as string[]);
  } catch {
    // No listing (offline, not JSON, blocked): probing still works.
    return null;
  }
}

/**
 * `files` restricted to the names in `listing`: a name outside it is absent
 * (`exists` false, reading throws `CHECKPOINT_FILE_NOT_FOUND`) without a request.
 *
 * @example
 * ```ts
 * const folder = await openModel(listedFiles((await openModel(url)).files, names));
 * ```
 */
export function listedFiles(files: ModelFiles, listing: ReadonlySet<string>): ModelFiles {
  const missing = (file: string) => new CheckpointError('CHECKPOINT_FILE_NOT_FOUND', `${files.name}${file}: not found (the folder holds ${[...listing].join(', ') || 'no files'})`, { file: `${files.name}${file}` });
  return {
    name: files.name,
    source: (file) => {
      if (listing.has(file)) return files.source(file);
      const fail = async (): Promise<never> => {
        throw missing(file);
      };
      return { name: `${files.name}${file}`, size: fail, read: fail, close: async () => {} };
    },
    exists: async (file) => listing.has(file),
    readText: async (file) => {
      if (!listing.has(file)) throw missing(file);
      return files.readText(file);
    },
  };
}
