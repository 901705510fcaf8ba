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
    if (source.length > MAX_PATTERN_LENGTH) unsupported(`${where}.Regex`, `a pattern of ${source.length} characters is longer than the ${MAX_PATTERN_LENGTH} accepted`);
    const nested = repeatedGroupThatBacktracks(source);
    if (nested !== undefined) {
      unsupported(
        `${where}.Regex`,
        `the group at character ${nested} repeats something that can itself repeat or alternate (like (a+)+ or (a|b)*): JavaScript's backtracking engine can take exponential time on it`,
      );
    }
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

/** The longest `Regex` source accepted (real ones are a few hundred characters; some CJK ranges reach a few thousand). */
const MAX_PATTERN_LENGTH = 20_000;

/**
 * Finds a quantified group whose body can itself repeat or alternate: `(a+)+`, `(a|aa)*`,
 * `(?:x*y){2,}` (star height 2, the shape of exponential backtracking), or a second repeated
 * wildcard (`.*a.*b`, polynomial backtracking). Returns its position, or undefined when there is
 * none. Polynomial backtracking between overlapping classes (`\s*\s*x`) is not detected. Real tokenizer patterns (GPT-2, cl100k, Llama 3,
 * Qwen) never quantify a group. A linear scan over the source; classes and escapes are skipped.
 */
export function repeatedGroupThatBacktracks(source: string): number | undefined {
  const groups: { start: number; risky: boolean }[] = [];
  let lastGroup: { start: number; risky: boolean } | undefined; // the group that just closed, if the previous atom was one
  let lastWasDot = false;
  let repeatedDots = 0;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    let atomGroup: { start: number; risky: boolean } | undefined;
    const isQuantifier = c === '*' || c === '+' || c === '?' || c === '{';
    if (!isQuantifier) lastWasDot = c === '.';
    if (c === '\\') {
      const next = source[i + 1];
      if ((next === 'p' || next === 'P') && source[i + 2] === '{') {
        const close = source.indexOf('}', i + 3);
        i = close < 0 ? source.length : close;
      } else i++;
    } else if (c === '[') {
      for (i++; i < source.length && source[i] !== ']'; i++) if (source[i] === '\\') i++;
    } else if (c === '(') {
      groups.push({ start: i, risky: false });
      lastGroup = undefined;
      continue;
    } else if (c === ')') {
      atomGroup = groups.pop();
    } else if (c === '|') {
      const top = groups[groups.length - 1];
      if (top) top.risky = true;
    } else if (c === '*' || c === '+' || c === '?' || c === '{') {
      let repeats = c !== '?';
      let variable = true;
      if (c === '{') {
        const m = /^\{(\d*)(,?)(\d*)\}/.exec(source.slice(i, i + 24));
        if (!m) continue; // a literal brace
        variable = m[2] === ',';
        repeats = variable ? m[3] === '' || Number(m[3]) > 1 : Number(m[1]) > 1;
        i += m[0].length - 1;
      }
      if (source[i + 1] === '?' || source[i + 1] === '+') i++; // lazy or possessive suffix
      if (repeats && lastGroup?.risky) return lastGroup.start;
      // Two repeated wildcards (.*x.*y) backtrack polynomially (n^k) on text that never matches.
      if (repeats && lastWasDot && ++repeatedDots >= 2) return i;
      lastWasDot = false;
      const top = groups[groups.length - 1];
      if (top && variable) top.risky = true;
      lastGroup = undefined;
      continue;
    }
    if (atomGroup && atomGroup.risky) {
      // A closed risky group makes its parent risky too (whatever follows).
      const top = groups[groups.length - 1];
      if (top) top.risky = true;
    }
    lastGroup = atomGroup;
  }
  return undefined;
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
