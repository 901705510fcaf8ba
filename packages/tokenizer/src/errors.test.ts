import { describe, expect, it } from 'vitest';
import { Tokenizer } from './tokenizer.js';
import { TokenizerError, type TokenizerErrorCode } from './errors.js';
import { loadTokenizer } from './load.js';
import { entryFiles, fixtureTokenizer } from './test-fixtures.js';

function code(fn: () => unknown): TokenizerErrorCode | string {
  try {
    fn();
  } catch (e) {
    return TokenizerError.is(e) ? e.code : `not a TokenizerError: ${String(e)}`;
  }
  return 'no error';
}

const neoxJson = () => entryFiles('neox').tokenizer;
const withKey = (key: string, value: unknown) => ({ ...neoxJson(), [key]: value });
const withModel = (changes: Record<string, unknown>) => withKey('model', { ...(neoxJson().model as object), ...changes });

describe('TokenizerError', () => {
  it('carries the statespace marker that core StatespaceError.is() checks, and a code', () => {
    const error = new TokenizerError('TOKENIZER_INVALID', 'x');
    expect((error as unknown as Record<symbol, unknown>)[Symbol.for('statespace.error')]).toBe(true);
    expect(error).toBeInstanceOf(Error);
    expect(TokenizerError.is(error)).toBe(true);
    expect(TokenizerError.is(new Error('x'))).toBe(false);
    expect(TokenizerError.is({ [Symbol.for('statespace.error')]: true, code: 'NO_ADAPTER' })).toBe(true);
  });
});

describe('malformed tokenizer.json', () => {
  it.each([
    ['not an object', []],
    ['no model', withKey('model', undefined)],
    ['vocab not an object', withModel({ vocab: [1, 2] })],
    ['negative id', withModel({ vocab: { a: -1 } })],
    ['merge of unknown tokens', withModel({ merges: ['zzz qqq'] })],
    ['merge with three parts', withModel({ merges: ['a b c'] })],
    ['added token without id', withKey('added_tokens', [{ content: 'x' }])],
    ['bad split behaviour', withKey('pre_tokenizer', { type: 'Split', pattern: { String: ' ' }, behavior: 'Sideways' })],
    ['bad pattern', withKey('pre_tokenizer', { type: 'Split', pattern: { Glob: '*' }, behavior: 'Isolated' })],
  ])('%s -> TOKENIZER_INVALID', (_, json) => {
    expect(code(() => new Tokenizer(json))).toBe('TOKENIZER_INVALID');
  });

  it('names the offending field', () => {
    expect(() => new Tokenizer(withModel({ merges: ['zzz qqq'] }))).toThrow(/model\.merges\[0\].*"zzz"/);
  });

  it('rejects text that is not JSON', async () => {
    await expect(loadTokenizer({ tokenizer: '{"model": ' })).rejects.toMatchObject({ code: 'TOKENIZER_INVALID', message: expect.stringMatching(/tokenizer\.json: not valid JSON/) });
    await expect(loadTokenizer({ tokenizer: JSON.stringify(neoxJson()), config: 'nope' })).rejects.toMatchObject({ code: 'TOKENIZER_INVALID' });
  });
});

describe('unsupported tokenizer.json', () => {
  it.each([
    ['a Unigram model', withModel({ type: 'Unigram' })],
    ['a WordPiece model', withModel({ type: 'WordPiece' })],
    ['BPE dropout', withModel({ dropout: 0.1 })],
    ['a continuing_subword_prefix', withModel({ continuing_subword_prefix: '##' })],
    ['a BERT pre-tokenizer', withKey('pre_tokenizer', { type: 'BertPreTokenizer' })],
    ['a Precompiled normalizer', withKey('normalizer', { type: 'Precompiled', precompiled_charsmap: '' })],
    ['a WordPiece decoder', withKey('decoder', { type: 'WordPiece', prefix: '##' })],
    ['a RobertaProcessing post-processor', withKey('post_processor', { type: 'RobertaProcessing' })],
    ['a single_word added token', withKey('added_tokens', [{ id: 0, content: 'x', single_word: true }])],
    ['truncation', withKey('truncation', { max_length: 8 })],
  ])('%s -> TOKENIZER_UNSUPPORTED', (_, json) => {
    expect(code(() => new Tokenizer(json))).toBe('TOKENIZER_UNSUPPORTED');
  });
});

describe('bad arguments', () => {
  it('decode rejects ids outside the vocabulary instead of returning garbage', () => {
    const tokenizer = fixtureTokenizer('neox');
    const good = tokenizer.encode('Hello');
    for (const bad of [tokenizer.vocabSize, -1, 1.5, Number.NaN, 2 ** 40]) {
      expect(code(() => tokenizer.decode([...good, bad]))).toBe('TOKEN_ID_OUT_OF_RANGE');
    }
    expect(() => tokenizer.decode([...good, tokenizer.vocabSize])).toThrow(`ids[${good.length}] = ${tokenizer.vocabSize}`);
    expect(tokenizer.decode([])).toBe('');
    expect(tokenizer.decode(Int32Array.from(good))).toBe('Hello');
  });

  it('encode and decode reject values of the wrong type', () => {
    const tokenizer = fixtureTokenizer('neox');
    expect(code(() => tokenizer.encode(42 as unknown as string))).toBe('INVALID_ARGUMENT');
    expect(code(() => tokenizer.decode('1 2' as unknown as number[]))).toBe('INVALID_ARGUMENT');
    expect(code(() => tokenizer.decode(null as unknown as number[]))).toBe('INVALID_ARGUMENT');
  });
});
