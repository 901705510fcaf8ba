/**
 * The text path, kept in one module: turning what the user types into token
 * ids and generated ids back into streamed text. With a tokenizer.json it uses
 * @statespace/tokenizer (chat template when the tokenizer has one); without one
 * (the test fixtures) the user types token ids and sees ids.
 */
import type { ModelFolder } from '@statespace/checkpoint';
import { type ChatMessage, TextStreamer, Tokenizer } from '@statespace/tokenizer';

/** Turns pushed ids into text chunks as they become final. */
export interface TokenStream {
  /** Adds one generated id; returns the text it completes ('' while a character is incomplete). */
  put(id: number): string;
  /** Flushes what is left. */
  end(): string;
}

/** Parses `"1, 2 3"` into ids; throws naming the first bad entry. */
export function parseIds(text: string, vocabSize: number): number[] {
  const parts = text.split(/[\s,]+/).filter((p) => p.length > 0);
  return parts.map((p) => {
    const id = Number(p);
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) throw new Error(`"${p}" is not a token id in [0, ${vocabSize})`);
    return id;
  });
}

/** True when `whole` begins with every id of `prefix`. */
export function startsWith(whole: readonly number[], prefix: readonly number[]): boolean {
  if (prefix.length > whole.length) return false;
  for (let i = 0; i < prefix.length; i++) if (whole[i] !== prefix[i]) return false;
  return true;
}

/** Ids of a JSON value that may be a number or a list of numbers (generation_config's eos_token_id). */
function idList(value: unknown): number[] {
  if (typeof value === 'number' && Number.isInteger(value)) return [value];
  if (Array.isArray(value)) return value.filter((v): v is number => typeof v === 'number' && Number.isInteger(v));
  return [];
}

/**
 * The model's text side: a tokenizer when the folder has one, token ids otherwise.
 *
 * @example
 * ```ts
 * const text = await TextCodec.fromFolder(folder, spec.vocabSize);
 * const ids = text.encodeCompletion('Once upon a time', true);
 * ```
 */
export class TextCodec {
  private constructor(
    /** The tokenizer, or null for ids-only models. */
    readonly tokenizer: Tokenizer | null,
    readonly vocabSize: number,
    /** Extra stop ids from generation_config.json and the tokenizer's EOS. */
    readonly extraStopIds: readonly number[],
  ) {}

  /** Reads tokenizer.json (+ tokenizer_config.json, special_tokens_map.json, chat_template.jinja, generation_config.json) when present. */
  static async fromFolder(folder: ModelFolder, vocabSize: number): Promise<TextCodec> {
    const files = await folder.tokenizer();
    const generationEos = idList((files.generationConfig as { eos_token_id?: unknown } | undefined)?.eos_token_id);
    if (files.tokenizer === undefined) return new TextCodec(null, vocabSize, generationEos);
    let chatTemplate: string | null = null;
    if (await folder.exists('chat_template.jinja')) chatTemplate = await folder.readText('chat_template.jinja');
    const tokenizer = new Tokenizer(files.tokenizer, files.tokenizerConfig ?? {}, { chatTemplate, specialTokensMap: files.specialTokensMap });
    const eos = tokenizer.eosToken?.id;
    return new TextCodec(tokenizer, vocabSize, [...generationEos, ...(eos === undefined ? [] : [eos])]);
  }

  /** An ids-only codec (no tokenizer). */
  static idsOnly(vocabSize: number): TextCodec {
    return new TextCodec(null, vocabSize, []);
  }

  get hasTokenizer(): boolean {
    return this.tokenizer !== null;
  }

  get hasChatTemplate(): boolean {
    return this.tokenizer?.chatTemplate != null;
  }

  /** The whole conversation as ids, ending with the assistant's generation prompt. */
  encodeChat(messages: readonly ChatMessage[]): number[] {
    if (!this.tokenizer) throw new Error('this model has no tokenizer: use completion mode with token ids');
    return this.tokenizer.encodeChat(messages, { addGenerationPrompt: true });
  }

  /**
   * A completion prompt as ids. `atStart`: the context is empty, so the
   * tokenizer's special tokens (BOS) are added as it would for a new text.
   */
  encodeCompletion(text: string, atStart: boolean): number[] {
    if (!this.tokenizer) return parseIds(text, this.vocabSize);
    return this.tokenizer.encode(text, { addSpecialTokens: atStart });
  }

  /** A streaming decoder for generated ids (ids mode: each id as ` 123`). */
  stream(): TokenStream {
    const tokenizer = this.tokenizer;
    if (!tokenizer) {
      let first = true;
      return {
        put: (id) => {
          const out = first ? String(id) : ` ${id}`;
          first = false;
          return out;
        },
        end: () => '',
      };
    }
    const streamer = new TextStreamer(tokenizer, { skipSpecialTokens: true });
    return { put: (id) => streamer.put(id), end: () => streamer.end() };
  }

  /** Ids as text (special tokens dropped); ids mode: space-separated ids. */
  decode(ids: readonly number[]): string {
    return this.tokenizer ? this.tokenizer.decode(ids, { skipSpecialTokens: true }) : ids.join(' ');
  }

  /** A token's own text for tooltips (`<0x0A>`, `▁the`); ids mode: the id. */
  tokenLabel(id: number): string {
    return this.tokenizer?.idToToken(id) ?? String(id);
  }
}
