/**
 * The small, seeded fuzz run of CI; the long one is scripts/fuzz-long.ts. Every case ends in a
 * typed TokenizerError or in what the independent checks of fuzz-support.ts compute.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadTokenizer, MAX_TOKENIZER_FILE_BYTES } from './load.js';
import { type TokenizerCaseResult, checkTokenizer, mutateTokenizer, seeded } from './fuzz-support.js';
import { repeatedGroupThatBacktracks } from './pattern.js';
import { TextStreamer } from './streamer.js';
import { Tokenizer } from './tokenizer.js';
import { entryFiles, fixtureTokenizer } from './test-fixtures.js';

describe('fuzz: mutated tokenizer.json files', () => {
  it('end in a typed error or in results the independent checks agree with (80 cases)', async () => {
    const base = entryFiles('neox').tokenizer;
    const random = seeded(42);
    const results: TokenizerCaseResult[] = [];
    for (let i = 0; i < 80; i++) {
      const { input, label } = mutateTokenizer(base, random);
      const result = await checkTokenizer(input, random, 5_000);
      if (!['agree', 'typed'].includes(result.outcome)) throw new Error(`case ${i} (${label}): ${result.outcome}: ${result.detail}`);
      results.push(result);
    }
    expect(results.filter((r) => r.outcome === 'agree').length).toBeGreaterThan(10);
    const codes = new Set(results.map((r) => r.code));
    for (const code of ['TOKENIZER_INVALID', 'TOKENIZER_UNSUPPORTED']) expect(codes.has(code), `${code} in ${[...codes]}`).toBe(true);
  });
});

describe('bounded work on hostile input', () => {
  it('refuses patterns shaped for catastrophic backtracking, keeps the real ones', () => {
    for (const bad of ['(a+)+$', '(a|aa)*b', '(?:x*y){2,}', '((ab)*c)+', '.*.*=.*']) expect(repeatedGroupThatBacktracks(bad), bad).toBeDefined();
    const real = [
      "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
      '(ab)+',
      '(a{2})+',
    ];
    for (const good of real) expect(repeatedGroupThatBacktracks(good), good).toBeUndefined();
    const json = { ...entryFiles('neox').tokenizer, pre_tokenizer: { type: 'Split', pattern: { Regex: '(a+)+$' }, behavior: 'Isolated', invert: false } };
    expect(() => new Tokenizer(json)).toThrow(expect.objectContaining({ code: 'TOKENIZER_UNSUPPORTED' }));
  });

  it('deeply nested Sequences are a typed error, not a stack overflow', () => {
    let decoder: Record<string, unknown> = { type: 'Fuse' };
    for (let i = 0; i < 100_000; i++) decoder = { type: 'Sequence', decoders: [decoder] };
    expect(() => new Tokenizer({ ...entryFiles('neox').tokenizer, decoder })).toThrow(expect.objectContaining({ code: 'TOKENIZER_INVALID', message: expect.stringMatching(/nested deeper than 32/) }));
  });

  it('the streamer does linear work on 50,000 skipped special tokens and on ids that never complete a character', () => {
    const tokenizer = fixtureTokenizer('neox');
    const special = [...tokenizer.addedTokens.values()].find((t) => t.special)!;
    let t0 = performance.now();
    const skipping = new TextStreamer(tokenizer, { skipSpecialTokens: true });
    for (let i = 0; i < 50_000; i++) skipping.put(special.id);
    expect(skipping.end()).toBe('');
    expect(performance.now() - t0).toBeLessThan(2_000);
    // A lone UTF-8 continuation byte (0x80 is "Ģ" in the byte-level alphabet) never completes.
    const lone = tokenizer.tokenToId('\u0122')!;
    const ids = new Array(20_000).fill(lone);
    t0 = performance.now();
    const streamer = new TextStreamer(tokenizer);
    let text = '';
    for (const id of ids) text += streamer.put(id);
    text += streamer.end();
    expect(text).toBe(tokenizer.decode(ids));
    expect(text).toBe('\ufffd'.repeat(20_000));
    expect(performance.now() - t0).toBeLessThan(3_000);
  });

  it('a long added token decodes (no argument-spread overflow) and bad put() arguments are typed errors', () => {
    // Characters outside the byte-level alphabet: decoded as their own UTF-8 bytes.
    const content = '\u4e2d'.repeat(300_000);
    const tokenizer = new Tokenizer({ ...entryFiles('neox').tokenizer, added_tokens: [{ id: 5000, content, special: false }] });
    expect(tokenizer.decode([5000])).toBe(content);
    const streamer = new TextStreamer(tokenizer);
    for (const bad of [null, undefined, { length: 1e12 }, 'x']) {
      expect(() => streamer.put(bad as never)).toThrow(expect.objectContaining({ code: expect.stringMatching(/INVALID_ARGUMENT|TOKEN_ID_OUT_OF_RANGE/) }));
    }
  });
});

describe('loading hostile files', () => {
  it('a FIFO named tokenizer.json is refused at once, an oversized file by its size', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'statespace-tokenizer-fuzz-'));
    try {
      execFileSync('mkfifo', [join(dir, 'tokenizer.json')]);
      const t0 = performance.now();
      await expect(loadTokenizer(dir)).rejects.toMatchObject({ code: 'TOKENIZER_LOAD_FAILED', message: expect.stringMatching(/not a regular file/) });
      expect(performance.now() - t0).toBeLessThan(2_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const big = new Blob([new Uint8Array(MAX_TOKENIZER_FILE_BYTES + 1)]);
    await expect(loadTokenizer({ tokenizer: big })).rejects.toMatchObject({ code: 'TOKENIZER_INVALID', message: expect.stringMatching(/too large/) });
  });
});
