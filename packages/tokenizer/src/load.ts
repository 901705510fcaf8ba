/**
 * Reading tokenizer.json, tokenizer_config.json, chat_template.jinja and special_tokens_map.json
 * from a Node path, a URL, browser File/Blob objects or already-parsed JSON.
 * `node:fs` is imported dynamically (and only for paths and file: URLs), so the package bundles
 * for browsers.
 */
import { TokenizerError } from './errors.js';
import { Tokenizer } from './tokenizer.js';

/** JSON given as text, bytes, a Blob/File, or an already-parsed object. */
export type JsonInput = string | ArrayBuffer | Uint8Array | Blob | Record<string, unknown>;

/** The files of a tokenizer, given one by one. Only `tokenizer` is required. */
export interface TokenizerFiles {
  /** tokenizer.json */
  tokenizer: JsonInput;
  /** tokenizer_config.json */
  config?: JsonInput | null;
  /** chat_template.jinja (text or Blob); it wins over tokenizer_config.json's `chat_template`, as in transformers. */
  chatTemplate?: string | Blob | null;
  /** special_tokens_map.json */
  specialTokensMap?: JsonInput | null;
}

/**
 * Where {@link loadTokenizer} reads from:
 * - a string path (Node): a directory holding tokenizer.json, or the tokenizer.json file itself;
 *   the other files are read from beside it when present;
 * - an `http(s)://` string or a `URL`: a directory URL ending in `/`, or the tokenizer.json URL;
 *   the other files are fetched from beside it (a 404 means absent); `file:` URLs read the disk;
 * - a `Blob`/`File`: the tokenizer.json alone; an array (or `FileList`) of `File`s: matched by name;
 * - a {@link TokenizerFiles} object of texts, bytes, Blobs or parsed JSON.
 */
export type TokenizerSource = string | URL | Blob | ArrayLike<File> | TokenizerFiles;

/** Options of {@link loadTokenizer}. */
export interface LoadTokenizerOptions {
  /** The fetch used for URLs (default: globalThis.fetch). */
  fetch?: typeof globalThis.fetch;
}

/**
 * The largest tokenizer file read (tokenizer.json, tokenizer_config.json, ...): far above the
 * largest real tokenizer.json (tens of MB), and a bound on what a hostile file can make us parse.
 *
 * @example
 * ```ts
 * if (file.size > MAX_TOKENIZER_FILE_BYTES) console.error('too large for a tokenizer file');
 * ```
 */
export const MAX_TOKENIZER_FILE_BYTES = 128 * 1024 * 1024;

function tooLarge(name: string, size: number): TokenizerError {
  return new TokenizerError('TOKENIZER_INVALID', `${name}: ${size} bytes is too large for a tokenizer file (the limit is ${MAX_TOKENIZER_FILE_BYTES})`);
}

const NAMES = {
  tokenizer: 'tokenizer.json',
  config: 'tokenizer_config.json',
  chatTemplate: 'chat_template.jinja',
  specialTokensMap: 'special_tokens_map.json',
} as const;

/**
 * Loads a Hugging Face tokenizer.
 *
 * @throws TokenizerError `TOKENIZER_LOAD_FAILED` when tokenizer.json cannot be read,
 *   `TOKENIZER_INVALID` / `TOKENIZER_UNSUPPORTED` for bad or unsupported contents.
 * @example
 * ```ts
 * const tokenizer = await loadTokenizer('./models/Llama-2-7b-hf');          // Node directory
 * const fromHub = await loadTokenizer(new URL('https://example.com/my-model/')); // fetches tokenizer.json + tokenizer_config.json
 * const fromFile = await loadTokenizer([...input.files]);                      // <input type="file" multiple>
 * ```
 */
export async function loadTokenizer(source: TokenizerSource, options: LoadTokenizerOptions = {}): Promise<Tokenizer> {
  const files = await resolveFiles(source, options);
  const [tokenizerJson, config, chatTemplate, specialTokensMap] = await Promise.all([
    parseJson(files.tokenizer, NAMES.tokenizer),
    files.config == null ? undefined : parseJson(files.config, NAMES.config),
    files.chatTemplate == null ? undefined : typeof files.chatTemplate === 'string' ? files.chatTemplate : files.chatTemplate.text(),
    files.specialTokensMap == null ? undefined : parseJson(files.specialTokensMap, NAMES.specialTokensMap),
  ]);
  return new Tokenizer(tokenizerJson, config ?? {}, { chatTemplate: chatTemplate ?? null, specialTokensMap });
}

async function resolveFiles(source: TokenizerSource, options: LoadTokenizerOptions): Promise<TokenizerFiles> {
  if (typeof source === 'string') {
    return /^https?:\/\//i.test(source) ? fromUrl(new URL(source), options) : fromPath(source);
  }
  if (source instanceof URL) {
    return source.protocol === 'file:' ? fromPath(await fileUrlToPath(source)) : fromUrl(source, options);
  }
  if (typeof Blob !== 'undefined' && source instanceof Blob) return { tokenizer: source };
  if (isFileList(source)) return fromFileList(source);
  if (typeof source === 'object' && source !== null && 'tokenizer' in source) return source;
  throw new TokenizerError('INVALID_ARGUMENT', 'loadTokenizer: expected a path, a URL, a Blob/File, an array of Files or { tokenizer, config? }');
}

function isFileList(source: unknown): source is ArrayLike<File> {
  return (
    typeof source === 'object' &&
    source !== null &&
    typeof (source as ArrayLike<unknown>).length === 'number' &&
    !('tokenizer' in source) &&
    Array.from(source as ArrayLike<unknown>).every((f) => typeof Blob !== 'undefined' && f instanceof Blob && typeof (f as File).name === 'string')
  );
}

function fromFileList(list: ArrayLike<File>): TokenizerFiles {
  const byName = new Map(Array.from(list).map((file) => [file.name.split(/[\\/]/).pop() as string, file]));
  const tokenizer = byName.get(NAMES.tokenizer);
  if (!tokenizer) {
    throw new TokenizerError('TOKENIZER_LOAD_FAILED', `loadTokenizer: none of the files is named ${NAMES.tokenizer} (got ${[...byName.keys()].join(', ') || 'none'})`);
  }
  return {
    tokenizer,
    config: byName.get(NAMES.config) ?? null,
    chatTemplate: byName.get(NAMES.chatTemplate) ?? null,
    specialTokensMap: byName.get(NAMES.specialTokensMap) ?? null,
  };
}

type NodeFs = typeof import('node:fs/promises');

async function nodeModule<T>(name: string): Promise<T> {
  // A computed specifier: bundlers leave it alone, so browser bundles never see node:fs.
  const specifier = name;
  try {
    return (await import(/* @vite-ignore */ /* webpackIgnore: true */ specifier)) as T;
  } catch (error) {
    throw new TokenizerError('TOKENIZER_LOAD_FAILED', `loadTokenizer: file paths need Node.js (${name} is unavailable here); pass a URL, a File or parsed JSON instead`, { cause: error });
  }
}

async function fileUrlToPath(url: URL): Promise<string> {
  const { fileURLToPath } = await nodeModule<typeof import('node:url')>('node:url');
  return fileURLToPath(url);
}

async function fromPath(path: string): Promise<TokenizerFiles> {
  const fs = await nodeModule<NodeFs>('node:fs/promises');
  let directory = path;
  let tokenizerPath: string;
  try {
    const stat = await fs.stat(path);
    if (stat.isDirectory()) tokenizerPath = joinPath(path, NAMES.tokenizer);
    else {
      tokenizerPath = path;
      directory = path.replace(/[\\/][^\\/]*$/, '') || '.';
      if (directory === path) directory = '.';
    }
  } catch (error) {
    throw new TokenizerError('TOKENIZER_LOAD_FAILED', `loadTokenizer: cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  const read = async (file: string, required: boolean): Promise<Uint8Array | null> => {
    try {
      // Stat first: reading a FIFO or a device named tokenizer.json would block forever.
      const stat = await fs.stat(file);
      if (!stat.isFile()) throw new TokenizerError('TOKENIZER_LOAD_FAILED', `loadTokenizer: ${file} is not a regular file`);
      if (stat.size > MAX_TOKENIZER_FILE_BYTES) throw tooLarge(file, stat.size);
      const bytes = await fs.readFile(file);
      if (bytes.byteLength > MAX_TOKENIZER_FILE_BYTES) throw tooLarge(file, bytes.byteLength);
      return bytes;
    } catch (error) {
      if (TokenizerError.is(error)) throw error;
      if (!required && (error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new TokenizerError('TOKENIZER_LOAD_FAILED', `loadTokenizer: cannot read ${file}: ${(error as Error).message}`, { cause: error });
    }
  };
  const [tokenizer, config, chatTemplate, specialTokensMap] = await Promise.all([
    read(tokenizerPath, true),
    read(joinPath(directory, NAMES.config), false),
    read(joinPath(directory, NAMES.chatTemplate), false),
    read(joinPath(directory, NAMES.specialTokensMap), false),
  ]);
  return {
    tokenizer: tokenizer as Uint8Array,
    config,
    chatTemplate: chatTemplate === null ? null : new TextDecoder().decode(chatTemplate),
    specialTokensMap,
  };
}

function joinPath(directory: string, name: string): string {
  return /[\\/]$/.test(directory) ? directory + name : `${directory}/${name}`;
}

async function fromUrl(url: URL, options: LoadTokenizerOptions): Promise<TokenizerFiles> {
  const fetchImpl = options.fetch ?? globalThis.fetch;
  if (typeof fetchImpl !== 'function') {
    throw new TokenizerError('TOKENIZER_LOAD_FAILED', 'loadTokenizer: no fetch() in this environment; pass options.fetch');
  }
  const tokenizerUrl = url.pathname.endsWith('/') ? new URL(NAMES.tokenizer, url) : url;
  const get = async (target: URL, required: boolean): Promise<ArrayBuffer | null> => {
    let response: Response;
    try {
      response = await fetchImpl(target);
    } catch (error) {
      throw new TokenizerError('TOKENIZER_LOAD_FAILED', `loadTokenizer: fetching ${target.href} failed: ${(error as Error).message}`, { cause: error });
    }
    if (!required && response.status === 404) return null;
    if (!response.ok) {
      await response.body?.cancel().catch(() => {});
      throw new TokenizerError('TOKENIZER_LOAD_FAILED', `loadTokenizer: fetching ${target.href} answered ${response.status} ${response.statusText}`);
    }
    return boundedBody(response, target.href);
  };
  const [tokenizer, config, chatTemplate, specialTokensMap] = await Promise.all([
    get(tokenizerUrl, true),
    get(new URL(NAMES.config, tokenizerUrl), false),
    get(new URL(NAMES.chatTemplate, tokenizerUrl), false),
    get(new URL(NAMES.specialTokensMap, tokenizerUrl), false),
  ]);
  return {
    tokenizer: tokenizer as ArrayBuffer,
    config,
    chatTemplate: chatTemplate === null ? null : new TextDecoder().decode(chatTemplate),
    specialTokensMap,
  };
}

/** A response body, refused (without buffering the rest) once it passes {@link MAX_TOKENIZER_FILE_BYTES}. */
async function boundedBody(response: Response, href: string): Promise<ArrayBuffer> {
  const declared = Number(response.headers.get('content-length') ?? 0);
  if (declared > MAX_TOKENIZER_FILE_BYTES) {
    await response.body?.cancel().catch(() => {});
    throw tooLarge(href, declared);
  }
  if (!response.body) return new ArrayBuffer(0);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > MAX_TOKENIZER_FILE_BYTES) throw tooLarge(href, total);
      chunks.push(value);
    }
  } catch (error) {
    await reader.cancel().catch(() => {});
    if (TokenizerError.is(error)) throw error;
    throw new TokenizerError('TOKENIZER_LOAD_FAILED', `loadTokenizer: reading ${href} failed: ${(error as Error)?.message ?? String(error)}`, { cause: error });
  }
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return bytes.buffer;
}

async function parseJson(input: JsonInput, name: string): Promise<unknown> {
  let text: string;
  if (typeof input === 'string') {
    // Code units, not bytes: a cheap bound that needs no encoding.
    if (input.length > MAX_TOKENIZER_FILE_BYTES) throw tooLarge(name, input.length);
    text = input;
  } else if (input instanceof ArrayBuffer || input instanceof Uint8Array) {
    if (input.byteLength > MAX_TOKENIZER_FILE_BYTES) throw tooLarge(name, input.byteLength);
    text = new TextDecoder().decode(input);
  } else if (typeof Blob !== 'undefined' && input instanceof Blob) {
    if (input.size > MAX_TOKENIZER_FILE_BYTES) throw tooLarge(name, input.size);
    try {
      text = await input.text();
    } catch (error) {
      throw new TokenizerError('TOKENIZER_LOAD_FAILED', `loadTokenizer: reading ${name} failed: ${(error as Error)?.message ?? String(error)}`, { cause: error });
    }
  }
  else if (typeof input === 'object' && input !== null) return input;
  else throw new TokenizerError('INVALID_ARGUMENT', `loadTokenizer: ${name} must be JSON text, bytes, a Blob or a parsed object`);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new TokenizerError('TOKENIZER_INVALID', `${name}: not valid JSON (${(error as Error).message})`, { cause: error });
  }
}
