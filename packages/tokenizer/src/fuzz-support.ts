/**
 * The fuzz harness of this package (not exported): seeded mutations of
 * tokenizer.json and hostile id lists and strings. Each case must end in a
 * typed TokenizerError or in what an independent check computes: the ids a
 * decode accepts are exactly those named by `model.vocab` or `added_tokens`
 * (read from the JSON here, not from the Tokenizer), encode gives only such
 * ids, and a streamer's chunks join to `decode` of the same ids. Used by
 * fuzz.test.ts (small, CI) and scripts/fuzz-long.ts (large, by hand).
 */
import { TokenizerError } from './errors.js';
import { loadTokenizer } from './load.js';
import { TextStreamer } from './streamer.js';
import type { Tokenizer } from './tokenizer.js';

/** A seeded generator of floats in [0, 1) (mulberry32). */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Json = Record<string, unknown>;

const HOSTILE_VALUES: unknown[] = [null, -1, 1.5, 2 ** 32, 2 ** 40, Number.MAX_SAFE_INTEGER, '', 'x', 'a'.repeat(5000), [], {}, [1, 2], { type: 'Nope' }, true, { String: '' }, { Regex: '(a+)+$' }];
const SECTIONS = ['normalizer', 'pre_tokenizer', 'decoder', 'post_processor'] as const;

function deepSequence(kind: (typeof SECTIONS)[number], depth: number): Json {
  const key = { normalizer: 'normalizers', pre_tokenizer: 'pretokenizers', decoder: 'decoders', post_processor: 'processors' }[kind];
  let node: Json = kind === 'decoder' ? { type: 'Fuse' } : kind === 'normalizer' ? { type: 'NFC' } : kind === 'pre_tokenizer' ? { type: 'ByteLevel' } : { type: 'ByteLevel' };
  for (let i = 0; i < depth; i++) node = { type: 'Sequence', [key]: [node] };
  return node;
}

/** One mutation of a tokenizer.json (parsed); returns JSON text or an object, and a label. */
export function mutateTokenizer(base: Json, random: () => number): { input: string | Json; label: string } {
  const pick = (n: number) => Math.floor(random() * n);
  const json = structuredClone(base) as Json;
  const model = json.model as Json;
  const vocab = model.vocab as Record<string, number>;
  const keys = Object.keys(vocab);
  const added = (json.added_tokens as Json[] | undefined) ?? [];
  const hostile = () => HOSTILE_VALUES[pick(HOSTILE_VALUES.length)];
  switch (pick(12)) {
    case 0:
      vocab[keys[pick(keys.length)]] = hostile() as number;
      return { input: json, label: 'vocab-id' };
    case 1: {
      const merges = model.merges as unknown[];
      if (merges.length) merges[pick(merges.length)] = hostile();
      return { input: json, label: 'merge' };
    }
    case 2: {
      const fields = ['type', 'unk_token', 'byte_fallback', 'fuse_unk', 'dropout', 'vocab', 'merges', 'ignore_merges', 'continuing_subword_prefix'];
      model[fields[pick(fields.length)]] = hostile();
      return { input: json, label: 'model-field' };
    }
    case 3: {
      if (added.length) {
        const token = added[pick(added.length)];
        const fields = ['id', 'content', 'special', 'normalized', 'lstrip', 'rstrip', 'single_word'];
        token[fields[pick(fields.length)]] = pick(4) === 0 ? 'x'.repeat(200_000) : hostile();
      } else json.added_tokens = hostile();
      return { input: json, label: 'added-token' };
    }
    case 4:
      json[SECTIONS[pick(SECTIONS.length)]] = hostile();
      return { input: json, label: 'section' };
    case 5: {
      const kind = SECTIONS[pick(SECTIONS.length)];
      json[kind] = deepSequence(kind, pick(2) ? 1 + pick(40) : 10_000);
      return { input: json, label: 'deep-sequence' };
    }
    case 6: {
      const patterns = ['(a+)+$', '(a|aa)*c', '(?:\\s*\\S)+x', '\\s+', ' ', '[', '(?<=a)b', 'a{2,3}', '\\p{L}+', '(x+x+)+y', '.*.*.*=.*', ''];
      const pattern = patterns[pick(patterns.length)];
      const target = pick(3);
      if (target === 0) json.pre_tokenizer = { type: 'Split', pattern: { Regex: pattern }, behavior: 'Isolated', invert: false };
      else if (target === 1) json.normalizer = { type: 'Replace', pattern: { Regex: pattern }, content: '_' };
      else json.decoder = { type: 'Replace', pattern: { Regex: pattern }, content: '' };
      return { input: json, label: 'regex' };
    }
    case 7: {
      // text-level: flip, delete or insert bytes of the JSON text
      let text = JSON.stringify(json);
      for (let k = 0; k < 1 + pick(4); k++) {
        const at = pick(text.length);
        const op = pick(3);
        if (op === 0) text = text.slice(0, at) + '{}[]",:0-e\\'[pick(12)] + text.slice(at + 1);
        else if (op === 1) text = text.slice(0, at) + text.slice(at + 1 + pick(20));
        else text = text.slice(0, at) + text.slice(at, at + pick(40)) + text.slice(at);
      }
      return { input: text, label: 'text' };
    }
    case 8:
      json.added_tokens = [...added, { id: pick(2) ? 2 ** 31 : keys.length + 5 + pick(10), content: pick(2) ? '' : '<x>', special: true }];
      return { input: json, label: 'added-id' };
    case 9:
      json.truncation = pick(2) ? null : { max_length: 3 };
      json.padding = null;
      return { input: json, label: 'truncation' };
    case 10: {
      const decoders = [{ type: 'Strip', content: ' ', start: 1, stop: 1 }, { type: 'Strip', content: 'ab', start: 1, stop: 1 }, { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first' }, { type: 'ByteFallback' }, { type: 'Replace', pattern: { String: '▁' }, content: ' ' }];
      json.decoder = { type: 'Sequence', decoders: [decoders[pick(decoders.length)], decoders[pick(decoders.length)]] };
      return { input: json, label: 'decoder-variant' };
    }
    default:
      return { input: json, label: 'unchanged' };
  }
}

/** The ids a decode must accept, read from the JSON alone: integer values of model.vocab and added_tokens ids. */
export function acceptedIds(input: string | Json): Set<number> {
  const json = (typeof input === 'string' ? JSON.parse(input) : input) as Json;
  const ids = new Set<number>();
  const vocab = (json.model as Json).vocab as Record<string, unknown>;
  for (const id of Object.values(vocab)) if (typeof id === 'number') ids.add(id);
  for (const token of (json.added_tokens as Json[] | undefined) ?? []) if (typeof token.id === 'number') ids.add(token.id);
  return ids;
}

/** How a case ended. */
export type TokenizerOutcome = 'agree' | 'typed' | 'untyped' | 'wrong-silent' | 'false-refusal' | 'slow';

/** The outcome of one case, with a reason for the bad ones. */
export interface TokenizerCaseResult {
  outcome: TokenizerOutcome;
  detail?: string;
  code?: string;
  ms: number;
}

const INVALID_IDS = [-1, 1.5, Number.NaN, 2 ** 40, Number.POSITIVE_INFINITY];

/** A hostile id list: mostly valid ids of `ids`, sometimes one that is not. */
export function hostileIds(valid: number[], random: () => number, length: number): { ids: number[]; allValid: boolean } {
  const pick = (n: number) => Math.floor(random() * n);
  const ids = Array.from({ length }, () => valid[pick(valid.length)]);
  let allValid = true;
  if (pick(2) === 0 && length > 0) {
    const bad = pick(3) === 0 ? valid.reduce((a, b) => Math.max(a, b), 0) + 1 + pick(3) : INVALID_IDS[pick(INVALID_IDS.length)];
    ids[pick(length)] = bad;
    allValid = valid.includes(bad);
  }
  return { ids, allValid };
}

const HOSTILE_TEXTS = [
  'Hello world! 123 ',
  ' \n\t'.repeat(300),
  'a'.repeat(2000),
  '<|endoftext|>'.repeat(50) + '<s></s><0x41>',
  '\u{1F600}\uD800x\u0000\u200b'.repeat(100),
  '1'.repeat(1000) + ' ' + 'é'.repeat(500),
];

/**
 * Builds a tokenizer from `input` and exercises it: encode, decode of its ids and of hostile id
 * lists, and the streamer. `budgetMs`: a case taking longer is `slow` (a hang, for the fuzz run).
 */
export async function checkTokenizer(input: string | Json, random: () => number, budgetMs = 10_000): Promise<TokenizerCaseResult> {
  const t0 = performance.now();
  const done = (r: Omit<TokenizerCaseResult, 'ms'>): TokenizerCaseResult => {
    const ms = performance.now() - t0;
    return ms > budgetMs && r.outcome !== 'untyped' && r.outcome !== 'wrong-silent' ? { ...r, outcome: 'slow', detail: `${Math.round(ms)} ms`, ms } : { ...r, ms };
  };
  let tokenizer: Tokenizer;
  try {
    tokenizer = await loadTokenizer({ tokenizer: input as string });
  } catch (error) {
    if (!TokenizerError.is(error)) return done({ outcome: 'untyped', detail: String((error as Error)?.stack ?? error) });
    return done({ outcome: 'typed', code: error.code });
  }
  let accepted: Set<number>;
  try {
    accepted = acceptedIds(input);
  } catch {
    return done({ outcome: 'wrong-silent', detail: 'a tokenizer was built from JSON the check cannot read' });
  }
  const valid = [...accepted];
  try {
    for (const text of HOSTILE_TEXTS) {
      const ids = tokenizer.encode(text);
      for (const id of ids) if (!accepted.has(id)) return done({ outcome: 'wrong-silent', detail: `encode gave id ${id}, not in the vocabulary` });
      tokenizer.decode(ids);
    }
  } catch (error) {
    if (!TokenizerError.is(error)) return done({ outcome: 'untyped', detail: String((error as Error)?.stack ?? error) });
    return done({ outcome: 'typed', code: error.code });
  }
  for (let round = 0; round < 3; round++) {
    const { ids, allValid } = hostileIds(valid, random, round === 2 ? 3000 : 1 + Math.floor(random() * 60));
    // decode
    let text: string | undefined;
    try {
      text = tokenizer.decode(ids, { skipSpecialTokens: round === 1 });
      if (!allValid) return done({ outcome: 'wrong-silent', detail: 'decode accepted an id outside the vocabulary' });
    } catch (error) {
      if (!TokenizerError.is(error)) return done({ outcome: 'untyped', detail: String((error as Error)?.stack ?? error) });
      if (allValid) return done({ outcome: 'false-refusal', detail: error.message, code: error.code });
      if (error.code !== 'TOKEN_ID_OUT_OF_RANGE') return done({ outcome: 'wrong-silent', detail: `decode of a bad id gave ${error.code}` });
    }
    // the streamer, id by id
    const streamer = new TextStreamer(tokenizer, { skipSpecialTokens: round === 1 });
    let streamed = '';
    try {
      for (const id of ids) streamed += streamer.put(id);
      streamed += streamer.end();
      if (!allValid) return done({ outcome: 'wrong-silent', detail: 'the streamer accepted an id outside the vocabulary' });
      if (streamed !== text) return done({ outcome: 'wrong-silent', detail: `streamed ${JSON.stringify(streamed.slice(0, 80))} != decode ${JSON.stringify(text?.slice(0, 80))}` });
    } catch (error) {
      if (!TokenizerError.is(error)) return done({ outcome: 'untyped', detail: String((error as Error)?.stack ?? error) });
      if (allValid && error.code !== 'STREAM_DIVERGED') return done({ outcome: 'false-refusal', detail: error.message, code: error.code });
    }
  }
  // Hostile arguments of the public surface.
  for (const bad of [null, undefined, 'abc', { length: 1e12 }, { length: -1 }, [[1]], 42.5]) {
    for (const call of [() => tokenizer.decode(bad as never), () => new TextStreamer(tokenizer).put(bad as never), () => tokenizer.encode(bad as never)]) {
      try {
        call();
      } catch (error) {
        if (!TokenizerError.is(error)) return done({ outcome: 'untyped', detail: `${String(bad)}: ${String((error as Error)?.stack ?? error)}` });
      }
    }
  }
  // Many skipped special tokens: linear work.
  const special = [...tokenizer.addedTokens.values()].find((t) => t.special);
  if (special) {
    const streamer = new TextStreamer(tokenizer, { skipSpecialTokens: true });
    for (let i = 0; i < 5000; i++) streamer.put(special.id);
    if (streamer.end() !== '') return done({ outcome: 'wrong-silent', detail: 'skipped special tokens produced text' });
  }
  return done({ outcome: 'agree' });
}
