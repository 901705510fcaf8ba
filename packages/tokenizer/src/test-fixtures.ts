/**
 * Test helpers: the bundle in fixtures/inputs/ (tokenizer.json files, manifest, strings) and the
 * reference outputs that scripts/make-reference.py records from the Rust `tokenizers` library.
 * Not exported by the package.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { Tokenizer } from './tokenizer.js';

export const PACKAGE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');
export const FIXTURES_DIR = join(PACKAGE_DIR, 'fixtures');
export const INPUTS_DIR = join(FIXTURES_DIR, 'inputs');

export interface ManifestEntry {
  name: string;
  tokenizer?: string;
  config?: string;
  base?: string;
  overrides?: Record<string, unknown>;
  config_overrides?: Record<string, unknown>;
}

export interface Reference {
  name: string;
  tokenizers_version: string;
  encode: Array<{ text: string; ids: number[]; ids_with_special: number[]; decoded: string; decoded_skip_special: string }>;
  decode: Array<{ ids: number[]; skip_special_tokens: boolean; text: string }>;
  /** encode(render, add_special_tokens=False) of each case of reference-chat.json for this tokenizer (null for error cases). */
  chat_ids: Array<number[] | null>;
}

export interface ChatCase {
  messages: Array<{ role: string; content: string }>;
  add_generation_prompt: boolean;
  kwargs: Record<string, unknown>;
  text?: string;
  error?: string;
}

export interface ChatReference {
  renderer: string;
  tokenizers: Record<string, ChatCase[]>;
}

export const MANIFEST: ManifestEntry[] = JSON.parse(readFileSync(join(INPUTS_DIR, 'manifest.json'), 'utf8')).tokenizers;
export const STRINGS: string[] = JSON.parse(readFileSync(join(INPUTS_DIR, 'strings.json'), 'utf8'));

const parsed = new Map<string, Record<string, unknown>>();

/** Reads a JSON file of the bundle (gunzipping `.gz`), parsed once per process. */
export function readInput(relativePath: string): Record<string, unknown> {
  let value = parsed.get(relativePath);
  if (!value) {
    const bytes = readFileSync(join(INPUTS_DIR, relativePath));
    value = JSON.parse((relativePath.endsWith('.gz') ? gunzipSync(bytes) : bytes).toString('utf8')) as Record<string, unknown>;
    parsed.set(relativePath, value);
  }
  return value;
}

/** tokenizer.json and tokenizer_config.json of a manifest entry, `base` and `overrides` applied (as make-reference.py does). */
export function entryFiles(name: string): { tokenizer: Record<string, unknown>; config: Record<string, unknown> } {
  const entry = MANIFEST.find((e) => e.name === name);
  if (!entry) throw new Error(`no tokenizer named ${name} in fixtures/inputs/manifest.json`);
  const base = entry.base
    ? entryFiles(entry.base)
    : { tokenizer: readInput(entry.tokenizer as string), config: entry.config ? readInput(entry.config) : {} };
  return {
    tokenizer: { ...base.tokenizer, ...entry.overrides },
    config: { ...base.config, ...entry.config_overrides },
  };
}

const tokenizers = new Map<string, Tokenizer>();

/** The Tokenizer of a manifest entry, built once per process. */
export function fixtureTokenizer(name: string): Tokenizer {
  let tokenizer = tokenizers.get(name);
  if (!tokenizer) {
    const files = entryFiles(name);
    tokenizer = new Tokenizer(files.tokenizer, files.config);
    tokenizers.set(name, tokenizer);
  }
  return tokenizer;
}

/**
 * The reference outputs of one tokenizer. Throws (so the test fails, never skips) when the
 * fixture has not been generated yet.
 */
export function readReference(name: string): Reference {
  return readFixture(`reference-${name}.json`) as Reference;
}

/** The chat renders of reference-chat.json (transformers' apply_chat_template). */
export function readChatReference(): ChatReference {
  return readFixture('reference-chat.json') as ChatReference;
}

function readFixture(file: string): unknown {
  const path = join(FIXTURES_DIR, file);
  if (!existsSync(path)) {
    throw new Error(
      `missing reference fixture fixtures/${file}: generate it with the Rust tokenizers library ` +
        '(`pip install tokenizers jinja2 && python3 packages/tokenizer/scripts/make-reference.py` from the repository root; see packages/tokenizer/README.md)',
    );
  }
  return JSON.parse(readFileSync(path, 'utf8'));
}
