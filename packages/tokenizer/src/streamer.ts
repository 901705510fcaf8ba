/**
 * Streaming detokenization: ids arrive one at a time (or a few at a time) during generation and
 * text leaves as soon as it is final.
 *
 * The method is tokenizers' `DecodeStream` (text-generation-inference's incremental decoding):
 * keep a small window of ids, decode it, and emit what it adds beyond the decode of its first
 * part (the "prefix") unless the text ends in U+FFFD (a multi-byte character still incomplete).
 * Decoding a window rather than a single id keeps what one id cannot know alone: the space that
 * a SentencePiece `▁` stands for, which the decoder strips at the start of a text, and UTF-8
 * characters split across byte tokens. Concatenating every emitted chunk gives
 * `tokenizer.decode(allIds)` (tested on every reference fixture). Emitted text is never
 * retracted: if a later decode contradicts it, the stream throws `STREAM_DIVERGED`.
 */
import { TokenizerError } from './errors.js';
import type { Tokenizer } from './tokenizer.js';

/** Options of {@link TextStreamer}. */
export interface TextStreamerOptions {
  /** Leave out special tokens, as `decode(ids, { skipSpecialTokens: true })`. Default false. */
  skipSpecialTokens?: boolean;
  /** Ignore the first `put()` of each stream (the prompt), as transformers' `skip_prompt`. Default false. */
  skipPrompt?: boolean;
  /** Called with each chunk of final text, and once with `done = true` by `end()` (transformers' `on_finalized_text`). */
  onText?: (text: string, done: boolean) => void;
}

const REPLACEMENT = '\ufffd';

/**
 * Turns a stream of token ids into a stream of text chunks, like transformers' `TextStreamer`
 * but emitting as soon as the text is complete UTF-8 rather than word by word.
 *
 * @example
 * ```ts
 * const streamer = new TextStreamer(tokenizer, { skipSpecialTokens: true, onText: (t) => process.stdout.write(t) });
 * for (const id of generatedIds) streamer.put(id);
 * streamer.end();
 * ```
 */
export class TextStreamer {
  private readonly tokenizer: Tokenizer;
  private readonly skipSpecialTokens: boolean;
  private readonly skipPrompt: boolean;
  private readonly onText?: (text: string, done: boolean) => void;
  private ids: number[] = [];
  private allIds: number[] = [];
  private prefix = '';
  private prefixIndex = 0;
  private emitted = '';
  private promptPending: boolean;

  constructor(tokenizer: Tokenizer, options: TextStreamerOptions = {}) {
    this.tokenizer = tokenizer;
    this.skipSpecialTokens = options.skipSpecialTokens ?? false;
    this.skipPrompt = options.skipPrompt ?? false;
    this.onText = options.onText;
    this.promptPending = this.skipPrompt;
  }

  /** All text emitted since the stream started. */
  get text(): string {
    return this.emitted;
  }

  /**
   * Adds one id or several; returns the text that became final ('' when none did yet).
   *
   * @throws TokenizerError `TOKEN_ID_OUT_OF_RANGE` for an id outside the vocabulary.
   */
  put(ids: number | ArrayLike<number>): string {
    const batch = typeof ids === 'number' ? [ids] : Array.from(ids);
    this.tokenizer.idsToTokens(batch, 'TextStreamer.put', false); // validates before any state changes
    if (this.promptPending) {
      this.promptPending = false;
      return '';
    }
    let out = '';
    for (const id of batch) out += this.step(id);
    if (out.length > 0) this.onText?.(out, false);
    return out;
  }

  /** Flushes what is left (including a trailing U+FFFD that will never complete), resets the stream and returns the flushed text. */
  end(): string {
    let out = '';
    if (this.ids.length > 0) {
      const text = this.decode(this.ids);
      if (text.startsWith(this.prefix)) out = text.slice(this.prefix.length);
      else out = this.recover(this.allIds.length, true);
    }
    this.emitted += out;
    this.ids = [];
    this.allIds = [];
    this.prefix = '';
    this.prefixIndex = 0;
    this.promptPending = this.skipPrompt;
    this.onText?.(out, true);
    return out;
  }

  private decode(ids: number[]): string {
    return this.tokenizer.decode(ids, { skipSpecialTokens: this.skipSpecialTokens });
  }

  /** One step of tokenizers' `step_decode_stream`. */
  private step(id: number): string {
    if (this.prefix.length === 0 && this.ids.length > 0) {
      const prefix = this.decode(this.ids);
      if (!prefix.endsWith(REPLACEMENT)) {
        this.prefix = prefix;
        this.prefixIndex = this.ids.length;
      }
    }
    this.ids.push(id);
    this.allIds.push(id);
    const text = this.decode(this.ids);
    if (text.length <= this.prefix.length || text.endsWith(REPLACEMENT)) return '';
    if (!text.startsWith(this.prefix)) return this.recover(this.allIds.length, false);
    const chunk = text.slice(this.prefix.length);
    const nextPrefixIndex = this.ids.length - this.prefixIndex;
    this.ids = this.ids.slice(this.prefixIndex);
    this.prefix = this.decode(this.ids);
    this.prefixIndex = nextPrefixIndex;
    this.emitted += chunk;
    return chunk;
  }

  /**
   * The window's decode disagrees with its prefix (a decoder that is not local): fall back to
   * decoding everything, emit what it adds to the text already emitted, and restart the window
   * from the last id.
   */
  private recover(count: number, final: boolean): string {
    const full = this.decode(this.allIds.slice(0, count));
    if (!full.startsWith(this.emitted)) {
      throw new TokenizerError(
        'STREAM_DIVERGED',
        `TextStreamer: decoding the ids so far gives ${JSON.stringify(full.slice(-40))}, which does not continue the text already emitted`,
      );
    }
    if (!final && full.endsWith(REPLACEMENT)) return '';
    const chunk = full.slice(this.emitted.length);
    if (!final) this.emitted += chunk;
    this.ids = this.allIds.slice(-1);
    this.prefix = this.decode(this.ids);
    this.prefixIndex = 0;
    return chunk;
  }
}

/**
 * A {@link TextStreamer} that is also an async iterable of its chunks (transformers'
 * `TextIteratorStreamer`): the generation loop calls `put` / `end`, a consumer iterates.
 *
 * @example
 * ```ts
 * const streamer = new TextIteratorStreamer(tokenizer, { skipSpecialTokens: true });
 * const printing = (async () => { for await (const chunk of streamer) process.stdout.write(chunk); })();
 * for (const id of generatedIds) streamer.put(id);
 * streamer.end();
 * await printing;
 * ```
 */
export class TextIteratorStreamer extends TextStreamer implements AsyncIterable<string> {
  private readonly queue: Array<string | null> = [];
  private waiting: ((value: IteratorResult<string>) => void) | null = null;

  constructor(tokenizer: Tokenizer, options: Omit<TextStreamerOptions, 'onText'> = {}) {
    super(tokenizer, {
      ...options,
      onText: (text, done) => {
        if (text.length > 0) this.push(text);
        if (done) this.push(null);
      },
    });
  }

  private push(item: string | null): void {
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = null;
      resolve(item === null ? { value: undefined, done: true } : { value: item, done: false });
    } else this.queue.push(item);
  }

  [Symbol.asyncIterator](): AsyncIterator<string> {
    return {
      next: () => {
        if (this.queue.length > 0) {
          const item = this.queue.shift() as string | null;
          return Promise.resolve(item === null ? { value: undefined, done: true } : { value: item, done: false });
        }
        return new Promise((resolve) => (this.waiting = resolve));
      },
    };
  }
}
