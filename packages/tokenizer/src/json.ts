/** Small readers for untrusted tokenizer.json values: each names the field it rejects. */
import { TokenizerError } from './errors.js';

/** A parsed JSON object. */
export type JsonObject = Record<string, unknown>;

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function invalid(where: string, message: string): never {
  throw new TokenizerError('TOKENIZER_INVALID', `${where}: ${message}`);
}

export function unsupported(where: string, message: string): never {
  throw new TokenizerError('TOKENIZER_UNSUPPORTED', `${where}: ${message}`);
}

export function expectObject(value: unknown, where: string): JsonObject {
  if (!isObject(value)) invalid(where, `expected an object, got ${describe(value)}`);
  return value;
}

export function expectString(value: unknown, where: string): string {
  if (typeof value !== 'string') invalid(where, `expected a string, got ${describe(value)}`);
  return value;
}

export function optionalString(value: unknown, where: string): string | undefined {
  return value === undefined || value === null ? undefined : expectString(value, where);
}

export function optionalBoolean(value: unknown, where: string, fallback: boolean): boolean {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'boolean') invalid(where, `expected a boolean, got ${describe(value)}`);
  return value;
}

/** The largest token id accepted: far above any real vocabulary, and small enough that id tables stay dense arrays. */
export const MAX_TOKEN_ID = 0xffffff;

export function expectId(value: unknown, where: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_TOKEN_ID) {
    invalid(where, `expected a token id (an integer in [0, ${MAX_TOKEN_ID}]), got ${describe(value)}`);
  }
  return value;
}

export function expectArray(value: unknown, where: string): unknown[] {
  if (!Array.isArray(value)) invalid(where, `expected an array, got ${describe(value)}`);
  return value;
}

/** A single character (one code point), as Rust's `char` fields (`replacement`, `content`) require. */
export function expectChar(value: unknown, where: string): string {
  const text = expectString(value, where);
  if ([...text].length !== 1) invalid(where, `expected a single character, got ${JSON.stringify(text)}`);
  return text;
}

/** The deepest nesting of `Sequence` components accepted (real tokenizers use 1 or 2). */
export const MAX_NESTING = 32;

/** Refuses a component nested deeper than {@link MAX_NESTING} (a hostile file could nest thousands). */
export function checkNesting(depth: number, where: string): void {
  if (depth > MAX_NESTING) invalid(where, `nested deeper than ${MAX_NESTING} Sequence levels`);
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)}`;
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value)}`;
}
