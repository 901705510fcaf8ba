/**
 * Small typed readers for `config.json` (and any other JSON settings file).
 * Each getter checks one key and throws a {@link CheckpointError} that names
 * the key and the file: `CONFIG_MISSING_KEY` or `CONFIG_INVALID_VALUE`.
 *
 * Python writes infinities two ways: transformers 5 as `{"__float__": "Infinity"}`,
 * `json.dumps` as a bare `Infinity` (not JSON). Both are read as numbers.
 */
import { CheckpointError } from './errors.js';

/** A key, or a list of alternative spellings (the first one present wins), e.g. `['num_hidden_layers', 'n_layer']`. */
export type ConfigKey = string | readonly string[];

/** Getters that return `undefined` (or the fallback given) when a key is absent or `null`. */
export interface OptionalConfigReader {
  /** A number, or undefined when absent. */
  number(key: ConfigKey): number | undefined;
  /** A number, or `fallback` when absent. */
  number(key: ConfigKey, fallback: number): number;
  /** A safe integer, or undefined when absent. */
  int(key: ConfigKey): number | undefined;
  /** A safe integer, or `fallback` when absent. */
  int(key: ConfigKey, fallback: number): number;
  /** An integer >= 1, or undefined when absent. */
  positiveInt(key: ConfigKey): number | undefined;
  /** An integer >= 1, or `fallback` when absent. */
  positiveInt(key: ConfigKey, fallback: number): number;
  /** An integer >= 0, or undefined when absent. */
  nonNegativeInt(key: ConfigKey): number | undefined;
  /** An integer >= 0, or `fallback` when absent. */
  nonNegativeInt(key: ConfigKey, fallback: number): number;
  /** A number > 0, or undefined when absent. */
  positiveNumber(key: ConfigKey): number | undefined;
  /** A number > 0, or `fallback` when absent. */
  positiveNumber(key: ConfigKey, fallback: number): number;
  /** A string, or undefined when absent. */
  string(key: ConfigKey): string | undefined;
  /** A string, or `fallback` when absent. */
  string(key: ConfigKey, fallback: string): string;
  /** A boolean, or undefined when absent. */
  bool(key: ConfigKey): boolean | undefined;
  /** A boolean, or `fallback` when absent. */
  bool(key: ConfigKey, fallback: boolean): boolean;
  /** An array of integers (of exactly `length` when given), or undefined when absent. */
  intArray(key: ConfigKey, length?: number): number[] | undefined;
  /** An array of numbers (of exactly `length` when given), or undefined when absent. */
  numberArray(key: ConfigKey, length?: number): number[] | undefined;
  /** An array of strings, or undefined when absent. */
  stringArray(key: ConfigKey): string[] | undefined;
  /** A nested object's reader, or undefined when absent. */
  object(key: ConfigKey): ConfigReader | undefined;
}

/**
 * Typed access to one JSON object. Create it with {@link configReader}.
 *
 * @example
 * ```ts
 * const c = configReader(json, 'config.json');
 * const hidden = c.positiveInt('hidden_size');
 * const layers = c.positiveInt(['num_hidden_layers', 'n_layer']);
 * const eps = c.optional.number('rms_norm_eps', 1e-6);
 * const act = c.enum('hidden_act', ['silu', 'gelu'], 'silu');
 * const limit = c.optional.numberArray('time_step_limit', 2) ?? [0, Infinity];
 * ```
 */
export interface ConfigReader {
  /** The file name used in error messages. */
  readonly file: string;
  /** The object read (a nested reader's own object). */
  readonly json: Readonly<Record<string, unknown>>;
  /** Getters for keys that may be absent. */
  readonly optional: OptionalConfigReader;
  /** True when the key (or one of its spellings) is present and not null. */
  has(key: ConfigKey): boolean;
  /** The raw value (undefined when absent). */
  raw(key: ConfigKey): unknown;
  /** A number (also `{"__float__": "Infinity"}`). */
  number(key: ConfigKey): number;
  /** A number > 0. */
  positiveNumber(key: ConfigKey): number;
  /** A safe integer. */
  int(key: ConfigKey): number;
  /** An integer >= 1. */
  positiveInt(key: ConfigKey): number;
  /** An integer >= 0. */
  nonNegativeInt(key: ConfigKey): number;
  /** A string. */
  string(key: ConfigKey): string;
  /** A boolean. */
  bool(key: ConfigKey): boolean;
  /** One of `values`; when `fallback` is given an absent key gives it, otherwise the key is required. */
  enum<const T extends string>(key: ConfigKey, values: readonly T[], fallback?: T): T;
  /** An array of integers (of exactly `length` when given). */
  intArray(key: ConfigKey, length?: number): number[];
  /** An array of numbers (of exactly `length` when given). */
  numberArray(key: ConfigKey, length?: number): number[];
  /** An array of strings. */
  stringArray(key: ConfigKey): string[];
  /** A nested object (e.g. `rope_scaling`, `text_config`); its errors name `parent.child` keys. */
  object(key: ConfigKey): ConfigReader;
}

/** Decodes transformers' `{"__float__": "Infinity"}` markers; returns undefined for a non-number. */
function asNumber(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const keys = Object.keys(value);
    const special = (value as Record<string, unknown>).__float__;
    if (keys.length === 1 && typeof special === 'string') {
      if (special === 'Infinity' || special === 'inf') return Infinity;
      if (special === '-Infinity' || special === '-inf') return -Infinity;
      if (special === 'NaN' || special === 'nan') return NaN;
    }
  }
  return undefined;
}

function show(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

class Reader implements ConfigReader {
  readonly optional: OptionalConfigReader;

  constructor(
    readonly json: Readonly<Record<string, unknown>>,
    readonly file: string,
    private readonly prefix: string,
  ) {
    // Absent or null -> the fallback (or undefined); present -> the required getter's checks.
    const has = (key: ConfigKey) => this.has(key);
    this.optional = {
      number: (key: ConfigKey, fallback?: number) => (has(key) ? this.number(key) : fallback),
      int: (key: ConfigKey, fallback?: number) => (has(key) ? this.int(key) : fallback),
      positiveInt: (key: ConfigKey, fallback?: number) => (has(key) ? this.positiveInt(key) : fallback),
      nonNegativeInt: (key: ConfigKey, fallback?: number) => (has(key) ? this.nonNegativeInt(key) : fallback),
      positiveNumber: (key: ConfigKey, fallback?: number) => (has(key) ? this.positiveNumber(key) : fallback),
      string: (key: ConfigKey, fallback?: string) => (has(key) ? this.string(key) : fallback),
      bool: (key: ConfigKey, fallback?: boolean) => (has(key) ? this.bool(key) : fallback),
      intArray: (key: ConfigKey, length?: number) => (has(key) ? this.intArray(key, length) : undefined),
      numberArray: (key: ConfigKey, length?: number) => (has(key) ? this.numberArray(key, length) : undefined),
      stringArray: (key: ConfigKey) => (has(key) ? this.stringArray(key) : undefined),
      object: (key: ConfigKey) => (has(key) ? this.object(key) : undefined),
    } as OptionalConfigReader;
  }

  private present(key: ConfigKey): string | undefined {
    const keys = typeof key === 'string' ? [key] : key;
    return keys.find((k) => Object.prototype.hasOwnProperty.call(this.json, k) && this.json[k] !== null && this.json[k] !== undefined);
  }

  private label(key: string): string {
    return this.prefix + key;
  }

  private fail(key: string, message: string): never {
    throw new CheckpointError('CONFIG_INVALID_VALUE', `${this.file}: "${this.label(key)}" ${message}`, { file: this.file, key: this.label(key) });
  }

  private need(key: ConfigKey): [string, unknown] {
    const found = this.present(key);
    if (found === undefined) {
      const keys = typeof key === 'string' ? [key] : [...key];
      const first = this.label(keys[0] ?? '');
      const also = keys.slice(1).map((k) => ` or "${this.label(k)}"`).join('');
      const isNull = keys.some((k) => Object.prototype.hasOwnProperty.call(this.json, k));
      throw new CheckpointError('CONFIG_MISSING_KEY', `${this.file}: required key "${first}"${also} is ${isNull ? 'null' : 'missing'}`, { file: this.file, key: first });
    }
    return [found, this.json[found]];
  }

  has(key: ConfigKey): boolean {
    return this.present(key) !== undefined;
  }

  raw(key: ConfigKey): unknown {
    const found = this.present(key);
    return found === undefined ? undefined : this.json[found];
  }

  number(key: ConfigKey): number {
    const [k, v] = this.need(key);
    const n = asNumber(v);
    if (n === undefined) this.fail(k, `must be a number, got ${show(v)}`);
    return n;
  }

  positiveNumber(key: ConfigKey): number {
    const n = this.number(key);
    if (!(n > 0)) this.fail(this.present(key)!, `must be a positive number, got ${n}`);
    return n;
  }

  int(key: ConfigKey): number {
    const [k, v] = this.need(key);
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) this.fail(k, `must be an integer, got ${show(v)}`);
    return v;
  }

  positiveInt(key: ConfigKey): number {
    const n = this.int(key);
    if (n < 1) this.fail(this.present(key)!, `must be a positive integer, got ${n}`);
    return n;
  }

  nonNegativeInt(key: ConfigKey): number {
    const n = this.int(key);
    if (n < 0) this.fail(this.present(key)!, `must be a non-negative integer, got ${n}`);
    return n;
  }

  string(key: ConfigKey): string {
    const [k, v] = this.need(key);
    if (typeof v !== 'string') this.fail(k, `must be a string, got ${show(v)}`);
    return v;
  }

  bool(key: ConfigKey): boolean {
    const [k, v] = this.need(key);
    if (typeof v !== 'boolean') this.fail(k, `must be true or false, got ${show(v)}`);
    return v;
  }

  enum<const T extends string>(key: ConfigKey, values: readonly T[], fallback?: T): T {
    if (fallback !== undefined && !this.has(key)) return fallback;
    const [k, v] = this.need(key);
    if (typeof v !== 'string' || !values.includes(v as T)) this.fail(k, `must be one of ${values.map((x) => `"${x}"`).join(', ')}, got ${show(v)}`);
    return v as T;
  }

  private array(key: ConfigKey, length: number | undefined): [string, unknown[]] {
    const [k, v] = this.need(key);
    if (!Array.isArray(v)) this.fail(k, `must be an array, got ${show(v)}`);
    if (length !== undefined && v.length !== length) this.fail(k, `must hold ${length} values, got ${v.length}`);
    return [k, v];
  }

  intArray(key: ConfigKey, length?: number): number[] {
    const [k, v] = this.array(key, length);
    const bad = v.findIndex((x) => typeof x !== 'number' || !Number.isSafeInteger(x));
    if (bad >= 0) this.fail(k, `must be an array of integers, element ${bad} is ${show(v[bad])}`);
    return v as number[];
  }

  numberArray(key: ConfigKey, length?: number): number[] {
    const [k, v] = this.array(key, length);
    return v.map((x, i) => {
      const n = asNumber(x);
      if (n === undefined) this.fail(k, `must be an array of numbers, element ${i} is ${show(x)}`);
      return n;
    });
  }

  stringArray(key: ConfigKey): string[] {
    const [k, v] = this.array(key, undefined);
    const bad = v.findIndex((x) => typeof x !== 'string');
    if (bad >= 0) this.fail(k, `must be an array of strings, element ${bad} is ${show(v[bad])}`);
    return v as string[];
  }

  object(key: ConfigKey): ConfigReader {
    const [k, v] = this.need(key);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(k, `must be an object, got ${show(v)}`);
    return new Reader(v as Record<string, unknown>, this.file, `${this.label(k)}.`);
  }
}

/**
 * Wraps parsed JSON (usually `config.json`) in typed getters. Throws
 * `CONFIG_INVALID_VALUE` when `json` is not an object.
 *
 * @example
 * ```ts
 * const c = configReader(JSON.parse(text), 'config.json');
 * c.int('hidden_size');                          // required
 * c.optional.number('rms_norm_eps', 1e-6);       // default when absent or null
 * c.enum('hidden_act', ['silu', 'gelu'], 'silu');
 * c.intArray('layers_block_type_ids', 4);
 * ```
 */
export function configReader(json: unknown, file = 'config.json'): ConfigReader {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new CheckpointError('CONFIG_INVALID_VALUE', `${file}: must hold a JSON object, got ${show(json)}`, { file });
  }
  return new Reader(json as Record<string, unknown>, file, '');
}

/**
 * Parses JSON text, also accepting the bare `NaN`, `Infinity` and `-Infinity`
 * Python's `json.dumps` writes (they become `{"__float__": ...}` markers that
 * {@link ConfigReader.number} reads). Throws `CONFIG_INVALID_JSON` naming the file.
 *
 * @example
 * ```ts
 * const c = configReader(parseJson('{"time_step_limit": [0.0, Infinity]}', 'config.json'));
 * c.numberArray('time_step_limit'); // [0, Infinity]
 * ```
 */
export function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (first) {
    const patched = replaceBareFloats(text);
    if (patched !== text) {
      try {
        return JSON.parse(patched);
      } catch {
        // report the original error
      }
    }
    throw new CheckpointError('CONFIG_INVALID_JSON', `${file}: not valid JSON: ${(first as Error).message}`, { file, cause: first });
  }
}

/** Replaces bare NaN / Infinity / -Infinity tokens outside strings with `{"__float__": ...}`. */
function replaceBareFloats(text: string): string {
  let out = '';
  let last = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === '\\') i++;
      continue;
    }
    for (const token of ['-Infinity', 'Infinity', 'NaN']) {
      if (text.startsWith(token, i)) {
        out += `${text.slice(last, i)}{"__float__":"${token}"}`;
        i += token.length - 1;
        last = i + 1;
        break;
      }
    }
  }
  return out + text.slice(last);
}
