/** Compiles tokenizer.json `pattern` fields ({ String } or { Regex }) into JavaScript regular expressions. */
import { SplitPreTokenizer } from '@huggingface/tokenizers';
import { expectObject, expectString, unsupported, invalid } from './json.js';

/**
 * Returns a global, unicode-aware RegExp for a tokenizer.json pattern.
 * `{ Regex }` patterns are written for Oniguruma; @huggingface/tokenizers translates them
 * (anchors, `\s`, `\w`, case-insensitive groups, POSIX classes, ...) and we reuse that translation.
 */
export function compilePattern(value: unknown, where: string): RegExp {
  const pattern = expectObject(value, where);
  if (typeof pattern.String === 'string') {
    return new RegExp(pattern.String.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'gu');
  }
  if (pattern.Regex !== undefined) {
    const source = expectString(pattern.Regex, `${where}.Regex`);
    let compiled: unknown;
    try {
      // invert: true keeps the translated pattern as is (no capture group added around it).
      compiled = (new SplitPreTokenizer({ type: 'Split', pattern: { Regex: source }, behavior: 'Isolated', invert: true }) as unknown as { pattern: unknown }).pattern;
    } catch (error) {
      unsupported(`${where}.Regex`, `the Oniguruma pattern ${JSON.stringify(source)} has no JavaScript translation (${(error as Error).message})`);
    }
    if (!(compiled instanceof RegExp)) unsupported(`${where}.Regex`, `could not compile ${JSON.stringify(source)}`);
    return new RegExp(compiled.source, compiled.flags.includes('g') ? compiled.flags : compiled.flags + 'g');
  }
  return invalid(where, 'expected { "String": ... } or { "Regex": ... }');
}

/**
 * tokenizers' `Pattern::find_matches`: cuts `text` into consecutive spans covering all of it,
 * each flagged as a match of `regex` or not. Empty matches are dropped.
 */
export function findMatches(text: string, regex: RegExp): Array<[start: number, end: number, isMatch: boolean]> {
  const spans: Array<[number, number, boolean]> = [];
  let previous = 0;
  regex.lastIndex = 0;
  for (const match of text.matchAll(regex)) {
    const start = match.index;
    const end = start + match[0].length;
    if (end === start) continue;
    if (previous < start) spans.push([previous, start, false]);
    spans.push([start, end, true]);
    previous = end;
  }
  if (previous < text.length) spans.push([previous, text.length, false]);
  return spans;
}
