import { describe, expect, it } from 'vitest';
import { TextIteratorStreamer, TextStreamer } from './streamer.js';
import { TokenizerError } from './errors.js';
import { fixtureTokenizer } from './test-fixtures.js';

const llama2 = () => fixtureTokenizer('llama2'); // SentencePiece-style BPE with byte fallback
const neox = () => fixtureTokenizer('neox'); // byte-level BPE

function chunks(streamer: TextStreamer, ids: number[]): string[] {
  const out = ids.map((id) => streamer.put(id));
  out.push(streamer.end());
  return out;
}

describe('TextStreamer', () => {
  it('holds byte-fallback tokens until the UTF-8 character is complete', () => {
    const tokenizer = llama2();
    const ids = tokenizer.encode('𠀀'); // <s> ▁ <0xF0> <0xA0> <0x80> <0x80>
    expect(tokenizer.tokenize('𠀀')).toEqual(['▁', '<0xF0>', '<0xA0>', '<0x80>', '<0x80>']);
    const out = chunks(new TextStreamer(tokenizer), ids);
    expect(out).toEqual(['<s>', ' ', '', '', '', '𠀀', '']); // the space of ▁ is final once something follows <s>
    expect(out.join('')).toBe(tokenizer.decode(ids));
  });

  it('holds byte-level tokens that split a character and never emits U+FFFD for them', () => {
    const tokenizer = neox();
    const text = 'x 𝔘𝔫𝔦 y';
    const ids = tokenizer.encode(text);
    const streamer = new TextStreamer(tokenizer);
    const out = chunks(streamer, ids);
    expect(out.join('')).toBe(text);
    expect(out.some((c) => c.includes('\ufffd'))).toBe(false);
    expect(out.filter((c) => c === '').length).toBeGreaterThan(1); // some ids completed no character
  });

  it('keeps the space of every SentencePiece word but the first (no lost spaces)', () => {
    const tokenizer = llama2();
    const ids = tokenizer.encode('Hello world, how are you?', { addSpecialTokens: false });
    const out = chunks(new TextStreamer(tokenizer), ids);
    expect(out[0]).toBe('Hello');
    expect(out[1]).toBe(' world');
    expect(out.join('')).toBe('Hello world, how are you?');
  });

  it('flushes a trailing incomplete character as U+FFFD at end(), as decode does', () => {
    const tokenizer = llama2();
    const f0 = tokenizer.tokenToId('<0xF0>') as number;
    const a = tokenizer.tokenToId('▁a') as number;
    const streamer = new TextStreamer(tokenizer);
    expect(streamer.put([a, f0])).toBe('a');
    expect(streamer.end()).toBe('\ufffd');
    expect(streamer.text).toBe(tokenizer.decode([a, f0]));
  });

  it('skips special tokens when asked and skips the prompt', () => {
    const tokenizer = llama2();
    const prompt = tokenizer.encode('Question?');
    const answer = [...tokenizer.encode('Answer.', { addSpecialTokens: false }), tokenizer.eosToken!.id!];
    const seen: Array<[string, boolean]> = [];
    const streamer = new TextStreamer(tokenizer, { skipPrompt: true, skipSpecialTokens: true, onText: (t, done) => seen.push([t, done]) });
    expect(streamer.put(prompt)).toBe('');
    for (const id of answer) streamer.put(id);
    streamer.end();
    expect(seen.map(([t]) => t).join('')).toBe('Answer.');
    expect(seen.at(-1)?.[1]).toBe(true);
    expect(seen.slice(0, -1).every(([t, done]) => t.length > 0 && !done)).toBe(true);
  });

  it('rejects an id outside the vocabulary without losing its state', () => {
    const tokenizer = neox();
    const streamer = new TextStreamer(tokenizer);
    streamer.put(tokenizer.encode('Hello'));
    expect(() => streamer.put(tokenizer.vocabSize)).toThrow(TokenizerError);
    try {
      streamer.put(-1);
    } catch (e) {
      expect((e as TokenizerError).code).toBe('TOKEN_ID_OUT_OF_RANGE');
    }
    streamer.put(tokenizer.encode(' world'));
    expect(streamer.text + streamer.end()).toBe('Hello world');
  });

  it('restarts cleanly after end()', () => {
    const tokenizer = neox();
    const streamer = new TextStreamer(tokenizer);
    chunks(streamer, tokenizer.encode('first'));
    const second = chunks(streamer, tokenizer.encode('second run')).join('');
    expect(second).toBe('second run');
    expect(streamer.text).toBe('firstsecond run');
  });
});

describe('TextIteratorStreamer', () => {
  it('yields the chunks to an async consumer and finishes at end()', async () => {
    const tokenizer = neox();
    const text = 'Streaming 你好 😀 works.\n';
    const streamer = new TextIteratorStreamer(tokenizer);
    const received: string[] = [];
    const consumer = (async () => {
      for await (const chunk of streamer) received.push(chunk);
    })();
    for (const id of tokenizer.encode(text)) {
      streamer.put(id);
      await Promise.resolve();
    }
    streamer.end();
    await consumer;
    expect(received.join('')).toBe(text);
    expect(received.every((c) => c.length > 0)).toBe(true);
  });
});
