/**
 * A model folder, wherever it is: a directory on disk (Node), a URL base
 * (e.g. `https://huggingface.co/<repo>/resolve/main/`) or the files a browser
 * user picked. It reads `config.json`, tokenizer files and the weights
 * (`model.safetensors`, `model.safetensors.index.json` and its shards,
 * `pytorch_model.bin`, or `pytorch_model.bin.index.json` and its shards).
 */
import { type ConfigReader, configReader, parseJson } from './config-reader.js';
import { CheckpointError } from './errors.js';
import { type Checkpoint, openSafetensors } from './safetensors.js';
import { openShardedCheckpoint, openShardedTorchCheckpoint } from './sharded-checkpoint.js';
import { openTorchCheckpoint } from './torch-checkpoint.js';
import { type ByteSource, type UrlSourceOptions, blobSource, fsError, isHttpUrl, isPlainFileName, lazyFileSource, nodeFs, urlSource } from './sources.js';

/** The largest text file (config, tokenizer, index) read into memory: far above the largest tokenizer.json (tens of MB). */
const MAX_TEXT_BYTES = 128 * 1024 * 1024;

/**
 * Access to the files of one folder. {@link openModel} makes one from a path,
 * a URL or a list of Files; implement it to read from anywhere else.
 */
export interface ModelFiles {
  /** The folder's name for messages (a path, a URL, or `files`). */
  readonly name: string;
  /** A byte source for `file` (reading a missing file throws `CHECKPOINT_FILE_NOT_FOUND`). */
  source(file: string): ByteSource;
  /** True when `file` exists. */
  exists(file: string): Promise<boolean>;
  /** The whole of `file` as UTF-8 text. Throws `CHECKPOINT_FILE_NOT_FOUND` when absent. */
  readText(file: string): Promise<string>;
}

/** What {@link openModel} accepts: a folder path (Node), an http(s) URL base, a list of `File`s, or a {@link ModelFiles}. */
export type ModelSource = string | URL | readonly File[] | ArrayLike<File> | ModelFiles;

/** The tokenizer files of a folder, parsed; each is undefined when absent. */
export interface TokenizerFiles {
  /** `tokenizer.json` (the fast tokenizer). */
  tokenizer?: unknown;
  /** `tokenizer_config.json`. */
  tokenizerConfig?: unknown;
  /** `special_tokens_map.json`. */
  specialTokensMap?: unknown;
  /** `generation_config.json`. */
  generationConfig?: unknown;
}

function joinPath(dir: string, file: string): string {
  return dir.endsWith('/') || dir.endsWith('\\') ? dir + file : `${dir}/${file}`;
}

/** True when `path` is `root` itself or lies under it (either separator). */
function isInside(path: string, root: string): boolean {
  if (path === root) return true;
  const base = root.endsWith('/') || root.endsWith('\\') ? root : root + '/';
  return path.startsWith(base) || path.startsWith(base.slice(0, -1) + '\\');
}

function outsideFolder(dir: string, file: string, why: string): CheckpointError {
  return new CheckpointError('CHECKPOINT_OUTSIDE_FOLDER', `${joinPath(dir, file)}: ${why}; files are read from inside the model folder ${dir} only`, { file: joinPath(dir, file) });
}

/**
 * The real paths a folder's files may resolve to: the folder itself and, for a
 * Hugging Face cache snapshot (`models--org--name/snapshots/<revision>/`, whose
 * files are symlinks to `../../blobs/<hash>`), that repository's `blobs` folder.
 */
async function allowedRoots(dir: string): Promise<string[]> {
  const fs = await nodeFs();
  let real: string;
  try {
    real = await fs.realpath(dir);
  } catch (cause) {
    throw fsError(dir, cause, 'resolving the folder');
  }
  const roots = [real];
  const parts = real.split(/[\\/]/);
  if (parts.length >= 3 && parts[parts.length - 2] === 'snapshots') {
    try {
      roots.push(await fs.realpath(joinPath(parts.slice(0, -2).join('/'), 'blobs')));
    } catch {
      // no blobs folder: only the snapshot itself
    }
  }
  return roots;
}

// Text is decoded as readFile(path, 'utf8') does: a byte-order mark is kept (so JSON.parse refuses it, as Python's json does).

function directoryFiles(dir: string): ModelFiles {
  let roots: Promise<string[]> | undefined;
  /** The real path of `file`: a plain name whose real path (symlinks resolved) stays inside the folder. */
  const locate = async (file: string): Promise<string> => {
    if (!isPlainFileName(file)) throw outsideFolder(dir, String(file), 'not a plain file name');
    roots ??= allowedRoots(dir);
    roots.catch(() => (roots = undefined));
    const allowed = await roots;
    const path = joinPath(dir, file);
    const fs = await nodeFs();
    let real: string;
    try {
      real = await fs.realpath(path);
    } catch (cause) {
      throw fsError(path, cause, 'resolving');
    }
    if (!allowed.some((root) => real !== root && isInside(real, root))) throw outsideFolder(dir, file, `it resolves to ${real}, outside the folder`);
    return real;
  };
  const source = (file: string) => lazyFileSource(joinPath(dir, file), () => locate(file));
  return {
    name: dir,
    source,
    exists: async (file) => {
      let real: string;
      try {
        real = await locate(file);
      } catch (error) {
        if (CheckpointError.isCheckpointError(error) && error.code === 'CHECKPOINT_FILE_NOT_FOUND') return false;
        throw error;
      }
      const fs = await nodeFs();
      try {
        return (await fs.stat(real)).isFile();
      } catch {
        return false;
      }
    },
    readText: async (file) => {
      const text = source(file);
      try {
        const size = await text.size();
        if (size > MAX_TEXT_BYTES) throw new CheckpointError('CHECKPOINT_IO', `${text.name}: ${size} bytes is too large for a text file (the limit is ${MAX_TEXT_BYTES})`, { file: text.name });
        return new TextDecoder('utf-8', { ignoreBOM: true }).decode(await text.read(0, size));
      } finally {
        await text.close();
      }
    },
  };
}

/** The body of `response` as text, refused (without buffering it) once it passes `limit` bytes. */
async function boundedText(response: Response, limit: number, address: string): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > limit) throw new CheckpointError('CHECKPOINT_HTTP', `${address}: more than ${limit} bytes is too large for a text file`, { file: address });
      chunks.push(value);
    }
  } catch (cause) {
    await reader.cancel().catch(() => {});
    if (CheckpointError.isCheckpointError(cause)) throw cause;
    throw new CheckpointError('CHECKPOINT_HTTP', `${address}: reading the response failed: ${(cause as Error)?.message ?? String(cause)}`, { file: address, cause });
  }
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes);
}

/**
 * The URL of `file` under `root`. The name must be a plain file name both as
 * written and percent-decoded (`%2e%2e%2f` is `../`), and it is sent encoded,
 * so the server sees exactly that one name.
 */
function fileUrl(root: string, file: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(file);
  } catch {
    decoded = '';
  }
  if (!isPlainFileName(file) || !isPlainFileName(decoded)) {
    throw new CheckpointError('CHECKPOINT_OUTSIDE_FOLDER', `${root}${String(file)}: not a plain file name (percent-decoded: ${JSON.stringify(decoded)}); files are read from inside ${root} only`, { file: `${root}${String(file)}` });
  }
  return new URL(encodeURIComponent(file), root).toString();
}

function urlFiles(base: string, options: UrlSourceOptions): ModelFiles {
  const root = base.endsWith('/') ? base : `${base}/`;
  const doFetch = options.fetch ?? globalThis.fetch;
  const url = (file: string) => fileUrl(root, file);
  return {
    name: root,
    source: (file) => {
      try {
        return urlSource(url(file), options);
      } catch (error) {
        const fail = async (): Promise<never> => {
          throw error;
        };
        return { name: `${root}${String(file)}`, size: fail, read: fail, close: async () => {} };
      }
    },
    exists: async (file) => {
      try {
        await urlSource(url(file), options).size();
        return true;
      } catch (error) {
        if (CheckpointError.isCheckpointError(error) && error.code === 'CHECKPOINT_FILE_NOT_FOUND') return false;
        throw error;
      }
    },
    readText: async (file) => {
      const address = url(file);
      let response: Response;
      try {
        response = await doFetch(address, { headers: options.headers });
      } catch (cause) {
        throw new CheckpointError('CHECKPOINT_HTTP', `${address}: request failed: ${(cause as Error)?.message ?? String(cause)}`, { file: address, cause });
      }
      if (response.status === 404) {
        await response.body?.cancel().catch(() => {});
        throw new CheckpointError('CHECKPOINT_FILE_NOT_FOUND', `${address}: 404 not found`, { file: address });
      }
      if (!response.ok) {
        await response.body?.cancel().catch(() => {});
        throw new CheckpointError('CHECKPOINT_HTTP', `${address}: HTTP ${response.status} ${response.statusText}`, { file: address });
      }
      const length = Number(response.headers.get('content-length') ?? 0);
      if (length > MAX_TEXT_BYTES) {
        await response.body?.cancel().catch(() => {});
        throw new CheckpointError('CHECKPOINT_HTTP', `${address}: ${length} bytes is too large for a text file`, { file: address });
      }
      return boundedText(response, MAX_TEXT_BYTES, address);
    },
  };
}

function fileListFiles(list: ArrayLike<File>): ModelFiles {
  // A folder picked with <input webkitdirectory> names files "folder/config.json": drop the first segment.
  const byName = new Map<string, File>();
  for (const file of Array.from(list)) {
    const relative = (file as File & { webkitRelativePath?: string }).webkitRelativePath;
    const key = relative ? relative.split('/').slice(1).join('/') || file.name : file.name;
    if (!byName.has(key)) byName.set(key, file);
  }
  const find = (name: string) => {
    const file = byName.get(name);
    if (!file) throw new CheckpointError('CHECKPOINT_FILE_NOT_FOUND', `${name}: not among the files given (${[...byName.keys()].join(', ')})`, { file: name });
    return file;
  };
  return {
    name: 'files',
    source: (name) => {
      const file = byName.get(name);
      if (file) return blobSource(file, name);
      const missing = () => find(name) as never;
      return { name, size: async () => missing(), read: async () => missing(), close: async () => {} };
    },
    exists: async (name) => byName.has(name),
    readText: async (name) => {
      const file = find(name);
      if (file.size > MAX_TEXT_BYTES) throw new CheckpointError('CHECKPOINT_IO', `${name}: ${file.size} bytes is too large for a text file (the limit is ${MAX_TEXT_BYTES})`, { file: name });
      return file.text();
    },
  };
}

/**
 * One model folder: config, tokenizer files and weights. Make it with {@link openModel}.
 *
 * @example
 * ```ts
 * const model = await openModel('./mamba2-tiny');
 * const config = await model.config();
 * const { tokenizer } = await model.tokenizer();
 * const checkpoint = await model.weights();
 * ```
 */
export class ModelFolder {
  /** The file access underneath (directory, URL, File list or your own). */
  readonly files: ModelFiles;

  constructor(files: ModelFiles) {
    this.files = files;
  }

  /** The folder's name (path, URL base or `files`). */
  get name(): string {
    return this.files.name;
  }

  /** True when the folder holds `file`. */
  exists(file: string): Promise<boolean> {
    return this.files.exists(file);
  }

  /** `file` as text; throws `CHECKPOINT_FILE_NOT_FOUND` when absent. */
  readText(file: string): Promise<string> {
    return this.files.readText(file);
  }

  /** The whole of `file` as bytes (e.g. a sentencepiece `tokenizer.model`); throws `CHECKPOINT_FILE_NOT_FOUND` when absent. */
  async readBytes(file: string): Promise<Uint8Array> {
    const source = this.files.source(file);
    try {
      return await source.read(0, await source.size());
    } finally {
      await source.close();
    }
  }

  /** `file` parsed as JSON (bare `Infinity` / `NaN` accepted); throws `CONFIG_INVALID_JSON` naming the file. */
  async readJson(file: string): Promise<unknown> {
    return parseJson(await this.files.readText(file), this.fileName(file));
  }

  /** Like {@link readJson}, but undefined when the file is absent. */
  async readOptionalJson(file: string): Promise<unknown> {
    try {
      return await this.readJson(file);
    } catch (error) {
      if (CheckpointError.isCheckpointError(error) && error.code === 'CHECKPOINT_FILE_NOT_FOUND') return undefined;
      throw error;
    }
  }

  /** `config.json` wrapped in a {@link ConfigReader}. */
  async config(file = 'config.json'): Promise<ConfigReader> {
    return configReader(await this.readJson(file), this.fileName(file));
  }

  /** The tokenizer files present in the folder, parsed. */
  async tokenizer(): Promise<TokenizerFiles> {
    const [tokenizer, tokenizerConfig, specialTokensMap, generationConfig] = await Promise.all(
      ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json'].map((f) => this.readOptionalJson(f)),
    );
    return { tokenizer, tokenizerConfig, specialTokensMap, generationConfig };
  }

  /**
   * The weights, from the first of these the folder holds (transformers' order):
   *
   * 1. `model.safetensors`;
   * 2. `model.safetensors.index.json` with its safetensors shards;
   * 3. `pytorch_model.bin` (PyTorch's zip + pickle, read by a restricted reader: no code runs);
   * 4. `pytorch_model.bin.index.json` with its `torch.save` shards (each read like `pytorch_model.bin`).
   *
   * Shards are opened lazily (only those whose tensors are read) and closed by
   * the checkpoint's `close()`; their names must be plain file names inside the
   * folder. Throws `CHECKPOINT_FILE_NOT_FOUND` naming all four when none exists.
   */
  async weights(): Promise<Checkpoint> {
    try {
      return await openSafetensors(this.files.source('model.safetensors'));
    } catch (error) {
      if (!CheckpointError.isCheckpointError(error) || error.code !== 'CHECKPOINT_FILE_NOT_FOUND') throw error;
    }
    const indexFile = 'model.safetensors.index.json';
    if (await this.files.exists(indexFile)) {
      const text = await this.files.readText(indexFile);
      return openShardedCheckpoint(text, (shard) => this.files.source(shard), this.fileName(indexFile));
    }
    if (await this.files.exists('pytorch_model.bin')) return openTorchCheckpoint(this.files.source('pytorch_model.bin'));
    const torchIndex = 'pytorch_model.bin.index.json';
    if (await this.files.exists(torchIndex)) {
      const text = await this.files.readText(torchIndex);
      return openShardedTorchCheckpoint(text, (shard) => this.files.source(shard), this.fileName(torchIndex));
    }
    throw new CheckpointError('CHECKPOINT_FILE_NOT_FOUND', `${this.name}: none of model.safetensors, model.safetensors.index.json, pytorch_model.bin and pytorch_model.bin.index.json was found`, { file: this.name });
  }

  private fileName(file: string): string {
    return this.files.name === 'files' ? file : joinPath(this.files.name, file);
  }
}

/**
 * Opens a model folder: a directory path (Node), an http(s) URL base, the
 * `File`s a user picked (`<input type=file multiple>` or `webkitdirectory`),
 * or any {@link ModelFiles}. Nothing is read until asked for.
 *
 * @example
 * ```ts
 * const model = await openModel('https://huggingface.co/state-spaces/mamba-130m-hf/resolve/main/');
 * const config = await model.config();
 * const checkpoint = await model.weights();
 * const weights = await loadWeights(runtime, checkpoint, { dtype: 'f16', onProgress: (p) => console.log(p.bytesDone / p.bytesTotal) });
 * ```
 */
export async function openModel(source: ModelSource, options: UrlSourceOptions = {}): Promise<ModelFolder> {
  if (typeof source === 'string') {
    if (isHttpUrl(source)) return new ModelFolder(urlFiles(source, options));
    return new ModelFolder(directoryFiles(source.startsWith('file://') ? decodeURIComponent(new URL(source).pathname) : source));
  }
  if (source instanceof URL) {
    return new ModelFolder(source.protocol === 'file:' ? directoryFiles(decodeURIComponent(source.pathname)) : urlFiles(source.toString(), options));
  }
  if (typeof (source as ModelFiles).source === 'function') return new ModelFolder(source as ModelFiles);
  return new ModelFolder(fileListFiles(source as ArrayLike<File>));
}
