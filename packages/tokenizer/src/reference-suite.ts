/**
 * Shared by reference-*.test.ts: parity with the Rust `tokenizers` library (and transformers' chat-template rendering) on the
 * fixtures recorded by scripts/make-reference.py, plus streaming-vs-one-shot decoding.
 * A missing fixture fails the test with the command that makes it.
 */
import { describe, expect, it } from 'vitest';
import { TextStreamer } from './streamer.js';
import type { Tokenizer } from './tokenizer.js';
import { STRINGS, fixtureTokenizer, readChatReference, readReference } from './test-fixtures.js';

/** At most `limit` mismatches, each small enough to read in a failure message. */
function mismatches<T>(cases: T[], check: (c: T) => string | null, limit = 5): string[] {
  const out: string[] = [];
  for (const c of cases) {
    const problem = check(c);
    if (problem !== null) out.push(problem);
    if (out.length >= limit) break;
  }
  return out;
}

const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** Streams `ids` one id at a time and returns the concatenated chunks. */
function streamDecode(tokenizer: Tokenizer, ids: number[], skipSpecialTokens: boolean): string {
  const streamer = new TextStreamer(tokenizer, { skipSpecialTokens });
  let text = '';
  for (const id of ids) text += streamer.put(id);
  return text + streamer.end();
}

/** The reference tests of the named manifest entries (split over two files so they run in parallel). */
export function describeReference(names: string[]): void {
  describe.each(names)('%s', (name) => {
    it('encodes every test string to the ids of tokenizers (add_special_tokens false and true)', () => {
      const tokenizer = fixtureTokenizer(name);
      const reference = readReference(name);
      expect(reference.encode.map((c) => c.text)).toEqual(STRINGS);
      const bad = mismatches(reference.encode, (c) => {
        const plain = tokenizer.encode(c.text, { addSpecialTokens: false });
        const special = tokenizer.encode(c.text);
        if (!same(plain, c.ids)) return `${JSON.stringify(c.text)}: got ${JSON.stringify(plain)}, tokenizers ${JSON.stringify(c.ids)}`;
        if (!same(special, c.ids_with_special))
          return `${JSON.stringify(c.text)} with special tokens: got ${JSON.stringify(special)}, tokenizers ${JSON.stringify(
            c.ids_with_special
          )}`;
        return null;
      });
      expect(bad).toEqual([]);
    });

    it('decodes the encoded ids to the text of tokenizers (skip_special_tokens false and true)', () => {
      const tokenizer = fixtureTokenizer(name);
      const reference = readReference(name);
      const bad = mismatches(reference.encode, (c) => {
        const text = tokenizer.decode(c.ids_with_special);
        const skipped = tokenizer.decode(c.ids_with_special, { skipSpecialTokens: true });
        if (text !== c.decoded)
          return `${JSON.stringify(c.ids_with_special)}: got ${JSON.stringify(text)}, tokenizers ${JSON.stringify(c.decoded)}`;
        if (skipped !== c.decoded_skip_special)
          return `${JSON.stringify(c.ids_with_special)} skipping specials: got ${JSON.stringify(skipped)}, tokenizers ${JSON.stringify(
            c.decoded_skip_special
          )}`;
        return null;
      });
      expect(bad).toEqual([]);
    });

    it('decodes pseudo-random id sequences (broken UTF-8, special and space tokens) as tokenizers does', () => {
      const tokenizer = fixtureTokenizer(name);
      const reference = readReference(name);
      expect(reference.decode.length).toBeGreaterThan(20);
      const bad = mismatches(reference.decode, (c) => {
        const text = tokenizer.decode(c.ids, { skipSpecialTokens: c.skip_special_tokens });
        return text === c.text ? null : `${JSON.stringify(c.ids)}: got ${JSON.stringify(text)}, tokenizers ${JSON.stringify(c.text)}`;
      });
      expect(bad).toEqual([]);
    });

    it('streams every fixture id sequence to exactly the one-shot decode', () => {
      const tokenizer = fixtureTokenizer(name);
      const reference = readReference(name);
      const sequences = [...reference.encode.map((c) => c.ids_with_special), ...reference.decode.map((c) => c.ids)];
      const bad = mismatches(sequences, (ids) => {
        for (const skip of [false, true]) {
          const streamed = streamDecode(tokenizer, ids, skip);
          const expected = tokenizer.decode(ids, { skipSpecialTokens: skip });
          if (streamed !== expected)
            return `${JSON.stringify(ids)} (skip ${skip}): streamed ${JSON.stringify(streamed)}, decode ${JSON.stringify(expected)}`;
        }
        return null;
      });
      expect(bad).toEqual([]);
    });

    it('streams the encoding of every test string back to the one-shot decode (no fixture needed)', () => {
      const tokenizer = fixtureTokenizer(name);
      const bad = mismatches(STRINGS, (text) => {
        const ids = tokenizer.encode(text);
        for (const skip of [false, true]) {
          const streamed = streamDecode(tokenizer, ids, skip);
          const expected = tokenizer.decode(ids, { skipSpecialTokens: skip });
          if (streamed !== expected)
            return `${JSON.stringify(text)} (skip ${skip}): streamed ${JSON.stringify(streamed)}, decode ${JSON.stringify(expected)}`;
        }
        return null;
      });
      expect(bad).toEqual([]);
    });

    it('renders the chat template as transformers does', () => {
      const tokenizer = fixtureTokenizer(name);
      const cases = readChatReference().tokenizers[name];
      if (tokenizer.chatTemplate === null) {
        expect(cases).toBeUndefined();
        return;
      }
      expect(cases, 'reference-chat.json has no renders for this tokenizer').toBeDefined();
      for (const c of cases) {
        const options = { addGenerationPrompt: c.add_generation_prompt, templateVariables: c.kwargs };
        if (c.error !== undefined) expect(() => tokenizer.applyChatTemplate(c.messages, options)).toThrow(c.error);
        else expect(tokenizer.applyChatTemplate(c.messages, options)).toBe(c.text);
      }
    });

    it('encodes the rendered chats to the ids of tokenizers', () => {
      const tokenizer = fixtureTokenizer(name);
      const cases = readChatReference().tokenizers[name] ?? [];
      const reference = readReference(name);
      expect(reference.chat_ids.length).toBe(cases.length);
      cases.forEach((c, i) => {
        if (c.text === undefined) return;
        const options = { addGenerationPrompt: c.add_generation_prompt, templateVariables: c.kwargs };
        expect(tokenizer.encodeChat(c.messages, options)).toEqual(reference.chat_ids[i]);
      });
    });
  });
}
