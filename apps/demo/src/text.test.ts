import { readFileSync } from 'node:fs';
import { type ModelFiles, openModel } from '@statespace/checkpoint';
import { describe, expect, it } from 'vitest';
import { TextCodec, parseIds, startsWith } from './text.js';

const neox = new URL('../../../packages/tokenizer/fixtures/inputs/neox/', import.meta.url);

/** A model folder held in memory: only the named files exist. */
function memoryFolder(files: Record<string, string>): ModelFiles {
  const missing = (name: string) => Object.assign(new Error(`${name}: not found`), { code: 'CHECKPOINT_FILE_NOT_FOUND', [Symbol.for('statespace.error')]: true });
  return {
    name: 'memory',
    source: () => {
      throw new Error('no binary files here');
    },
    exists: async (name) => name in files,
    readText: async (name) => {
      if (!(name in files)) throw missing(name);
      return files[name];
    },
  };
}

describe('parseIds', () => {
  it('reads ids separated by spaces and commas', () => {
    expect(parseIds(' 1, 2  3,4 ', 10)).toEqual([1, 2, 3, 4]);
  });
  it('names the first id outside the vocabulary', () => {
    expect(() => parseIds('1 10 2', 10)).toThrow(/"10" is not a token id in \[0, 10\)/);
    expect(() => parseIds('1 x', 10)).toThrow(/"x"/);
  });
});

describe('startsWith', () => {
  it('compares id prefixes', () => {
    expect(startsWith([1, 2, 3], [1, 2])).toBe(true);
    expect(startsWith([1, 2, 3], [])).toBe(true);
    expect(startsWith([1, 2], [1, 2, 3])).toBe(false);
    expect(startsWith([1, 3, 3], [1, 2])).toBe(false);
  });
});

describe('TextCodec', () => {
  it('falls back to token ids when the folder has no tokenizer.json', async () => {
    const folder = await openModel(memoryFolder({ 'generation_config.json': '{"eos_token_id": [7, 9]}' }));
    const text = await TextCodec.fromFolder(folder, 50);
    expect(text.hasTokenizer).toBe(false);
    expect(text.extraStopIds).toEqual([7, 9]);
    expect(text.encodeCompletion('3 4', true)).toEqual([3, 4]);
    const stream = text.stream();
    expect([stream.put(5), stream.put(6), stream.end()].join('')).toBe('5 6');
    expect(() => text.encodeChat([{ role: 'user', content: 'hi' }])).toThrow(/no tokenizer/);
  });

  it('uses tokenizer.json, its chat template and a streaming decoder that adds up to decode()', async () => {
    const folder = await openModel(
      memoryFolder({
        'tokenizer.json': readFileSync(new URL('tokenizer.json', neox), 'utf8'),
        'tokenizer_config.json': readFileSync(new URL('tokenizer_config.json', neox), 'utf8'),
      }),
    );
    const text = await TextCodec.fromFolder(folder, 974);
    expect(text.hasTokenizer).toBe(true);
    expect(text.hasChatTemplate).toBe(true);
    expect(text.extraStopIds).toContain(969); // <|endoftext|>
    const chat = text.encodeChat([{ role: 'user', content: 'Hello there' }]);
    // The template closes the user turn with EOS (dropped by decode as a special token).
    expect(chat).toContain(969);
    expect(text.decode(chat)).toBe('<|user|>\nHello there\n<|assistant|>\n');
    const ids = text.encodeCompletion('The quick brown fox, naïve café', true);
    const stream = text.stream();
    let streamed = '';
    for (const id of ids) streamed += stream.put(id);
    streamed += stream.end();
    expect(streamed).toBe(text.decode(ids));
    expect(streamed).toBe('The quick brown fox, naïve café');
  });
});
