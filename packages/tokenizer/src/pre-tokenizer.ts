/**
 * tokenizer.json `pre_tokenizer` section, with the semantics of tokenizers' `pre_tokenizers/*.rs`
 * and `NormalizedString::split` (the five split behaviours).
 */
import { byteLevelEncode, GPT2_SPLIT } from './byte-level.js';
import { compilePattern, findMatches } from './pattern.js';
import { checkNesting, expectArray, expectChar, expectObject, invalid, optionalBoolean, unsupported, type JsonObject } from './json.js';

/** A piece of text between pre-tokenization steps; `atStart` is true when it begins at offset 0 of the original input. */
export interface Piece {
  text: string;
  atStart: boolean;
}

/** Splits pieces into smaller pieces (and may rewrite them, as ByteLevel and Metaspace do). */
export type PreTokenizer = (pieces: Piece[]) => Piece[];

type SplitBehavior = 'Removed' | 'Isolated' | 'MergedWithPrevious' | 'MergedWithNext' | 'Contiguous';
const BEHAVIORS: readonly SplitBehavior[] = ['Removed', 'Isolated', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous'];

/**
 * `NormalizedString::split(pattern, behavior)`: flagged spans -> pieces. Empty pieces are dropped,
 * as `PreTokenizedString::split` drops them.
 */
export function splitPiece(piece: Piece, regex: RegExp, behavior: SplitBehavior, invert = false): Piece[] {
  const { text } = piece;
  if (text.length === 0) return [];
  const spans = findMatches(text, regex).map(([s, e, m]) => [s, e, invert ? !m : m] as [number, number, boolean]);
  const kept: Array<[number, number]> = [];
  let previousMatch = false;
  switch (behavior) {
    case 'Isolated':
      for (const [s, e] of spans) kept.push([s, e]);
      break;
    case 'Removed':
      for (const [s, e, m] of spans) if (!m) kept.push([s, e]);
      break;
    case 'Contiguous':
      for (const [s, e, m] of spans) {
        if (m === previousMatch && kept.length > 0) kept[kept.length - 1][1] = e;
        else kept.push([s, e]);
        previousMatch = m;
      }
      break;
    case 'MergedWithPrevious':
      for (const [s, e, m] of spans) {
        if (m && !previousMatch && kept.length > 0) kept[kept.length - 1][1] = e;
        else kept.push([s, e]);
        previousMatch = m;
      }
      break;
    case 'MergedWithNext':
      for (let i = spans.length - 1; i >= 0; i--) {
        const [s, e, m] = spans[i];
        if (m && !previousMatch && kept.length > 0) kept[kept.length - 1][0] = s;
        else kept.push([s, e]);
        previousMatch = m;
      }
      kept.reverse();
      break;
  }
  return kept
    .filter(([s, e]) => e > s)
    .map(([s, e]) => ({ text: text.slice(s, e), atStart: piece.atStart && s === 0 }));
}

function parseBehavior(value: unknown, where: string): SplitBehavior {
  if (typeof value === 'string' && (BEHAVIORS as readonly string[]).includes(value)) return value as SplitBehavior;
  return invalid(where, `expected one of ${BEHAVIORS.join(', ')}, got ${JSON.stringify(value)}`);
}

const NUMERIC = /\p{N}/gu; // Rust's char::is_numeric: Nd, Nl and No

/** Builds the pre-tokenizer described by a tokenizer.json `pre_tokenizer` value (null: none). */
export function createPreTokenizer(value: unknown, where = 'tokenizer.json pre_tokenizer', depth = 0): PreTokenizer | null {
  if (value === null || value === undefined) return null;
  checkNesting(depth, where);
  const config: JsonObject = expectObject(value, where);
  const type = config.type;
  switch (type) {
    case 'Sequence': {
      const steps = expectArray(config.pretokenizers, `${where}.pretokenizers`)
        .map((child, i) => createPreTokenizer(child, `${where}.pretokenizers[${i}]`, depth + 1))
        .filter((step): step is PreTokenizer => step !== null);
      return (pieces) => steps.reduce((acc, step) => step(acc), pieces);
    }
    case 'ByteLevel': {
      const addPrefixSpace = optionalBoolean(config.add_prefix_space, `${where}.add_prefix_space`, true);
      const useRegex = optionalBoolean(config.use_regex, `${where}.use_regex`, true);
      return (pieces) =>
        pieces.flatMap((piece) => {
          let current = piece;
          if (addPrefixSpace && current.text.length > 0 && !current.text.startsWith(' ')) {
            current = { text: ' ' + current.text, atStart: current.atStart };
          }
          const parts = useRegex ? splitPiece(current, GPT2_SPLIT, 'Isolated') : current.text.length > 0 ? [current] : [];
          return parts.map((part) => ({ text: byteLevelEncode(part.text), atStart: part.atStart }));
        });
    }
    case 'Split': {
      const regex = compilePattern(config.pattern, `${where}.pattern`);
      const behavior = parseBehavior(config.behavior, `${where}.behavior`);
      const invert = optionalBoolean(config.invert, `${where}.invert`, false);
      return (pieces) => pieces.flatMap((piece) => splitPiece(piece, regex, behavior, invert));
    }
    case 'Digits': {
      const individual = optionalBoolean(config.individual_digits, `${where}.individual_digits`, false);
      return (pieces) => pieces.flatMap((piece) => splitPiece(piece, NUMERIC, individual ? 'Isolated' : 'Contiguous'));
    }
    case 'Metaspace': {
      const replacement = expectChar(config.replacement ?? '\u2581', `${where}.replacement`);
      const scheme = metaspacePrependScheme(config, where);
      const split = optionalBoolean(config.split, `${where}.split`, true);
      const separator = new RegExp(replacement.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'gu');
      return (pieces) =>
        pieces.flatMap((piece) => {
          let text = piece.text.replaceAll(' ', replacement);
          const prepend =
            text.length > 0 && !text.startsWith(replacement) && (scheme === 'always' || (scheme === 'first' && piece.atStart));
          if (prepend) text = replacement + text;
          const current = { text, atStart: piece.atStart };
          if (!split) return text.length > 0 ? [current] : [];
          return splitPiece(current, separator, 'MergedWithNext');
        });
    }
    default:
      return unsupported(where, `pre-tokenizer type ${JSON.stringify(type)} is not supported (supported: ByteLevel, Split, Metaspace, Digits, Sequence)`);
  }
}

/** Metaspace's `prepend_scheme`, or the legacy `add_prefix_space` flag it replaced. */
export function metaspacePrependScheme(config: JsonObject, where: string): 'always' | 'first' | 'never' {
  const scheme = config.prepend_scheme;
  if (scheme === 'always' || scheme === 'first' || scheme === 'never') return scheme;
  if (scheme !== undefined && scheme !== null) invalid(`${where}.prepend_scheme`, `expected always, first or never, got ${JSON.stringify(scheme)}`);
  return optionalBoolean(config.add_prefix_space, `${where}.add_prefix_space`, true) ? 'always' : 'never';
}
