/**
 * tokenizer.json `decoder` section, with the semantics of tokenizers' `decoders/*.rs`: each
 * decoder maps the list of token strings to a new list (`decode_chain`), and the result is joined.
 */
import { CHAR_TO_BYTE } from './byte-level.js';
import { compilePattern } from './pattern.js';
import { metaspacePrependScheme } from './pre-tokenizer.js';
import { MAX_NESTING, checkNesting, expectArray, expectChar, expectObject, expectString, invalid, unsupported, type JsonObject } from './json.js';

/** One `decode_chain` step. */
export type Decoder = (tokens: string[]) => string[];

const lossyUtf8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8 = new TextEncoder();
const REPLACEMENT = '\ufffd';

/**
 * ByteLevel: every token whose characters are all byte symbols becomes those bytes, any other
 * token (an added token such as "<|im_start|>" made of non-symbol characters) its own UTF-8
 * bytes; the whole byte string is decoded once with U+FFFD for invalid sequences, like Rust's
 * `String::from_utf8_lossy` (both replace each maximal invalid subpart by one U+FFFD).
 */
function byteLevel(tokens: string[]): string[] {
  const bytes: number[] = [];
  for (const token of tokens) {
    const mapped: number[] = [];
    let allSymbols = true;
    for (const ch of token) {
      const b = CHAR_TO_BYTE.get(ch);
      if (b === undefined) {
        allSymbols = false;
        break;
      }
      mapped.push(b);
    }
    // Element by element: a spread of a long token would overflow the call stack.
    if (allSymbols) for (const b of mapped) bytes.push(b);
    else for (const b of utf8.encode(token)) bytes.push(b);
  }
  return [lossyUtf8.decode(new Uint8Array(bytes))];
}

/** ByteFallback: runs of "<0xAB>" tokens become their UTF-8 text, or one U+FFFD per byte if invalid. */
function byteFallback(tokens: string[]): string[] {
  const out: string[] = [];
  let pending: number[] = [];
  const flush = () => {
    if (pending.length === 0) return;
    try {
      out.push(strictUtf8.decode(new Uint8Array(pending)));
    } catch {
      for (let i = 0; i < pending.length; i++) out.push(REPLACEMENT);
    }
    pending = [];
  };
  for (const token of tokens) {
    const byte = byteFallbackByte(token);
    if (byte !== null) pending.push(byte);
    else {
      flush();
      out.push(token);
    }
  }
  flush();
  return out;
}

/** The byte of a ByteFallback token ("<0xAB>" -> 0xAB), or null for any other token. */
export function byteFallbackByte(token: string): number | null {
  if (token.length !== 6 || !token.startsWith('<0x') || !token.endsWith('>')) return null;
  const hex = token.slice(3, 5);
  return /^[0-9a-fA-F]{2}$/.test(hex) ? parseInt(hex, 16) : null;
}

/** Whether a tokenizer.json `decoder` value has a ByteFallback step (at any depth of its Sequences). */
export function decoderHasByteFallback(value: unknown, depth = 0): boolean {
  if (depth > MAX_NESTING) return false;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const config = value as JsonObject;
  if (config.type === 'ByteFallback') return true;
  return config.type === 'Sequence' && Array.isArray(config.decoders) && config.decoders.some((child) => decoderHasByteFallback(child, depth + 1));
}

/** Builds the decoder described by a tokenizer.json `decoder` value (null: none). */
export function createDecoder(value: unknown, where = 'tokenizer.json decoder', depth = 0): Decoder | null {
  if (value === null || value === undefined) return null;
  checkNesting(depth, where);
  const config: JsonObject = expectObject(value, where);
  const type = config.type;
  switch (type) {
    case 'Sequence': {
      const steps = expectArray(config.decoders, `${where}.decoders`)
        .map((child, i) => createDecoder(child, `${where}.decoders[${i}]`, depth + 1))
        .filter((step): step is Decoder => step !== null);
      return (tokens) => steps.reduce((acc, step) => step(acc), tokens);
    }
    case 'ByteLevel':
      return byteLevel;
    case 'ByteFallback':
      return byteFallback;
    case 'Fuse':
      return (tokens) => [tokens.join('')];
    case 'Replace': {
      const regex = compilePattern(config.pattern, `${where}.pattern`);
      const content = expectString(config.content, `${where}.content`);
      return (tokens) => tokens.map((token) => token.replace(regex, () => content));
    }
    case 'Strip': {
      const content = expectChar(config.content, `${where}.content`);
      const start = count(config.start, `${where}.start`);
      const stop = count(config.stop, `${where}.stop`);
      return (tokens) =>
        tokens.map((token) => {
          const chars = [...token];
          let startCut = 0;
          for (let i = 0; i < Math.min(start, chars.length) && chars[i] === content; i++) startCut = i + 1;
          let stopCut = chars.length;
          for (let i = 0; i < Math.min(stop, chars.length - startCut); i++) {
            const index = chars.length - i - 1;
            if (chars[index] !== content) break;
            stopCut = index;
          }
          return chars.slice(startCut, stopCut).join('');
        });
    }
    case 'Metaspace': {
      const replacement = expectChar(config.replacement ?? '\u2581', `${where}.replacement`);
      const dropInFirst = metaspacePrependScheme(config, where) !== 'never';
      // As in tokenizers: in the first token every replacement character is dropped, not only a leading one.
      return (tokens) => tokens.map((token, i) => token.replaceAll(replacement, i === 0 && dropInFirst ? '' : ' '));
    }
    default:
      return unsupported(where, `decoder type ${JSON.stringify(type)} is not supported (supported: ByteLevel, ByteFallback, Fuse, Replace, Strip, Metaspace, Sequence)`);
  }
}

function count(value: unknown, where: string): number {
  if (value === undefined || value === null) return 0;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) invalid(where, `expected a non-negative integer, got ${JSON.stringify(value)}`);
  return value;
}
