import { describe, expect, it } from 'vitest';
import { bpeMerge, mergeRanks } from './bpe-merge.js';
import { seeded } from './fuzz-support.js';
import { entryFiles, fixtureTokenizer } from './test-fixtures.js';

describe('bpeMerge', () => {
  it('merges lowest rank first, leftmost among equals', () => {
    const ranks = mergeRanks([['a', 'b'], ['b', 'c'], ['ab', 'c'], ['a', 'a'], ['aa', 'aa']]);
    expect(bpeMerge('abc', ranks)).toEqual(['abc']);
    expect(bpeMerge('bcab', ranks)).toEqual(['bc', 'ab']);
    expect(bpeMerge('aaaaa', ranks)).toEqual(['aaaa', 'a']);
    expect(bpeMerge('x', ranks)).toEqual(['x']);
  });

  it("equals the model's own bpe() on random words built from the vocabulary (neox, llama2)", () => {
    for (const name of ['neox', 'llama2']) {
      const json = entryFiles(name).tokenizer;
      const tokenizer = fixtureTokenizer(name);
      const model = (tokenizer as unknown as { bpe: { merges: [string, string][] } & Record<string, unknown> }).bpe;
      const original = Object.getPrototypeOf(model).bpe as (this: unknown, token: string) => string[];
      const ranks = mergeRanks(model.merges);
      const vocab = Object.keys((json.model as { vocab: Record<string, number> }).vocab).filter((t) => t.length <= 4);
      const random = seeded(5);
      for (let k = 0; k < 80; k++) {
        const parts: string[] = [];
        const length = 1 + Math.floor(random() * (k % 2 ? 40 : 300)); // short words and words past the 256-character switch
        for (let i = 0; i < length; i++) parts.push(random() < 0.3 ? 'a' : vocab[Math.floor(random() * vocab.length)]);
        const word = parts.join('');
        expect(bpeMerge(word, ranks), word).toEqual(original.call(model, word));
      }
    }
  });

  it('encodes a 200,000-character word in bounded time (the model bpe() took ~5 s) and round-trips it', () => {
    const tokenizer = fixtureTokenizer('neox');
    const t0 = performance.now();
    const ids = tokenizer.encode('a'.repeat(200_000));
    expect(performance.now() - t0).toBeLessThan(2_000);
    expect(tokenizer.decode(ids)).toBe('a'.repeat(200_000));
  });
});
