/**
 * The fuzz harness of this package (not exported): seeded mutators of
 * safetensors files and sharded model folders, and an independent validator
 * written from the format's rules without the package's parser (a recursive
 * JSON reader that keeps duplicate keys, BigInt arithmetic, a plain sort).
 * Each case must end in a typed CheckpointError or in exactly what the
 * validator computes. Used by fuzz.test.ts (small, in CI) and by
 * scripts/fuzz-long.ts (large, by hand).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, realpathSync, statSync, symlinkSync, writeFileSync, openSync, closeSync, constants, readFileSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointError } from './errors.js';
import { openModel } from './open-model.js';
import { rng } from '@statespace/core/testing';
import { openSafetensors } from './safetensors.js';
import { bufferSource } from './sources.js';
import { writeSafetensors, type TensorToWrite } from './write-safetensors.js';

/** A seeded generator of floats in [0, 1): core's mulberry32 (the one every test of the project uses). */
export const seeded = rng;

const floats = (n: number, seed: number) => {
  const r = seeded(seed);
  return Float32Array.from({ length: n }, () => r() * 2 - 1);
};

/** Valid seed files: several dtypes, a scalar, empty tensors, metadata, odd sizes (unaligned offsets). */
export function seedFiles(): Uint8Array[] {
  const a = writeSafetensors(
    {
      'model.embed.weight': { dtype: 'F32', shape: [5, 3], data: floats(15, 1) },
      'model.norm.weight': { dtype: 'BF16', shape: [7], data: floats(7, 2) },
      'model.layers.0.A': { dtype: 'F16', shape: [3, 1], data: floats(3, 3) },
      'model.ids': { dtype: 'I64', shape: [2], data: new BigInt64Array([1n, -2n]) },
      'model.mask': { dtype: 'BOOL', shape: [3], data: new Uint8Array([1, 0, 1]) },
      'model.q': { dtype: 'F8_E4M3', shape: [4], data: new Uint8Array([0x38, 0x40, 0x7f, 0x01]) },
      'model.scalar': { dtype: 'I32', shape: [], data: new Int32Array([42]) },
      'model.empty': { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
    },
    { format: 'pt' },
  );
  const b = writeSafetensors({
    x: { dtype: 'U8', shape: [3], data: new Uint8Array([1, 2, 3]) },
    y: { dtype: 'F64', shape: [1, 2], data: new Float64Array([1.5, -2]) },
    'z\u00e9\u2581': { dtype: 'I16', shape: [1], data: new Int16Array([7]) },
  });
  return [a, b];
}

// ---------------------------------------------------------------------------
// Mutations

const JSON_BYTES = [...'{}[]",:0123456789-eE. \\u'].map((c) => c.charCodeAt(0));
const NUMBERS = ['0', '1', '-1', '4', '1e30', '3.5', '18446744073709551616', '9007199254740993', '9007199254740991', '100000000', '-0', '1.0', '1e1', '01', '0x10', 'NaN', 'Infinity', 'null', 'true', '"4"', '[4]'];
const DTYPES = ['F32', 'F16', 'BF16', 'I64', 'U8', 'BOOL', 'F8_E5M2', 'F64', 'X', 'I4', 'f32', ''];

const headerEndOf = (bytes: Uint8Array) => (bytes.length < 8 ? 8 : 8 + Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true)));

function withHeader(text: string, data: Uint8Array, lengthOverride?: bigint): Uint8Array {
  const header = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + header.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(header.length), true);
  out.set(header, 8);
  out.set(data, 8 + header.length);
  return out;
}

function splitFile(bytes: Uint8Array): { text: string; data: Uint8Array } | undefined {
  const end = headerEndOf(bytes);
  if (end > bytes.length || end - 8 > 1e7) return undefined;
  return { text: new TextDecoder().decode(bytes.subarray(8, end)), data: bytes.subarray(end) };
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** One random mutation of a valid file (byte-level, header-text-level, or a generated "blow-up" header). */
export function mutateSafetensors(base: Uint8Array, random: () => number): Uint8Array {
  const pick = (n: number) => Math.floor(random() * n);
  let bytes: Uint8Array = base.slice();
  const rounds = 1 + pick(3);
  for (let k = 0; k < rounds; k++) {
    const headerEnd = Math.min(headerEndOf(bytes), bytes.length);
    const parts = splitFile(bytes);
    switch (pick(13)) {
      case 0:
        if (bytes.length) bytes[pick(bytes.length)] = pick(256);
        break;
      case 1:
        if (headerEnd > 8) bytes[8 + pick(headerEnd - 8)] = JSON_BYTES[pick(JSON_BYTES.length)];
        break;
      case 2:
        bytes = bytes.slice(0, pick(bytes.length + 1));
        break;
      case 3: {
        if (bytes.length < 8) break;
        const view = new DataView(bytes.buffer, bytes.byteOffset);
        const choices = [headerEnd - 8 + pick(17) - 8, pick(64), 2 ** 32 + pick(10), 100_000_001, 100_000_000, bytes.length, bytes.length - 8];
        view.setUint32(0, Math.max(0, choices[pick(choices.length)]) >>> 0, true);
        view.setUint32(4, pick(8) === 0 ? pick(2 ** 32) : 0, true);
        break;
      }
      case 4: {
        // replace a number of the header by an integer, a near-integer or a non-number
        if (!parts) break;
        const numbers = [...parts.text.matchAll(/\d+/g)];
        if (numbers.length === 0) break;
        const m = numbers[pick(numbers.length)];
        const replacement = pick(3) === 0 ? String(pick(bytes.length * 2)) : NUMBERS[pick(NUMBERS.length)];
        bytes = withHeader(parts.text.slice(0, m.index) + replacement + parts.text.slice(m.index! + m[0].length), parts.data);
        break;
      }
      case 5: {
        const a = pick(bytes.length + 1);
        bytes = concat(bytes.subarray(0, a), bytes.subarray(Math.min(bytes.length, a + 1 + pick(16))));
        break;
      }
      case 6: {
        const a = pick(bytes.length + 1);
        const b = Math.min(bytes.length, a + 1 + pick(64));
        bytes = concat(bytes.subarray(0, b), bytes.subarray(a, b), bytes.subarray(b));
        break;
      }
      case 7: {
        if (!parts) break;
        const swapped = parts.text.replace(/"(F32|BF16|F16|I64|BOOL|I32|F8_E4M3|U8|F64|I16)"/, `"${DTYPES[pick(DTYPES.length)]}"`);
        bytes = withHeader(swapped, parts.data);
        break;
      }
      case 8: {
        // text before or after the object: whitespace padding (valid after), a BOM or spaces before (invalid)
        if (!parts) break;
        const pads = [' ', '    ', '\n', '\t', '\r\n', '\u00a0', '\0', 'x'];
        const pad = pads[pick(pads.length)];
        const text = pick(2) === 0 ? parts.text + pad : (pick(2) ? '\ufeff' : pad) + parts.text;
        bytes = withHeader(text, parts.data);
        break;
      }
      case 9: {
        // an unknown key inside an entry, a duplicate key, or a duplicate tensor
        if (!parts) break;
        const inserts = [
          '"extra":{"a":[1,2,{"b":null}],"c":"d"},',
          '"dtype":"F32",',
          '"shape":[1],',
          '"data_offsets":[0,0],',
          '"x":-1.5e3,',
          '"n":[[[[[[[[[[[[]]]]]]]]]]]],',
        ];
        const at = parts.text.indexOf('{', 1);
        if (at < 0) break;
        const ins = inserts[pick(inserts.length)];
        bytes = withHeader(parts.text.slice(0, at + 1) + ins + parts.text.slice(at + 1), parts.data);
        break;
      }
      case 10: {
        // re-encode a key with escapes, or duplicate a whole member
        if (!parts) break;
        const keys = [...parts.text.matchAll(/"([a-z_.0-9]+)":\{/g)];
        if (keys.length === 0) break;
        const m = keys[pick(keys.length)];
        const escaped = m[1].replace(/./, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
        bytes = pick(2) === 0 ? withHeader(parts.text.replace(`"${m[1]}":{`, `"${escaped}":{`), parts.data) : withHeader(parts.text.replace('{', `{"${escaped}":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},`), parts.data);
        break;
      }
      case 11: {
        // metadata variants
        if (!parts) break;
        const metas = ['{"a":"b"}', '{"a":1}', '{"a":"b","a":"c"}', '[]', '"x"', 'null', '{}', '{"__proto__":"x"}'];
        const text = parts.text.replace(/"__metadata__":\{[^}]*\}/, `"__metadata__":${metas[pick(metas.length)]}`);
        bytes = withHeader(text === parts.text ? parts.text.replace('{', `{"__metadata__":${metas[pick(metas.length)]},`) : text, parts.data);
        break;
      }
      default: {
        // append or remove data bytes
        bytes = pick(2) === 0 ? concat(bytes, new Uint8Array(1 + pick(9))) : bytes.slice(0, Math.max(0, bytes.length - 1 - pick(4)));
        break;
      }
    }
  }
  return bytes;
}

/** Headers that are small on disk but ask for much work or memory. */
export function blowUp(random: () => number, scale = 1): Uint8Array {
  const pick = (n: number) => Math.floor(random() * n);
  switch (pick(5)) {
    case 0: {
      // many zero-size tensors (around the tensor cap)
      const n = Math.floor((pick(2) ? 262_144 + pick(3) - 1 : 1 + pick(5000)) * scale) || 1;
      const parts: string[] = [];
      for (let i = 0; i < n; i++) parts.push(`"t${i}":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}`);
      return withHeader(`{${parts.join(',')}}`, new Uint8Array(0));
    }
    case 1: {
      // a long shape
      const rank = pick(2) ? 64 + pick(3) - 1 : pick(100_000 * scale) + 1;
      return withHeader(`{"t":{"dtype":"U8","shape":[${new Array(rank).fill(1).join(',')}],"data_offsets":[0,1]}}`, new Uint8Array(1));
    }
    case 2: {
      // deep nesting in an ignored field
      const depth = 1 + pick(200_000 * scale);
      return withHeader(`{"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":${'['.repeat(depth)}${']'.repeat(depth - (pick(2) ? 0 : 1))}}}`, new Uint8Array(1));
    }
    case 3: {
      // a big metadata map
      const n = 1 + pick(50_000 * scale);
      const meta = Array.from({ length: n }, (_, i) => `"k${i}":"${'v'.repeat(i % 7)}"`).join(',');
      return withHeader(`{"__metadata__":{${meta}},"t":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}`, new Uint8Array(2));
    }
    default: {
      // long strings with escapes
      const n = 1 + pick(200_000 * scale);
      return withHeader(`{"${'\\u0061'.repeat(n)}":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}`, new Uint8Array(0));
    }
  }
}

// ---------------------------------------------------------------------------
// The independent validator

type JsonNode =
  | { kind: 'object'; members: [string, JsonNode][] }
  | { kind: 'array'; items: JsonNode[] }
  | { kind: 'string'; value: string }
  | { kind: 'number'; raw: string }
  | { kind: 'literal' };

/** A plain JSON reader (explicit stack, any depth) that keeps duplicate keys and raw number text. */
function readJson(text: string): JsonNode {
  let i = 0;
  const fail = (): never => {
    throw new SyntaxError(`bad JSON at ${i}`);
  };
  const ws = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  };
  const str = (): string => {
    if (text[i] !== '"') fail();
    let out = '';
    for (i++; ; ) {
      if (i >= text.length) fail();
      const c = text[i];
      if (c === '"') {
        i++;
        return out;
      }
      if (c.charCodeAt(0) < 0x20) fail();
      if (c === '\\') {
        const e = text[i + 1];
        const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
        if (e === 'u') {
          const hex = text.slice(i + 2, i + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail();
          out += String.fromCharCode(parseInt(hex, 16));
          i += 6;
        } else if (e !== undefined && Object.hasOwn(simple, e)) {
          out += simple[e];
          i += 2;
        } else fail();
      } else {
        out += c;
        i++;
      }
    }
  };
  type Frame = { node: Extract<JsonNode, { kind: 'object' }>; key: string } | { node: Extract<JsonNode, { kind: 'array' }> };
  const stack: Frame[] = [];
  const key = () => {
    ws();
    const k = str();
    ws();
    if (text[i++] !== ':') fail();
    return k;
  };
  for (;;) {
    ws();
    const c = text[i];
    let value: JsonNode | undefined;
    if (c === '{' || c === '[') {
      i++;
      ws();
      if (c === '{') {
        const node: JsonNode = { kind: 'object', members: [] };
        if (text[i] === '}') {
          i++;
          value = node;
        } else {
          stack.push({ node, key: key() });
          continue;
        }
      } else {
        const node: JsonNode = { kind: 'array', items: [] };
        if (text[i] === ']') {
          i++;
          value = node;
        } else {
          stack.push({ node });
          continue;
        }
      }
    } else if (c === '"') value = { kind: 'string', value: str() };
    else {
      const num = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(text.slice(i, i + 1000));
      if (num) {
        i += num[0].length;
        value = { kind: 'number', raw: num[0] };
      } else {
        const word = ['true', 'false', 'null'].find((w) => text.startsWith(w, i));
        if (!word) fail();
        i += word!.length;
        value = { kind: 'literal' };
      }
    }
    // Attach the value, closing every container it completes.
    for (;;) {
      const top = stack[stack.length - 1];
      if (!top) {
        ws();
        if (i !== text.length) fail();
        return value!;
      }
      if ('key' in top) top.node.members.push([top.key, value!]);
      else top.node.items.push(value!);
      ws();
      const close = top.node.kind === 'object' ? '}' : ']';
      if (text[i] === ',') {
        i++;
        if ('key' in top) top.key = key();
        break;
      }
      if (text[i] !== close) fail();
      i++;
      stack.pop();
      value = top.node;
    }
  }
}

const SIZES: Record<string, bigint> = { F64: 8n, F32: 4n, F16: 2n, BF16: 2n, F8_E4M3: 1n, F8_E5M2: 1n, I64: 8n, I32: 4n, I16: 2n, I8: 1n, U64: 8n, U32: 4n, U16: 2n, U8: 1n, BOOL: 1n };
const LIMIT_TENSORS = 262_144;
const LIMIT_RANK = 64;

/** What the validator expects of one file. */
export type Expected =
  | { valid: true; dataStart: number; tensors: Map<string, { dtype: string; shape: number[]; begin: number; end: number }>; metadata: Record<string, string> }
  | { valid: false; reason: string };

/** Validates a safetensors file from the format's rules alone. */
export function validateSafetensors(bytes: Uint8Array): Expected {
  const no = (reason: string): Expected => ({ valid: false, reason });
  if (bytes.length < 8) return no('shorter than 8 bytes');
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n > 100_000_000n) return no('header over 100 MB');
  if (8n + n > BigInt(bytes.length)) return no('header runs past the end');
  const headerBytes = bytes.subarray(8, 8 + Number(n));
  if (headerBytes[0] !== 0x7b) return no('header does not start with {');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    return no('not UTF-8');
  }
  let root: JsonNode;
  try {
    root = readJson(text);
  } catch {
    return no('not JSON');
  }
  if (root.kind !== 'object') return no('not an object');
  const dataStart = 8 + Number(n);
  const dataSize = BigInt(bytes.length - dataStart);
  const tensors = new Map<string, { dtype: string; shape: number[]; begin: number; end: number }>();
  const metadata: Record<string, string> = Object.create(null) as Record<string, string>;
  const seenTop = new Set<string>();
  const asInteger = (node: JsonNode | undefined): bigint | undefined => {
    if (node?.kind !== 'number' || !/^(0|[1-9][0-9]*)$/.test(node.raw)) return undefined;
    const v = BigInt(node.raw);
    return v <= BigInt(Number.MAX_SAFE_INTEGER) ? v : undefined;
  };
  for (const [name, entry] of root.members) {
    if (seenTop.has(name)) return no(`duplicate ${name}`);
    seenTop.add(name);
    if (name === '__metadata__') {
      if (entry.kind !== 'object') return no('metadata not an object');
      const keys = new Set<string>();
      for (const [k, v] of entry.members) {
        if (keys.has(k)) return no('duplicate metadata key');
        keys.add(k);
        if (v.kind !== 'string') return no('metadata value not a string');
        metadata[k] = v.value;
      }
      continue;
    }
    if (entry.kind !== 'object') return no('entry not an object');
    const fields = new Map<string, JsonNode>();
    for (const [k, v] of entry.members) {
      if (k === 'dtype' || k === 'shape' || k === 'data_offsets') {
        if (fields.has(k)) return no('duplicate field');
        fields.set(k, v);
      }
    }
    const dtype = fields.get('dtype');
    if (dtype?.kind !== 'string' || !Object.hasOwn(SIZES, dtype.value)) return no('bad dtype');
    const shape = fields.get('shape');
    if (shape?.kind !== 'array' || shape.items.length > LIMIT_RANK) return no('bad shape');
    const dims = shape.items.map(asInteger);
    if (dims.some((d) => d === undefined)) return no('bad dim');
    const offsets = fields.get('data_offsets');
    if (offsets?.kind !== 'array' || offsets.items.length !== 2) return no('bad offsets');
    const [begin, end] = offsets.items.map(asInteger);
    if (begin === undefined || end === undefined || begin > end) return no('bad offsets');
    const count = (dims as bigint[]).reduce((a, b) => a * b, 1n);
    if (count * SIZES[dtype.value] !== end - begin) return no('size mismatch');
    tensors.set(name, { dtype: dtype.value, shape: (dims as bigint[]).map(Number), begin: Number(begin), end: Number(end) });
    if (tensors.size > LIMIT_TENSORS) return no('too many tensors');
  }
  const spans = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0n;
  for (const { begin, end } of spans) {
    if (BigInt(begin) !== at) return no('hole or overlap');
    at = BigInt(end);
  }
  if (at !== dataSize) return no('data section not covered exactly');
  return { valid: true, dataStart, tensors, metadata };
}

// ---------------------------------------------------------------------------
// Running one case

/** How one case ended. `typed` and `agree` are the good outcomes. */
export type Outcome = 'agree' | 'typed' | 'untyped' | 'wrong-silent' | 'false-refusal' | 'outside-read' | 'hang';

/** The outcome of one case, with a reason for the bad ones. */
export interface CaseResult {
  outcome: Outcome;
  detail?: string;
  code?: string;
  /** Milliseconds spent in the package (open and reads), the validator left out. */
  ms?: number;
}

const isTyped = (error: unknown) => CheckpointError.isCheckpointError(error) && error instanceof CheckpointError;

/** Opens one file through the public API, reads every tensor, and compares with the validator. */
export async function checkSingle(bytes: Uint8Array): Promise<CaseResult> {
  const expected = validateSafetensors(bytes);
  let got: Map<string, { dtype: string; shape: readonly number[]; offset: number; byteLength: number; bytes: Uint8Array }>;
  let metadata: Readonly<Record<string, string>>;
  const t0 = performance.now();
  const result = (r: CaseResult): CaseResult => ({ ...r, ms });
  let ms = 0;
  try {
    const st = await openSafetensors(bufferSource(bytes, 'fuzz.safetensors'));
    got = new Map();
    for (const name of st.names()) {
      const info = st.tensor(name);
      got.set(name, { ...info, bytes: await st.readBytes(name) });
    }
    metadata = st.metadata;
    await st.close();
    ms = performance.now() - t0;
  } catch (error) {
    ms = performance.now() - t0;
    if (!isTyped(error)) return result({ outcome: 'untyped', detail: String((error as Error)?.stack ?? error) });
    const code = (error as CheckpointError).code;
    if (expected.valid) return result({ outcome: 'false-refusal', detail: `${code}: ${(error as Error).message}`, code });
    return result({ outcome: 'typed', code });
  }
  if (!expected.valid) return result({ outcome: 'wrong-silent', detail: `opened, validator says: ${expected.reason}` });
  if (got.size !== expected.tensors.size) return { outcome: 'wrong-silent', detail: `tensor count ${got.size} != ${expected.tensors.size}` };
  for (const [name, want] of expected.tensors) {
    const t = got.get(name);
    if (!t) return { outcome: 'wrong-silent', detail: `missing ${name}` };
    if (t.dtype !== want.dtype || t.shape.join() !== want.shape.join() || t.offset !== expected.dataStart + want.begin || t.byteLength !== want.end - want.begin) {
      return { outcome: 'wrong-silent', detail: `info of ${name} differs` };
    }
    const slice = bytes.subarray(expected.dataStart + want.begin, expected.dataStart + want.end);
    if (!Buffer.from(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength).equals(Buffer.from(slice.buffer, slice.byteOffset, slice.byteLength))) {
      return { outcome: 'wrong-silent', detail: `bytes of ${name} differ` };
    }
  }
  if (JSON.stringify(Object.entries(metadata).sort()) !== JSON.stringify(Object.entries(expected.metadata).sort())) return result({ outcome: 'wrong-silent', detail: 'metadata differs' });
  return result({ outcome: 'agree' });
}

// ---------------------------------------------------------------------------
// Sharded folders

/** The tensors of the sharded base model: name -> shard index. */
const SHARD_TENSORS: [string, number, TensorToWrite][] = [
  ['a.weight', 0, { dtype: 'F32', shape: [2, 3], data: floats(6, 11) }],
  ['a.bias', 0, { dtype: 'BF16', shape: [3], data: floats(3, 12) }],
  ['b.weight', 1, { dtype: 'F16', shape: [4], data: floats(4, 13) }],
  ['b.ids', 1, { dtype: 'I32', shape: [2], data: new Int32Array([5, -6]) }],
  ['c.weight', 2, { dtype: 'F32', shape: [1, 5], data: floats(5, 14) }],
  ['c.empty', 2, { dtype: 'U8', shape: [0], data: new Uint8Array(0) }],
];
const shardName = (i: number) => `model-0000${i + 1}-of-00003.safetensors`;

/** A file outside every model folder holding the same tensor names, all bytes 0xAB: reading it is reading outside. */
export function writeOutsideFile(path: string): void {
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, , t] of SHARD_TENSORS) {
    const size = t.data.byteLength;
    tensors[name] = { dtype: 'U8', shape: [size], data: new Uint8Array(size).fill(0xab) };
  }
  writeFileSync(path, writeSafetensors(tensors));
}

const UNSAFE_NAMES = ['../outside.safetensors', '/etc/passwd', 'sub/x.safetensors', '..', '.', '', 'a\\b', 'C:x', 'x\u0000y', '%2e%2e%2foutside.safetensors', '..%2foutside.safetensors', 'a'.repeat(300), 'ok name.safetensors'];

/**
 * Writes a mutated sharded folder in `dir` (an empty directory). `outside` is a
 * valid safetensors file outside the folder (see {@link writeOutsideFile}).
 * Returns a label of the mutation.
 */
export function writeShardedFolder(dir: string, outside: string, random: () => number): string {
  const pick = (n: number) => Math.floor(random() * n);
  const shards: Record<string, TensorToWrite>[] = [{}, {}, {}];
  const weightMap: Record<string, string> = {};
  for (const [name, i, t] of SHARD_TENSORS) {
    shards[i][name] = t;
    weightMap[name] = shardName(i);
  }
  const files = new Map<string, Uint8Array>(shards.map((tensors, i) => [shardName(i), writeSafetensors(tensors)]));
  let indexText: string | undefined;
  const special: [string, 'symlink-out' | 'symlink-in' | 'dangling' | 'fifo' | 'dir' | 'symlink-dir' | 'symlink-fifo' | 'dev' | 'loop'][] = [];
  const labels: string[] = [];
  const rounds = 1 + pick(2);
  for (let k = 0; k < rounds; k++) {
    const target = shardName(pick(3));
    switch (pick(9)) {
      case 0:
      case 1: {
        const kinds = ['symlink-out', 'symlink-in', 'dangling', 'fifo', 'dir', 'symlink-dir', 'symlink-fifo', 'dev', 'loop'] as const;
        const kind = kinds[pick(kinds.length)];
        if (special.some(([name]) => name === target)) break;
        special.push([target, kind]);
        files.delete(target);
        labels.push(kind);
        break;
      }
      case 2: {
        const name = UNSAFE_NAMES[pick(UNSAFE_NAMES.length)];
        const tensor = SHARD_TENSORS[pick(SHARD_TENSORS.length)][0];
        weightMap[tensor] = name;
        labels.push('unsafe-name');
        break;
      }
      case 3: {
        const bytes = files.get(target);
        if (bytes) files.set(target, mutateSafetensors(bytes, random));
        labels.push('mutated-shard');
        break;
      }
      case 4: {
        // wrong shard, missing shard, unknown tensor
        const tensor = SHARD_TENSORS[pick(SHARD_TENSORS.length)][0];
        const choice = pick(3);
        if (choice === 0) weightMap[tensor] = shardName((SHARD_TENSORS.find((t) => t[0] === tensor)![1] + 1) % 3);
        else if (choice === 1) files.delete(target);
        else weightMap['not.in.any.shard'] = target;
        labels.push('index-mismatch');
        break;
      }
      case 5: {
        const texts = ['{"weight_map": ', '[]', '{"weight_map": []}', '{"weight_map": {"a.weight": 3}}', '{}', 'null', '{"weight_map": {}}', '\ufeff{"weight_map": {}}'];
        indexText = texts[pick(texts.length)];
        labels.push('bad-index');
        break;
      }
      case 6:
        if (special.some(([name]) => name === 'model.safetensors.index.json')) break;
        special.push(['model.safetensors.index.json', (['symlink-out', 'fifo', 'dir'] as const)[pick(3)]]);
        labels.push('index-special');
        break;
      default:
        labels.push('valid');
        break;
    }
  }
  const indexPath = join(dir, 'model.safetensors.index.json');
  for (const [name, bytes] of files) writeFileSync(join(dir, name), bytes);
  if (!special.some(([name]) => name === 'model.safetensors.index.json')) {
    writeFileSync(indexPath, indexText ?? JSON.stringify({ metadata: { total_size: 1 }, weight_map: weightMap }));
  }
  for (const [name, kind] of special) {
    const path = join(dir, name);
    const outsideIndex = `${outside}.index.json`;
    switch (kind) {
      case 'symlink-out':
        if (name === 'model.safetensors.index.json') {
          writeFileSync(outsideIndex, JSON.stringify({ weight_map: weightMap }));
          symlinkSync(outsideIndex, path);
        } else symlinkSync(outside, path);
        break;
      case 'symlink-in': {
        writeFileSync(join(dir, `real-${name}`), writeSafetensors(shards[Number(name[10]) - 1] ?? {}));
        symlinkSync(`real-${name}`, path);
        break;
      }
      case 'dangling':
        symlinkSync(join(dir, 'nowhere'), path);
        break;
      case 'fifo':
        execFileSync('mkfifo', [path]);
        break;
      case 'dir':
        mkdirSync(path);
        break;
      case 'symlink-dir':
        symlinkSync(dir, path);
        break;
      case 'symlink-fifo': {
        const fifo = `${outside}.fifo`;
        try {
          statSync(fifo);
        } catch {
          execFileSync('mkfifo', [fifo]);
        }
        symlinkSync(fifo, path);
        break;
      }
      case 'dev':
        symlinkSync('/dev/zero', path);
        break;
      case 'loop':
        symlinkSync(name, path);
        break;
    }
  }
  return labels.join('+');
}

const isPlain = (name: string) => /^[^/\\:\u0000-\u001f\u007f]{1,255}$/.test(name) && name !== '.' && name !== '..';

/** What the validator expects of a folder: the bytes of every tensor of the weight_map, or invalid. */
export function validateFolder(dir: string): { valid: true; tensors: Map<string, Uint8Array> } | { valid: false; reason: string } {
  const no = (reason: string) => ({ valid: false as const, reason });
  const root = realpathSync(dir);
  const inside = (name: string): string | undefined => {
    if (!isPlain(name)) return undefined;
    let real: string;
    try {
      real = realpathSync(join(dir, name));
    } catch {
      return undefined;
    }
    if (!real.startsWith(root + '/')) return undefined;
    return statSync(real).isFile() ? real : undefined;
  };
  const indexPath = inside('model.safetensors.index.json');
  if (!indexPath) return no('index unusable');
  let index: unknown;
  try {
    index = JSON.parse(readFileSync(indexPath, 'utf8'));
  } catch {
    return no('index not JSON');
  }
  const map = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) return no('no weight_map');
  const shards = new Map<string, Expected>();
  const tensors = new Map<string, Uint8Array>();
  for (const [tensor, shard] of Object.entries(map)) {
    if (typeof shard !== 'string' || !isPlain(shard)) return no('bad shard name');
    let expected = shards.get(shard);
    if (!expected) {
      const real = inside(shard);
      if (!real) return no(`shard ${shard} unusable`);
      expected = validateSafetensors(new Uint8Array(readFileSync(real)));
      if (!expected.valid) return no(`shard ${shard} invalid`);
      shards.set(shard, expected);
      const bytes = new Uint8Array(readFileSync(real));
      (expected as Expected & { bytes?: Uint8Array }).bytes = bytes;
    }
    if (!expected.valid) return no('invalid');
    const info = expected.tensors.get(tensor);
    if (!info) return no(`tensor ${tensor} not in ${shard}`);
    const bytes = (expected as Expected & { bytes: Uint8Array }).bytes;
    tensors.set(tensor, bytes.subarray(expected.dataStart + info.begin, expected.dataStart + info.end));
  }
  // A shard may not hold a tensor that the weight_map puts in another shard.
  const assigned = map as Record<string, unknown>;
  for (const [shard, expected] of shards) {
    if (!expected.valid) continue;
    for (const tensor of expected.tensors.keys()) {
      if (Object.hasOwn(assigned, tensor) && assigned[tensor] !== shard) return no(`tensor ${tensor} in ${shard} and in ${String(assigned[tensor])}`);
    }
  }
  return { valid: true, tensors };
}

/** Opens a folder through openModel, reads every tensor, and compares with {@link validateFolder}. */
export async function checkFolder(dir: string): Promise<CaseResult> {
  // The validator first: it never opens a FIFO (it stats first), so it cannot hang.
  const expected = validateFolder(dir);
  let got: Map<string, Uint8Array>;
  let checkpoint: Awaited<ReturnType<Awaited<ReturnType<typeof openModel>>['weights']>> | undefined;
  try {
    checkpoint = await (await openModel(dir)).weights();
    got = new Map();
    for (const name of checkpoint.names()) got.set(name, await checkpoint.readBytes(name));
    await checkpoint.close();
  } catch (error) {
    await checkpoint?.close();
    if (!isTyped(error)) return { outcome: 'untyped', detail: String((error as Error)?.stack ?? error) };
    const code = (error as CheckpointError).code;
    if (expected.valid) return { outcome: 'false-refusal', detail: `${code}: ${(error as Error).message}`, code };
    return { outcome: 'typed', code };
  }
  for (const bytes of got.values()) {
    if (bytes.length > 0 && bytes.every((b) => b === 0xab)) return { outcome: 'outside-read', detail: 'returned the bytes of the file outside the folder' };
  }
  if (!expected.valid) return { outcome: 'wrong-silent', detail: `opened, validator says: ${expected.reason}` };
  if (got.size !== expected.tensors.size) return { outcome: 'wrong-silent', detail: 'tensor count differs' };
  for (const [name, want] of expected.tensors) {
    const have = got.get(name);
    if (!have || !Buffer.from(have).equals(Buffer.from(want))) return { outcome: 'wrong-silent', detail: `bytes of ${name} differ` };
  }
  return { outcome: 'agree' };
}

/** Unblocks anything stuck opening a FIFO under `dir` (opens each for writing, non-blocking) after a timeout. */
export function releaseFifos(paths: string[]): void {
  for (const path of paths) {
    try {
      if (!lstatSync(path).isFIFO()) continue;
      const fd = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
      closeSync(fd);
    } catch {
      // no reader waiting, or not there
    }
  }
}

/** Runs `task` with a time limit; resolves to 'hang' when it does not settle in time. */
export async function withTimeout<T>(task: Promise<T>, ms: number): Promise<T | 'hang'> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<'hang'>((resolve) => (timer = setTimeout(() => resolve('hang'), ms)));
  try {
    return await Promise.race([task, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
