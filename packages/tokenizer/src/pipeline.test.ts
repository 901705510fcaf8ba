/** Components checked against the examples of tokenizers' own Rust unit tests. */
import { describe, expect, it } from 'vitest';
import { createPreTokenizer, splitPiece } from './pre-tokenizer.js';
import { createDecoder } from './decoder.js';
import { createNormalizer } from './normalizer.js';
import { createPostProcessor } from './post-processor.js';
import { Tokenizer } from './tokenizer.js';
import { BYTE_TO_CHAR, CHAR_TO_BYTE, byteLevelEncode } from './byte-level.js';

const texts = (pieces: Array<{ text: string }>) => pieces.map((p) => p.text);

describe('split behaviours (NormalizedString::split)', () => {
  const piece = { text: 'The-final--countdown', atStart: true };
  it.each([
    ['Removed', ['The', 'final', 'countdown']],
    ['Isolated', ['The', '-', 'final', '-', '-', 'countdown']],
    ['MergedWithPrevious', ['The-', 'final-', '-', 'countdown']],
    ['MergedWithNext', ['The', '-final', '-', '-countdown']],
    ['Contiguous', ['The', '-', 'final', '--', 'countdown']],
  ] as const)('%s', (behavior, expected) => {
    expect(texts(splitPiece(piece, /-/gu, behavior))).toEqual(expected);
  });

  it('invert swaps matches and non-matches', () => {
    expect(texts(splitPiece(piece, /-/gu, 'Removed', true))).toEqual(['-', '-', '-']);
    expect(texts(splitPiece(piece, /-+/gu, 'Removed', true))).toEqual(['-', '--']);
  });

  it('marks only the first piece of a piece at offset 0 as at the start', () => {
    const out = splitPiece(piece, /-/gu, 'Isolated');
    expect(out.map((p) => p.atStart)).toEqual([true, false, false, false, false, false]);
  });
});

describe('pre-tokenizers', () => {
  it('ByteLevel splits with the GPT-2 regex and maps bytes to symbols', () => {
    const pre = createPreTokenizer({ type: 'ByteLevel', add_prefix_space: false, use_regex: true })!;
    expect(texts(pre([{ text: 'Hello my friend, how is your day going?', atStart: true }]))).toEqual([
      'Hello', 'Ġmy', 'Ġfriend', ',', 'Ġhow', 'Ġis', 'Ġyour', 'Ġday', 'Ġgoing', '?',
    ]);
    expect(texts(pre([{ text: 'Hello there       dear', atStart: true }]))).toEqual(['Hello', 'Ġthere', 'ĠĠĠĠĠĠ', 'Ġdear']);
    expect(texts(pre([{ text: 'i⭢j', atStart: true }]))).toEqual(['i', 'âŃ¢', 'j']);
  });

  it('ByteLevel treats U+0085 as whitespace and U+FEFF as not, like Oniguruma', () => {
    const pre = createPreTokenizer({ type: 'ByteLevel', add_prefix_space: false })!;
    expect(pre([{ text: 'a\u0085 b', atStart: true }]).length).toBe(3); // 'a', NEL, ' b'
    expect(pre([{ text: 'a\ufeffb', atStart: true }]).length).toBe(3); // 'a', BOM as punctuation, 'b'
  });

  it('Metaspace replaces spaces, prepends per prepend_scheme and splits before ▁', () => {
    const always = createPreTokenizer({ type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true })!;
    expect(texts(always([{ text: 'Hey   friend!', atStart: false }]))).toEqual(['▁Hey', '▁', '▁', '▁friend!']);
    const first = createPreTokenizer({ type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false })!;
    expect(texts(first([{ text: 'Hey friend', atStart: true }]))).toEqual(['▁Hey▁friend']);
    expect(texts(first([{ text: 'Hey friend', atStart: false }]))).toEqual(['Hey▁friend']);
    const legacy = createPreTokenizer({ type: 'Metaspace', replacement: '▁', add_prefix_space: false })!;
    expect(texts(legacy([{ text: 'Hey friend', atStart: true }]))).toEqual(['Hey', '▁friend']);
  });

  it('Digits splits every numeric character (Rust char::is_numeric), individually or in runs', () => {
    const individual = createPreTokenizer({ type: 'Digits', individual_digits: true })!;
    expect(texts(individual([{ text: 'Hey 123 friend!', atStart: true }]))).toEqual(['Hey ', '1', '2', '3', ' friend!']);
    const runs = createPreTokenizer({ type: 'Digits', individual_digits: false })!;
    expect(texts(runs([{ text: 'x²٣4y', atStart: true }]))).toEqual(['x', '²٣4', 'y']);
  });
});

describe('decoders', () => {
  it('ByteFallback decodes valid byte runs and gives one U+FFFD per byte of an invalid run', () => {
    const decode = createDecoder({ type: 'ByteFallback' })!;
    expect(decode(['Hey', 'friend!'])).toEqual(['Hey', 'friend!']);
    expect(decode(['<0x61>'])).toEqual(['a']);
    expect(decode(['<0xE5>'])).toEqual(['\ufffd']);
    expect(decode(['<0xE5>', '<0x8f>'])).toEqual(['\ufffd', '\ufffd']);
    expect(decode(['<0xE5>', '<0x8f>', '<0xab>', 'a'])).toEqual(['叫', 'a']);
    expect(decode(['<0xE5>', '<0x8f>', 'a'])).toEqual(['\ufffd', '\ufffd', 'a']);
  });

  it('ByteLevel maps symbols back to bytes, passes other tokens through and decodes lossily once', () => {
    const decode = createDecoder({ type: 'ByteLevel' })!;
    expect(decode(['Hello', 'Ġthere', 'Ġdear', 'Ġfriend!', 'Ġ', '[PA D]'])).toEqual(['Hello there dear friend! [PA D]']);
    expect(decode(['ðŁ', 'ĺĢ'])).toEqual(['😀']);
    expect(decode(['ðŁ'])).toEqual(['\ufffd']);
  });

  it('Strip removes up to start/stop copies of its character', () => {
    expect(createDecoder({ type: 'Strip', content: 'H', start: 1, stop: 0 })!(['Hey', ' friend!', 'HHH'])).toEqual(['ey', ' friend!', 'HH']);
    expect(createDecoder({ type: 'Strip', content: 'y', start: 0, stop: 1 })!(['Hey', ' friend!'])).toEqual(['He', ' friend!']);
  });

  it('Metaspace drops every ▁ of the first token when it prepends, as tokenizers does', () => {
    const decode = createDecoder({ type: 'Metaspace', replacement: '▁', prepend_scheme: 'always' })!;
    expect(decode(['▁Hey', '▁friend!'])).toEqual(['Hey', ' friend!']);
    expect(decode(['▁▁x', '▁▁'])).toEqual(['x', '  ']);
    const never = createDecoder({ type: 'Metaspace', replacement: '▁', prepend_scheme: 'never' })!;
    expect(never(['▁Hey', '▁friend!'])).toEqual([' Hey', ' friend!']);
  });

  it('Sequence, Replace and Fuse chain like the Llama 2 decoder', () => {
    const decode = createDecoder({
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    })!;
    expect(decode(['▁Hello', '▁world', '<0x21>'])).toEqual(['Hello world!']);
  });
});

describe('normalizers and post-processors', () => {
  it('Prepend leaves empty text empty; Sequence applies in order; NFC composes', () => {
    const normalize = createNormalizer({ type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] })!;
    expect(normalize('Hey you')).toBe('▁Hey▁you');
    expect(normalize('')).toBe('');
    expect(createNormalizer({ type: 'NFC' })!('e\u0301')).toBe('é');
  });

  it('TemplateProcessing wraps the ids with the special-token ids of the single template', () => {
    const post = createPostProcessor({
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] }, '</s>': { id: '</s>', ids: [2], tokens: ['</s>'] } },
    })!;
    expect(post([5, 6])).toEqual([1, 5, 6, 2]);
  });
});

describe('byte-level table', () => {
  it('is GPT-2 bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 onwards', () => {
    expect(BYTE_TO_CHAR[0x41]).toBe('A');
    expect(BYTE_TO_CHAR[0x20]).toBe('Ġ');
    expect(BYTE_TO_CHAR[0x0a]).toBe('Ċ');
    expect(BYTE_TO_CHAR[0]).toBe('Ā');
    expect(new Set(BYTE_TO_CHAR).size).toBe(256);
    expect(CHAR_TO_BYTE.get('Ġ')).toBe(0x20);
    expect(byteLevelEncode('é')).toBe('Ã©');
  });
});

describe('added tokens', () => {
  // A tiny byte-level tokenizer: one symbol per byte, no merges, and a few added tokens.
  const vocab = Object.fromEntries(BYTE_TO_CHAR.map((ch, b) => [ch, b]));
  const json = (added: object[]) => ({
    model: { type: 'BPE', vocab, merges: [] },
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false },
    decoder: { type: 'ByteLevel' },
    added_tokens: added,
  });

  it('are matched leftmost-longest on the raw text', () => {
    const tokenizer = new Tokenizer(json([
      { id: 300, content: '<a>', special: true },
      { id: 301, content: '<a><b>', special: true },
    ]));
    expect(tokenizer.encode('x<a><b>y<a>')).toEqual([0x78, 301, 0x79, 300]);
    expect(tokenizer.decode([0x78, 301, 0x79, 300], { skipSpecialTokens: true })).toBe('xy');
  });

  it('lstrip and rstrip swallow the whitespace beside the token', () => {
    const tokenizer = new Tokenizer(json([{ id: 300, content: '<m>', special: true, lstrip: true, rstrip: true }]));
    expect(tokenizer.encode('a  <m>  b')).toEqual([0x61, 300, 0x62]);
  });

  it('normalized tokens are matched after normalization, the others before', () => {
    const tokenizer = new Tokenizer({
      ...json([
        { id: 300, content: 'é', special: false, normalized: true },
        { id: 301, content: 'e\u0301!', special: false, normalized: false },
      ]),
      normalizer: { type: 'NFC' },
    });
    expect(tokenizer.encode('e\u0301 e\u0301!')).toEqual([300, 0x20, 301]);
  });
});
