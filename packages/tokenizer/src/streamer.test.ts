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
  it('holds a byte-fallback run until a token that is not a byte ends it', () => {
    const tokenizer = llama2();
    const ids = tokenizer.encode('𠀀'); // <s> ▁ <0xF0> <0xA0> <0x80> <0x80>
    expect(tokenizer.tokenize('𠀀')).toEqual(['▁', '<0xF0>', '<0xA0>', '<0x80>', '<0x80>']);
    const out = chunks(new TextStreamer(tokenizer), ids);
    expect(out).toEqual(['<s>', ' ', '', '', '', '', '𠀀']); // the space of ▁ is final once something follows <s>
    expect(out.join('')).toBe(tokenizer.decode(ids));
    const streamer = new TextStreamer(tokenizer);
    const word = tokenizer.tokenToId('▁a') as number;
    expect([...ids.slice(1), word].map((id) => streamer.put(id))).toEqual(['', '', '', '', '', '𠀀 a']); // no space: the decoder strips a leading ▁
  });

  it('never emits a complete character of a byte run that a later byte turns into U+FFFD', () => {
    const tokenizer = llama2();
    const byte = (b: number) => tokenizer.tokenToId(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`) as number;
    const eos = tokenizer.eosToken!.id!;
    const such = tokenizer.tokenToId('▁such') as number;
    // "<0x70>" alone is "p", but the run <0x70><0xB7> is invalid UTF-8: one U+FFFD per byte.
    for (const [ids, skip] of [
      [[byte(0x70), byte(0xb7), such], false],
      [[byte(0xc3), byte(0xa9), byte(0xe4), such], false],
      [[byte(0x70), eos, byte(0xb7), such], true], // a skipped special token does not end the run
      [[byte(0x70), eos, byte(0xb7), such], false],
    ] as Array<[number[], boolean]>) {
      const streamer = new TextStreamer(tokenizer, { skipSpecialTokens: skip });
      const out = chunks(streamer, ids).join('');
      expect(out).toBe(tokenizer.decode(ids, { skipSpecialTokens: skip }));
    }
    expect(tokenizer.decode([byte(0x70), byte(0xb7)])).toBe('\ufffd\ufffd');
  });

  it('streams random byte-heavy id sequences to exactly the one-shot decode', () => {
    let seed = 12345;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (const tokenizer of [llama2(), neox()]) {
      const bytes = Array.from({ length: 256 }, (_, b) => tokenizer.tokenToId(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`)).filter(
        (id): id is number => id !== undefined,
      );
      const specials = [...tokenizer.addedTokens.keys()];
      const words = tokenizer.encode('▁ a  b\nc é 中 😀 ', { addSpecialTokens: false });
      for (let n = 0; n < 200; n++) {
        const ids = Array.from({ length: 1 + Math.floor(random() * 12) }, () => {
          const r = random();
          const pool = r < 0.5 && bytes.length > 0 ? bytes : r < 0.65 ? specials : words;
          return pool[Math.floor(random() * pool.length)];
        });
        for (const skip of [false, true]) {
          const streamed = chunks(new TextStreamer(tokenizer, { skipSpecialTokens: skip }), ids).join('');
          expect(streamed, JSON.stringify(ids)).toBe(tokenizer.decode(ids, { skipSpecialTokens: skip }));
        }
      }
    }
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
