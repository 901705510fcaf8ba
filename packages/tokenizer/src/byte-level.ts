/**
 * GPT-2's reversible byte <-> printable character table (`bytes_to_unicode` in openai/gpt-2
 * `encoder.py`, `bytes_char` in tokenizers' `byte_level.rs`).
 */
function buildTable(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const table = new Array<string>(256);
  for (const b of printable) table[b] = String.fromCodePoint(b);
  let next = 256;
  for (let b = 0; b < 256; b++) if (table[b] === undefined) table[b] = String.fromCodePoint(next++);
  return table;
}

/** `BYTE_TO_CHAR[b]` is the one-character symbol of byte `b`. */
export const BYTE_TO_CHAR: readonly string[] = buildTable();

/** Inverse of {@link BYTE_TO_CHAR}. */
export const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_CHAR.map((ch, b) => [ch, b]));

const utf8 = new TextEncoder();

/** Replaces every UTF-8 byte of `text` by its byte-level symbol. */
export function byteLevelEncode(text: string): string {
  let out = '';
  for (const b of utf8.encode(text)) out += BYTE_TO_CHAR[b];
  return out;
}

/**
 * The GPT-2 split regex that tokenizers' ByteLevel pre-tokenizer hard-codes, compiled for
 * JavaScript. Oniguruma's `\s` is Unicode White_Space (it includes U+0085 and excludes U+FEFF,
 * the opposite of JavaScript's `\s`), hence the explicit property classes.
 */
export const GPT2_SPLIT =
  /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\p{White_Space}\p{L}\p{N}]+|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+/gu;
