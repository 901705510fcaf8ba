#!/usr/bin/env node
// Writes fixtures/inputs/neox/tokenizer.json: a small GPT-2 / GPT-NeoX style byte-level BPE
// tokenizer (NFC normalizer, ByteLevel pre-tokenizer with the GPT-2 regex, ByteLevel decoder,
// runs of spaces as normalized non-special added tokens as in EleutherAI/gpt-neox-20b).
// No real GPT-2 / NeoX tokenizer.json ships in an npm package, so this one is trained here,
// deterministically, on the committed test strings plus a few paragraphs of English.
// Test data only: plain textbook BPE training (most frequent pair, ties broken by the pair's text).
//
// Usage: node packages/tokenizer/scripts/make-neox-tokenizer.mjs
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const inputs = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'inputs');
const MERGES = 1500;

const ENGLISH = `
State space models process a sequence one step at a time while carrying a fixed-size hidden state.
The selective scan lets the model decide, token by token, what to remember and what to forget.
Transformers attend to every previous token; their memory grows with the length of the context.
A tokenizer turns text into integers and back again. Byte-level BPE never needs an unknown token,
because every string is a sequence of bytes, and every byte has a symbol of its own.
It's the merges, learned from a corpus, that decide which pieces of words become single tokens.
We'll test numbers like 1234567890, 3.14159 and 2024-01-31, code like def main(): return 0,
and whitespace: tabs, newlines, and runs of spaces that some tokenizers keep as added tokens.
The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs.
How vexingly quick daft zebras jump! Sphinx of black quartz, judge my vow.
`;

function bytesToUnicode() {
  const bs = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  return bs.map((b, i) => [b, String.fromCodePoint(cs[i])]);
}

const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\p{White_Space}\p{L}\p{N}]+|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+/gu;

const table = bytesToUnicode();
const byteChar = new Map(table);
const encoder = new TextEncoder();
const strings = JSON.parse(readFileSync(join(inputs, 'strings.json'), 'utf8'));
const corpus = [ENGLISH, ...strings].map((s) => s.normalize('NFC'));

const counts = new Map();
for (const text of corpus) {
  for (const piece of text.match(GPT2_SPLIT) ?? []) {
    const word = [...encoder.encode(piece)].map((b) => byteChar.get(b)).join('');
    counts.set(word, (counts.get(word) ?? 0) + 1);
  }
}
const words = [...counts].map(([word, count]) => ({ symbols: [...word], count }));

const vocab = {};
table.forEach(([, ch], i) => (vocab[ch] = i));
let nextId = table.length;
const merges = [];
for (let m = 0; m < MERGES; m++) {
  const pairs = new Map();
  for (const { symbols, count } of words) {
    for (let i = 0; i + 1 < symbols.length; i++) {
      const key = symbols[i] + ' ' + symbols[i + 1];
      pairs.set(key, (pairs.get(key) ?? 0) + count);
    }
  }
  let best = null;
  let bestCount = 0;
  for (const [key, count] of pairs) {
    if (count > bestCount || (count === bestCount && key < best)) {
      best = key;
      bestCount = count;
    }
  }
  if (best === null || bestCount < 2) break;
  const [a, b] = best.split(' ');
  merges.push(best);
  if (!(a + b in vocab)) vocab[a + b] = nextId++;
  for (const word of words) {
    const out = [];
    for (let i = 0; i < word.symbols.length; i++) {
      if (i + 1 < word.symbols.length && word.symbols[i] === a && word.symbols[i + 1] === b) {
        out.push(a + b);
        i++;
      } else out.push(word.symbols[i]);
    }
    word.symbols = out;
  }
}

const added = [
  { content: '<|endoftext|>', special: true, normalized: false },
  { content: '<|padding|>', special: true, normalized: false },
  { content: '        ', special: false, normalized: true },
  { content: '    ', special: false, normalized: true },
  { content: '  ', special: false, normalized: true },
].map((t) => ({ id: nextId++, content: t.content, single_word: false, lstrip: false, rstrip: false, normalized: t.normalized, special: t.special }));

const tokenizer = {
  version: '1.0',
  truncation: null,
  padding: null,
  added_tokens: added,
  normalizer: { type: 'NFC' },
  pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
  post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
  decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
  model: {
    type: 'BPE',
    dropout: null,
    unk_token: null,
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: false,
    byte_fallback: false,
    ignore_merges: false,
    vocab,
    merges,
  },
};
mkdirSync(join(inputs, 'neox'), { recursive: true });
writeFileSync(join(inputs, 'neox', 'tokenizer.json'), JSON.stringify(tokenizer) + '\n');
console.log(`neox: ${Object.keys(vocab).length} vocab, ${merges.length} merges, ${added.length} added tokens`);
